"""Loading plugins and calling their hooks, one plugin's failure never taking the others down.

Plugins come from the ``edgeopt`` entry-point group (plus the core's built-in importers and
meters). ``EDGEOPT_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points; ``EDGEOPT_PLUGINS=a,b`` loads
only those; ``EDGEOPT_BLOCKED_PLUGINS=a,b`` never loads those. A plugin that fails to import, has
the wrong ``EDGEOPT_HOOK_API``, misspells a hook, or raises inside a hook is quarantined: recorded
in ``problems`` with its name and error, while the rest keep working.

Discovery hooks (``edgeopt_register_targets``, ``edgeopt_plan``, ``edgeopt_metrics``) run with a timeout of
``EDGEOPT_HOOK_TIMEOUT_S`` seconds (default 60; ``0`` turns it off): a call that has not returned by
then is abandoned in its thread and its plugin quarantined. Compiling is left to the plugin, which
runs vendor compilers in a subprocess with its own timeout.

Plugins take their folders from ``cache_dir("<plugin>")`` / ``data_dir("<plugin>")`` re-exported here
(``edgeopt.settings``: ``$EDGEOPT_CACHE_DIR`` / ``$EDGEOPT_DATA_DIR``, else the platform's user folders).
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import math
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from edgeopt.errors import EdgeoptError, PluginError, TargetError, TargetUnavailable
from edgeopt.plugin import hookspecs
from edgeopt.settings import cache_dir as cache_dir  # re-exported for plugins: their cache folders
from edgeopt.settings import data_dir as data_dir

if TYPE_CHECKING:
    import typer

    from edgeopt.evaluate.metric_table import TaskMetric
    from edgeopt.registry.records import DeploymentRecord
    from edgeopt.types import (
        Compiled,
        Dataset,
        DeviceProfile,
        EnergyMeter,
        Graph,
        ImportOptions,
        Plan,
        Runner,
        RunSettings,
    )

from edgeopt.types import TargetInfo

ENTRY_POINT_GROUP = "edgeopt"
BUILTIN_PLUGINS = (
    "edgeopt.importers.onnx_file",
    "edgeopt.importers.torch",
    "edgeopt.importers.sklearn",
    "edgeopt.importers.keras",
    "edgeopt.measure.energy",
    "edgeopt.builtin.task_metrics",
)

DEFAULT_HOOK_TIMEOUT_S = 60.0
"""Seconds a discovery hook may take when ``EDGEOPT_HOOK_TIMEOUT_S`` is unset."""
TIMED_HOOKS = ("edgeopt_register_targets", "edgeopt_plan", "edgeopt_metrics")
"""Hooks the manager calls with a timeout."""
TARGET_HOOKS = ("edgeopt_plan", "edgeopt_compile", "edgeopt_runner")
"""Hooks a plugin that registers targets must implement."""

hookimpl = pluggy.HookimplMarker("edgeopt")


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


@dataclass(frozen=True)
class PluginDiagnosis:
    """One plugin as ``edgeopt plugins doctor`` shows it: what it is, what it offers, what is wrong."""

    name: str
    version: str
    status: str
    builtin: bool
    api_version: object
    hooks: tuple[str, ...]
    targets: tuple[TargetInfo, ...]
    problems: tuple[str, ...]
    """Everything a user or the plugin's author should fix; empty when the plugin is healthy."""


class HookTimeout(PluginError):
    """A hook did not return within ``EDGEOPT_HOOK_TIMEOUT_S``; its plugin was quarantined."""

    default_hint = "raise EDGEOPT_HOOK_TIMEOUT_S if the plugin is merely slow, or block it with EDGEOPT_BLOCKED_PLUGINS"


def hook_timeout_s() -> float | None:
    """Seconds from ``EDGEOPT_HOOK_TIMEOUT_S`` (default 60); None when set to 0 (no timeout)."""
    raw = os.environ.get("EDGEOPT_HOOK_TIMEOUT_S", "").strip()
    if not raw:
        return DEFAULT_HOOK_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise PluginError(
            f"EDGEOPT_HOOK_TIMEOUT_S={raw!r} is not a number of seconds",
            hint="set it to a positive number of seconds, or 0 to call hooks without a timeout",
        )
    return value or None


