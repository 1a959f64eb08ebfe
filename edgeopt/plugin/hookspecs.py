"""The plugin API: every hook edgeopt calls, each with its contract.

A plugin is a module (or object) with functions named like these hooks and decorated with
``edgeopt.hookimpl``, registered through the ``edgeopt`` entry-point group, and declaring
``EDGEOPT_HOOK_API = 1`` at module level. It may implement any subset and may accept fewer
arguments than a spec lists. Specs only ever gain arguments.

Each spec declares how the core calls it (its ``kind``, read by ``hook_kind``):

- ``each``: every plugin's implementation, one plugin at a time; one that raises is quarantined (or, for
  ``edgeopt_deployment_registered``, reported) and the others still run.
- ``first``: plugins in pluggy's order until one returns a result (``firstresult``).
- ``owner``: only the plugin that registered the target, so an implementation sees only its own targets.

``timed`` hooks run under ``EDGEOPT_HOOK_TIMEOUT_S``. The core calls each plugin through its own subset of the
hook (pluggy's ``subset_hook_caller``), so a ``wrapper=True``/``hookwrapper=True`` implementation could only ever
wrap its own plugin's call: the manager refuses such a plugin when it registers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy

if TYPE_CHECKING:
    import typer

    from edgeopt.plugin.metrics import MetricRegister
    from edgeopt.plugin.register import TargetRegister
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
        TargetInfo,
    )

HOOK_API_VERSION = 1
"""Bumped only when a hook changes incompatibly. Plugins declare ``EDGEOPT_HOOK_API``."""

hookspec = pluggy.HookspecMarker("edgeopt")
hookimpl = pluggy.HookimplMarker("edgeopt")
"""Marks a plugin's implementation of one of these hooks (``edgeopt.plugin.hookimpl``)."""

EACH, FIRST, OWNER = "each", "first", "owner"
_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class HookKind:
    """How the core calls one hook: ``each``, ``first`` or ``owner`` (see the module's docstring), timed or not."""

    kind: str
    timed: bool = False


def _spec(kind: str, *, timed: bool = False) -> Callable[[_F], _F]:
    def mark(function: _F) -> _F:
        function.edgeopt_kind = HookKind(kind, timed)  # type: ignore[attr-defined]
        return hookspec(firstresult=kind == FIRST)(function)

    return mark


def hook_kind(name: str) -> HookKind:
    """The declared kind of hook ``name``; ``KeyError`` for a name that is no edgeopt hook."""
    function = globals().get(name)
    kind = getattr(function, "edgeopt_kind", None)
    if not isinstance(kind, HookKind):
        raise KeyError(f"{name} is not an edgeopt hook")
    return kind


def hook_names() -> tuple[str, ...]:
    """Every hook this module specifies, in the order written."""
    return tuple(n for n, f in globals().items() if isinstance(getattr(f, "edgeopt_kind", None), HookKind))


# --- discovery ------------------------------------------------------------------------------------


@_spec(EACH, timed=True)
def edgeopt_register_targets(register: TargetRegister) -> None:
    """Declare the targets this plugin deploys to.

    Call ``register.add_target(name, description=..., precisions=..., available=..., reason=...)``
    once per target. Must be cheap and must not fail when the vendor SDK is missing: report
    ``available=False`` with a ``reason`` that says exactly what to install or attach instead.
    """


@_spec(EACH)
def edgeopt_energy_meters(device: DeviceProfile) -> list[EnergyMeter] | None:
    """Return energy counters that can be read on this machine for ``device``.

    Only meters that really measure (RAPL, NVML, a vendor tool) and that work right now; return
    an empty list or None otherwise. Estimates are the core's job, never a plugin's meter.
    """


