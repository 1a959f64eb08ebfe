"""Loading plugins and calling their hooks, one plugin's failure never taking the others down.

Plugins come from the ``edgeopt`` entry-point group (plus the core's built-in importers, meter and metrics).
``EDGEOPT_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points; ``EDGEOPT_PLUGINS=a,b`` loads only those;
``EDGEOPT_BLOCKED_PLUGINS=a,b`` never loads those. A plugin that fails to import, has the wrong
``EDGEOPT_HOOK_API``, misspells a hook, implements one as a wrapper, or raises inside a hook is quarantined:
recorded in ``problems`` with its name and error, while the rest keep working.

Every call goes to one plugin at a time, through pluggy's public ``subset_hook_caller``, as the hook's declared
kind says (``edgeopt.plugin.hookspecs``): ``each`` hooks on every plugin in turn, ``first`` hooks until one
answers, ``owner`` hooks on the plugin that registered the target only. ``timed`` hooks run with a timeout of
``EDGEOPT_HOOK_TIMEOUT_S`` seconds (default 60; ``0`` turns it off): a call that has not returned by then is
abandoned in its thread and its plugin quarantined. Compiling is left to the plugin, which runs vendor
compilers in a subprocess with its own timeout.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from edgeopt import settings as core_settings
from edgeopt.errors import DataError, EdgeoptError, PluginError, TargetError, TargetUnavailable
from edgeopt.evaluate.task_metrics import FIDELITY_METRICS, METRICS
from edgeopt.plugin import hookspecs
from edgeopt.plugin.hook_timeout import HookTimeout, call_with_timeout
from edgeopt.plugin.hookspecs import FIRST, OWNER, hook_kind
from edgeopt.plugin.metrics import MetricRegister, activate
from edgeopt.plugin.register import TargetRegister
from edgeopt.types import TargetInfo

if TYPE_CHECKING:
    import typer

    from edgeopt.evaluate.metric_table import TaskMetric
    from edgeopt.types import (
        Compiled,
        Dataset,
        DeploymentRecord,
        DeviceProfile,
        EnergyMeter,
        Graph,
        ImportOptions,
        Plan,
        Runner,
        RunSettings,
    )


ENTRY_POINT_GROUP = "edgeopt"


BUILTIN_PLUGINS = (
    "edgeopt.importers.onnx_file",
    "edgeopt.importers.torch",
    "edgeopt.importers.sklearn",
    "edgeopt.importers.keras",
    "edgeopt.builtin.rapl",
    "edgeopt.builtin.task_metrics",
)


TARGET_HOOKS = tuple(name for name in hookspecs.hook_names() if hook_kind(name).kind == OWNER)
"""Hooks a plugin that registers targets must implement."""


TIMED_HOOKS = tuple(name for name in hookspecs.hook_names() if hook_kind(name).timed)
"""Hooks the manager calls with a timeout."""


@dataclass(frozen=True)
class PluginStatus:
    """One plugin as ``edgeopt plugins`` shows it."""

    name: str
    version: str
    status: str
    """``ok`` or ``broken``."""
    hooks: tuple[str, ...] = ()
    error: str = ""
    builtin: bool = False
    api_version: object = None
    """The plugin's declared ``EDGEOPT_HOOK_API`` (None when it could not be imported)."""