def _check_tolerances(plugin: str, target: str, precisions: tuple[str, ...], tolerances: Mapping[str, float]) -> None:
    for precision, value in tolerances.items():
        if precision not in precisions:
            raise PluginError(
                f"plugin {plugin!r} gives target {target!r} a tolerance for undeclared precision {precision!r}"
            )
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise PluginError(
                f"plugin {plugin!r} gives target {target!r} precision {precision!r} tolerance {value!r}; "
                "a tolerance is a positive number (max |out - ref| / max |ref|)"
            )


@dataclass
class TargetRegister:
    """Handed to ``edgeopt_register_targets``; records targets under the calling plugin's name."""

    plugin: str
    targets: list[TargetInfo] = field(default_factory=list)

    def add_target(
        self,
        name: str,
        *,
        description: str,
        precisions: tuple[str, ...] | list[str],
        available: bool = True,
        reason: str = "",
        device_kinds: tuple[str, ...] | list[str] = ("cpu",),
        tolerances: Mapping[str, float] | None = None,
        compression_speedups: tuple[str, ...] | list[str] = (),
        emulated: str = "",
    ) -> None:
        """Record one target. ``tolerances`` maps a precision to its largest acceptable error against
        the fp32 reference (``max|out - ref| / max|ref|``); see ``TargetInfo.tolerances``.
        ``compression_speedups``, ``emulated``: see ``TargetInfo``."""
        if not available and not reason:
            raise PluginError(f"plugin {self.plugin!r} marked target {name!r} unavailable without a reason")
        _check_tolerances(self.plugin, name, tuple(precisions), dict(tolerances or {}))
        self.targets.append(
            TargetInfo(
                name=name,
                plugin=self.plugin,
                description=description,
                precisions=tuple(precisions),
                available=available,
                reason=reason,
                device_kinds=tuple(device_kinds),
                tolerances=dict(tolerances or {}),
                compression_speedups=tuple(compression_speedups),
                emulated=emulated,
            )
        )


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


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
        if os.environ.get("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD"):
            return
        allow = _env_list("EDGEOPT_PLUGINS")
        blocked = _env_list("EDGEOPT_BLOCKED_PLUGINS") or set()
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
            from edgeopt import __version__

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
            except pluggy.PluginValidationError:
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

    def _impls(self, hook: str, plugin: str | None = None) -> Iterator[tuple[str, Callable[..., Any], list[str]]]:
        """Hook implementations in pluggy's call order, optionally only ``plugin``'s."""
        caller = getattr(self._pm.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            if plugin is not None and impl.plugin_name != plugin:
                continue
            if self._statuses.get(impl.plugin_name, None) and self._statuses[impl.plugin_name].status != "ok":
                continue
            yield impl.plugin_name, impl.function, list(impl.argnames)

    @staticmethod
    def _call(function: Callable[..., Any], argnames: list[str], kwargs: dict[str, Any]) -> Any:
        return function(**{a: kwargs[a] for a in argnames})

    def _timed_call(
        self, plugin: str, hook: str, function: Callable[..., Any], argnames: list[str], kwargs: dict[str, Any]
    ) -> Any:
        """Call a hook in a worker thread; past ``hook_timeout_s()`` abandon it and raise ``HookTimeout``.

        Python cannot stop a thread, so a hung call keeps running (as a daemon) but its result is never
        used; the caller quarantines the plugin so nothing calls into it again.
        """
        timeout = hook_timeout_s()
        if timeout is None:
            return self._call(function, argnames, kwargs)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self._call(function, argnames, kwargs)
            except BaseException as exc:  # handed to the calling thread below
                box["error"] = exc

        worker = threading.Thread(target=work, name=f"edgeopt:{plugin}:{hook}", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            raise HookTimeout(f"plugin {plugin!r} did not return from {hook} within {timeout:g} s and was quarantined")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    # -- hooks -------------------------------------------------------------------------------------

    def targets(self) -> list[TargetInfo]:
        """Every target every healthy plugin registers; a plugin that raises is quarantined."""
        if self._targets is None:
            found: list[TargetInfo] = []
            for name, fn, args in self._impls("edgeopt_register_targets"):
                register = TargetRegister(plugin=name)
                try:
                    self._timed_call(name, "edgeopt_register_targets", fn, args, {"register": register})
                except Exception as exc:
                    self._quarantine(name, "edgeopt_register_targets", exc)
                    continue
                found.extend(register.targets)
            self._targets = found
        return list(self._targets)

    def metrics(self) -> dict[str, TaskMetric]:
        """Every task metric healthy plugins add (``edgeopt_metrics``), by name, made this process's active plugin
        metrics (``edgeopt.evaluate.metric_table``). A plugin whose hook raises is quarantined; two plugins claiming one
        name, or a plugin claiming a built-in's, is a ``PluginError`` naming both."""
        from edgeopt.evaluate.metric_table import MetricRegister, activate

        if self._metrics is None:
            found: list[TaskMetric] = []
            for name, fn, args in self._impls("edgeopt_metrics"):
                register = MetricRegister(plugin=name)
                try:
                    self._timed_call(name, "edgeopt_metrics", fn, args, {"register": register})
                except Exception as exc:
                    self._quarantine(name, "edgeopt_metrics", exc)
                    continue
                found.extend(register.metrics)
            self._metrics = found
        return activate(self._metrics)

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
        for name, fn, args in self._impls("edgeopt_import"):
            try:
                graph = self._call(fn, args, {"source": source, "options": options, "workdir": workdir})
            except EdgeoptError:
                raise
            except Exception as exc:
                raise PluginError(f"importer {name!r} failed: {type(exc).__name__}: {exc}") from exc
            if graph is not None:
                return graph
        return None

    def _target_call(self, hook: str, target: TargetInfo, kwargs: dict[str, Any]) -> Any:
        for name, fn, args in self._impls(hook, plugin=target.plugin):
            try:
                if hook in TIMED_HOOKS:
                    result = self._timed_call(name, hook, fn, args, kwargs)
                else:
                    result = self._call(fn, args, kwargs)
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
        meters: list[EnergyMeter] = []
        for name, fn, args in self._impls("edgeopt_energy_meters"):
            try:
                meters.extend(self._call(fn, args, {"device": device}) or [])
            except Exception as exc:
                self._quarantine(name, "edgeopt_energy_meters", exc)
        return meters

    def add_cli_commands(self, app: typer.Typer) -> None:
        for name, fn, args in self._impls("edgeopt_cli_commands"):
            try:
                self._call(fn, args, {"app": app})
            except Exception as exc:
                self._quarantine(name, "edgeopt_cli_commands", exc)

    def deployment_registered(self, record: DeploymentRecord) -> tuple[dict[str, str], list[str]]:
        """Tell every plugin about a registered deployment; return the links they gave and their failures
        (``plugin 'x' failed ...`` lines for the caller to warn about; a failing plugin is not quarantined)."""
        links: dict[str, str] = {}
        problems: list[str] = []
        for name, fn, args in self._impls("edgeopt_deployment_registered"):
            try:
                found = self._call(fn, args, {"record": record})
            except Exception as exc:
                problems.append(f"plugin {name!r} failed in edgeopt_deployment_registered: {type(exc).__name__}: {exc}")
                continue
            if isinstance(found, Mapping):
                links.update({str(k): str(v) for k, v in found.items()})
        return links, problems

    # -- diagnosis ---------------------------------------------------------------------------------

    def diagnose(self) -> list[PluginDiagnosis]:
        """Every plugin with its declared hook API, targets and problems (registers targets first)."""
        targets = self.targets()
        owners: dict[str, str] = {}
        for t in targets:
            owners.setdefault(t.name, t.plugin)
        found = []
        for status in self.plugins():
            mine = tuple(t for t in targets if t.plugin == status.name)
            problems: list[str] = [status.error] if status.error else []
            missing = [h for h in TARGET_HOOKS if h not in status.hooks]
            if mine and missing:
                problems.append(f"registers targets but does not implement {', '.join(missing)}")
            for t in mine:
                if not t.available:
                    problems.append(f"target {t.name!r} is unavailable: {t.reason}")
                if owners[t.name] != status.name:
                    problems.append(f"target {t.name!r} is also registered by {owners[t.name]!r}, which wins")
            found.append(
                PluginDiagnosis(
                    name=status.name,
                    version=status.version,
                    status=status.status,
                    builtin=status.builtin,
                    api_version=status.api_version,
                    hooks=status.hooks,
                    targets=mine,
                    problems=tuple(problems),
                )
            )
        return found


def get_plugin_manager(*, builtins: bool = True, entry_points: bool = True) -> PluginManager:
    """A fresh manager with the built-in plugins and the installed entry-point plugins loaded."""
    pm = PluginManager()
    if builtins:
        pm.load_builtins()
    if entry_points:
        pm.load_entry_points()
    return pm