@_spec(EACH, timed=True)
def edgeopt_metrics(register: MetricRegister) -> None:
    """Declare task metrics that ``--metric NAME`` can judge candidates by, e.g. ones that decode outputs.

    Call ``register.add_metric(name, function, description=..., labels=..., higher_is_better=True,
    unit="points")`` once per metric. ``function(outputs, labels) -> float`` gets the model's outputs (a
    list, one array per output in graph order, samples stacked on axis 0) and the evaluation data's
    ``labels`` array cut to the same samples; it is called on the fp32 reference's outputs and on each
    candidate's, and the drop (in ``unit``, checked against ``--max-drop``) is reference minus candidate
    (the reverse when lower is better). It must be deterministic, leave its arguments unchanged, and raise
    ``DataError`` with a hint when the outputs or labels do not have the form it documents in ``labels``.
    A name must not be a built-in metric's or another plugin's: the core refuses such a clash with a
    ``PluginError`` naming both. Must be cheap: import heavy libraries inside ``function``, not here.
    """


@_spec(EACH)
def edgeopt_cli_commands(app: typer.Typer) -> None:
    """Add commands to the ``edgeopt`` CLI using Typer's own API (``app.command()(fn)``)."""


# --- import ---------------------------------------------------------------------------------------


@_spec(FIRST)
def edgeopt_import(source: object, options: ImportOptions, workdir: Path) -> Graph | None:
    """Turn ``source`` (a path, or an in-memory model object) into a normalized Graph.

    Return None when the source is not this importer's format, so the next importer is asked.
    Write files only under ``workdir``. Never unpickle unless ``options.trust_pickle``. Raise
    ``ModelError`` (or a subclass) when the source is this format but unusable.
    """


# --- per target -----------------------------------------------------------------------------------


@_spec(OWNER, timed=True)
def edgeopt_plan(
    graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str
) -> list[Plan] | None:
    """Return the candidate plans worth trying for ``graph`` on ``target``/``device``.

    ``precision`` is ``auto`` or one of ``target.precisions``. For ``auto`` return every
    candidate the target considers worth measuring, fp32 first; otherwise the candidates of that
    precision only (e.g. several int8 calibration variants). The core compiles, checks accuracy and
    times each, then keeps the fastest within budget; a plan never decides that itself.
    """


@_spec(OWNER)
def edgeopt_compile(
    graph: Graph,
    plan: Plan,
    target: TargetInfo,
    device: DeviceProfile,
    calibration: Dataset,
    workdir: Path,
) -> Compiled | None:
    """Build the target's model file(s) for ``plan`` under ``workdir`` and return them.

    ``calibration`` holds samples for static quantization (it may be synthetic: the core has
    already warned). Must not modify ``graph.path``. Must write only under ``workdir``. Run
    vendor compilers in a subprocess with a timeout. Raise ``CompileError`` with the reason
    when the plan cannot be built. During a search the core calls it in a worker process held
    to ``--max-memory`` (``edgeopt.search.build_worker``), where the plugin is imported by module name
    (or unpickled): keep no state that only the deploy process set up, and stream calibration
    samples rather than holding every activation of every sample.
    """


@_spec(OWNER)
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> Runner | None:
    """Load ``compiled`` once and return a Runner; the core's harness does all timing.

    The runner must accept feeds whose batch dimension equals ``settings.batch`` and return
    outputs in graph order. Raise ``TargetUnavailable`` when the device is not present.
    """


# --- after deploy ---------------------------------------------------------------------------------


@_spec(EACH)
def edgeopt_deployment_registered(record: DeploymentRecord) -> Mapping[str, str] | None:
    """A deploy was written, verified and committed to the deployment registry as ``record``.

    ``record`` (``edgeopt.registry.DeploymentRecord``) holds the name and version, source fingerprint,
    target, device, plan, metrics, profile figures with their methods, the artifact's absolute path and
    its manifest hash. Mirror it elsewhere (an experiment tracker, a model registry) and return links to
    keep with the entry, e.g. ``{"mlflow_run": "runs:/<id>"}``, or None. Read the artifact; never modify,
    move or delete it. Called on every plugin that implements it; one that raises is reported as a
    warning on the deploy and never undoes it. Not called when the registry is off (``EDGEOPT_REGISTRY=off``).
    """