def _refuse_wrappers(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin_name == name and (impl.wrapper or impl.hookwrapper):
                raise PluginError(
                    f"implements {caller.name} as a wrapper; edgeopt calls each plugin's implementation on its own, "
                    "so a wrapper could only wrap its own plugin",
                    hint="declare it with a plain @edgeopt.plugin.hookimpl",
                )


class PluginManager:
    """Typed facade over pluggy: one method per hook. Build it with ``get_plugin_manager()``."""

    def __init__(self) -> None:
        self._pm = pluggy.PluginManager("edgeopt")
        self._pm.add_hookspecs(hookspecs)
        self._statuses: dict[str, PluginStatus] = {}
        self._targets: list[TargetInfo] | None = None
        self._metrics: list[TaskMetric] | None = None

    # -- loading -----------------------------------------------------------------------------------

    def load_builtins(self) -> None:
        for module_name in BUILTIN_PLUGINS:
            self._register_guarded(module_name, lambda m=module_name: importlib.import_module(m), builtin=True)

    def load_entry_points(self) -> None:
        if core_settings.flag("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD"):
            return
        allow = core_settings.names("EDGEOPT_PLUGINS")
        blocked = core_settings.names("EDGEOPT_BLOCKED_PLUGINS") or set()
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or (allow is not None and ep.name not in allow):
                continue
            version = ep.dist.version if ep.dist else "?"
            self._register_guarded(ep.name, ep.load, version=version)

    def register(self, plugin: ModuleType | object, name: str, *, version: str = "0") -> None:
        """Register an already-imported plugin object (tests, notebooks)."""
        self._register_guarded(name, lambda: plugin, version=version)

    def _register_guarded(
        self, name: str, load: Callable[[], Any], *, version: str = "", builtin: bool = False
    ) -> None:
        if version == "":
            from edgeopt.version import __version__

            version = __version__
        api = None
        try:
            plugin = load()
            api = getattr(plugin, "EDGEOPT_HOOK_API", None)
            if api != hookspecs.HOOK_API_VERSION:
                raise PluginError(
                    f"declares EDGEOPT_HOOK_API={api!r}, this edgeopt implements "
                    f"{hookspecs.HOOK_API_VERSION}",
                    hint="upgrade the plugin or edgeopt so both speak the same hook API",
                )
            self._pm.register(plugin, name=name)
            try:
                self._pm.check_pending()
                _refuse_wrappers(self._pm, name, plugin)
            except (pluggy.PluginValidationError, PluginError):
                self._pm.unregister(name=name)
                raise
            hooks = tuple(sorted(h.name for h in self._pm.get_hookcallers(plugin) or ()))
            self._statuses[name] = PluginStatus(name, version, "ok", hooks, builtin=builtin, api_version=api)
        except Exception as exc:  # a broken plugin is quarantined, never fatal
            self._statuses[name] = PluginStatus(
                name, version, "broken", error=f"{type(exc).__name__}: {exc}", builtin=builtin, api_version=api
            )
        self._targets = self._metrics = None

    # -- introspection -----------------------------------------------------------------------------

    def plugins(self) -> list[PluginStatus]:
        return sorted(self._statuses.values(), key=lambda s: (not s.builtin, s.name))

    def plugin_versions(self) -> dict[str, str]:
        return {s.name: s.version for s in self._statuses.values() if s.status == "ok"}

    def plugin_object(self, name: str) -> object | None:
        """The registered plugin object (usually a module) named ``name``, or None."""
        return self._pm.get_plugin(name)

    def _quarantine(self, name: str, hook: str, exc: BaseException) -> None:
        old = self._statuses.get(name)
        self._statuses[name] = PluginStatus(
            name,
            old.version if old else "?",
            "broken",
            old.hooks if old else (),
            error=exc.message if isinstance(exc, HookTimeout) else f"hook {hook} raised {type(exc).__name__}: {exc}",
            builtin=old.builtin if old else False,
            api_version=old.api_version if old else None,
        )
        self._targets = self._metrics = None

    # -- dispatch ----------------------------------------------------------------------------------

    def _implementers(self, hook: str, plugin: str | None = None) -> Iterator[str]:
        """Healthy plugins implementing ``hook`` in pluggy's call order (last registered first), or only ``plugin``;
        each plugin once (``specname`` lets one plugin implement a hook twice; its subset call runs both)."""
        seen: set[str] = set()
        for impl in reversed(getattr(self._pm.hook, hook).get_hookimpls()):
            name = impl.plugin_name
            status = self._statuses.get(name)
            if name in seen or (plugin is not None and name != plugin) or (status and status.status != "ok"):
                continue
            seen.add(name)
            yield name

    def _call(self, hook: str, plugin: str, kwargs: dict[str, Any]) -> Any:
        """``plugin``'s implementation of ``hook`` alone (its subset of the hook), under the hook's timeout if it
        is timed; its result, or None."""
        others = [p for n, p in self._pm.list_name_plugin() if n != plugin]
        caller = self._pm.subset_hook_caller(hook, remove_plugins=others)
        kind = hook_kind(hook)

        def call() -> Any:
            result = caller(**kwargs)
            if kind.kind == FIRST:
                return result
            return result[0] if result else None

        return call_with_timeout(plugin, hook, call) if kind.timed else call()

    def _each(self, hook: str, kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """``(plugin, result)`` of every healthy plugin's ``hook``; one that raises is quarantined and skipped."""
        for name in list(self._implementers(hook)):
            try:
                yield name, self._call(hook, name, kwargs)
            except Exception as exc:
                self._quarantine(name, hook, exc)

    # -- hooks -------------------------------------------------------------------------------------

    def _declared(self, hook: str, make_register: Callable[[str], Any]) -> list[Any]:
        """Each healthy plugin's register after its discovery ``hook`` filled it; a plugin that raises is
        quarantined and its register dropped."""
        found = []
        for name in list(self._implementers(hook)):
            register = make_register(name)
            try:
                self._call(hook, name, {"register": register})
            except Exception as exc:
                self._quarantine(name, hook, exc)
                continue
            found.append(register)
        return found

    def targets(self) -> list[TargetInfo]:
        """Every target every healthy plugin registers; a plugin that raises is quarantined."""
        if self._targets is None:
            registers = self._declared("edgeopt_register_targets", lambda name: TargetRegister(plugin=name))
            self._targets = [t for register in registers for t in register.targets]
        return list(self._targets)

    def metrics(self) -> dict[str, TaskMetric]:
        """Every task metric healthy plugins add (``edgeopt_metrics``), by name, made this process's active plugin
        metrics (``edgeopt.evaluate.metric_table``). A plugin whose hook raises is quarantined; two plugins claiming one
        name, or a plugin claiming a built-in's, is a ``PluginError`` naming both."""
        if self._metrics is None:
            registers = self._declared("edgeopt_metrics", lambda name: MetricRegister(plugin=name))
            self._metrics = [m for register in registers for m in register.metrics]
        return activate(self._metrics)

    def check_metric(self, metric: object) -> None:
        """Refuse an unknown ``--metric`` name before any work, listing every name available (built-in and plugin);
        a plugin's name activates this manager's plugin metrics. A built-in name, a callable or None passes."""
        if not isinstance(metric, str) or metric in METRICS or metric in FIDELITY_METRICS:
            return
        plugins = self.metrics()
        if metric not in plugins:
            raise DataError(f"unknown metric {metric!r}",
                            hint=f"choose one of: {', '.join([*METRICS, *FIDELITY_METRICS, *sorted(plugins)])}")

    def target(self, name: str, *, require_available: bool = True) -> TargetInfo:
        matches = [t for t in self.targets() if t.name == name]
        if not matches:
            known = ", ".join(sorted(t.name for t in self.targets())) or "none installed"
            raise TargetError(f"unknown target {name!r} (known: {known})")
        info = matches[0]
        if require_available and not info.available:
            raise TargetUnavailable(
                f"target {name!r} is unavailable: {info.reason}",
                hint="do what the reason says, or pick an available target (`edgeopt targets`; --target auto "
                     "compares those)",
            )
        return info

    def import_model(self, source: object, options: ImportOptions, workdir: Path) -> Graph | None:
        """First importer that recognises ``source`` wins. EdgeoptErrors pass through unchanged."""
        for name in list(self._implementers("edgeopt_import")):
            try:
                graph = self._call("edgeopt_import", name, {"source": source, "options": options, "workdir": workdir})
            except EdgeoptError:
                raise
            except Exception as exc:
                raise PluginError(f"importer {name!r} failed: {type(exc).__name__}: {exc}") from exc
            if graph is not None:
                return graph
        return None

    def _target_call(self, hook: str, target: TargetInfo, kwargs: dict[str, Any]) -> Any:
        for name in list(self._implementers(hook, plugin=target.plugin)):
            try:
                result = self._call(hook, name, kwargs)
            except HookTimeout as exc:
                self._quarantine(name, hook, exc)
                raise
            except EdgeoptError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {name!r} failed in {hook} for target {target.name!r}: {type(exc).__name__}: {exc}",
                    hint="report this to the plugin's authors; run with EDGEOPT_DEBUG=1 for the traceback",
                ) from exc
            if result is not None:
                return result
        return None

    def plan(self, graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan]:
        plans = self._target_call(
            "edgeopt_plan", target, {"graph": graph, "target": target, "device": device, "precision": precision}
        )
        return list(plans or [])

    def compile(
        self,
        graph: Graph,
        plan: Plan,
        target: TargetInfo,
        device: DeviceProfile,
        calibration: Dataset,
        workdir: Path,
    ) -> Compiled:
        compiled = self._target_call(
            "edgeopt_compile",
            target,
            {
                "graph": graph,
                "plan": plan,
                "target": target,
                "device": device,
                "calibration": calibration,
                "workdir": workdir,
            },
        )
        if compiled is None:
            raise PluginError(f"plugin {target.plugin!r} returned no compiled model for target {target.name!r}")
        return compiled

    def runner(self, compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings) -> Runner:
        runner = self._target_call(
            "edgeopt_runner",
            target,
            {"compiled": compiled, "target": target, "device": device, "settings": settings},
        )
        if runner is None:
            raise PluginError(f"plugin {target.plugin!r} gave no runner for target {target.name!r}")
        return runner

    def energy_meters(self, device: DeviceProfile) -> list[EnergyMeter]:
        return [meter for _, found in self._each("edgeopt_energy_meters", {"device": device}) for meter in found or []]

    def add_cli_commands(self, app: typer.Typer) -> None:
        for _ in self._each("edgeopt_cli_commands", {"app": app}):
            pass

    def deployment_registered(self, record: DeploymentRecord) -> tuple[dict[str, str], list[str]]:
        """Tell every plugin about a registered deployment; return the links they gave and their failures
        (``plugin 'x' failed ...`` lines for the caller to warn about; a failing plugin is not quarantined)."""
        links: dict[str, str] = {}
        problems: list[str] = []
        for name in list(self._implementers("edgeopt_deployment_registered")):
            try:
                found = self._call("edgeopt_deployment_registered", name, {"record": record})
            except Exception as exc:
                problems.append(f"plugin {name!r} failed in edgeopt_deployment_registered: {type(exc).__name__}: {exc}")
                continue
            if isinstance(found, Mapping):
                links.update({str(k): str(v) for k, v in found.items()})
        return links, problems


def get_plugin_manager(*, builtins: bool = True, entry_points: bool = True) -> PluginManager:
    """A fresh manager with the built-in plugins and the installed entry-point plugins loaded."""
    pm = PluginManager()
    if builtins:
        pm.load_builtins()
    if entry_points:
        pm.load_entry_points()
    return pm


def load_runner(compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings) -> Runner:
    """``compiled`` loaded by its target's runner through a fresh manager with every installed plugin: picklable
    by reference, for a process that has no manager (``edgeopt.measure.memory.measure_memory``)."""
    return get_plugin_manager().runner(compiled, target, device, settings)
