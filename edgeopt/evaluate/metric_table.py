"""Task metrics that plugins add through the ``edgeopt_metrics`` hook: the record, the register, the active table.

A plugin calls ``register.add_metric(...)`` (``MetricRegister``) once per metric; ``PluginManager.metrics()``
collects them, refuses a name two plugins claim (or one a built-in metric already has) with a ``PluginError``
naming both, and makes them the process's active plugin metrics (``activate``). ``edgeopt.evaluate.metrics`` looks a
name up there after its built-ins, so ``--metric NAME`` judges candidates by the plugin's function and the
manifest records the name and unit like a built-in's. The table is per process: each deploy activates the
metrics of its own plugin manager before any work (``check_metric``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.errors import DataError, EdgeoptError, PluginError

if TYPE_CHECKING:
    from edgeopt.plugin.manager import PluginManager

MetricFunction = Callable[[list[np.ndarray], np.ndarray], float]
"""``(outputs, labels) -> float``: outputs one array per model output (graph order, samples on axis 0), labels
the evaluation data's ``labels`` array cut to the evaluated samples."""

UNITS = ("points", "units", "squared units", "unitless")
"""Units a plugin metric may declare (``points``: percent, like accuracy)."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@dataclass(frozen=True)
class TaskMetric:
    """A task metric a plugin adds: what ``--metric NAME`` computes on the reference's and each candidate's
    outputs; the drop is in ``unit`` and positive when the candidate is worse."""

    name: str
    function: MetricFunction = field(repr=False)
    description: str
    labels: str
    """The labels it needs, e.g. ``int [N, L] padded with -1``."""
    higher_is_better: bool = True
    unit: str = "points"
    plugin: str = ""
    """The plugin that added it (set by the register)."""

    def __call__(self, outputs: Sequence[np.ndarray], labels: np.ndarray | None) -> float:
        """The metric's value; ``DataError`` when there are no labels or the function finds them unfit,
        ``PluginError`` naming the plugin when the function fails otherwise or returns no finite number."""
        if labels is None:
            raise DataError(
                f"metric {self.name!r} needs labels ({self.labels}), and the evaluation data has none",
                hint="add a 'labels' array to the --eval .npz, or leave --metric unset to compare against the original",
            )
        try:
            value = self.function([np.asarray(o) for o in outputs], np.asarray(labels))
        except EdgeoptError:
            raise
        except Exception as exc:
            raise PluginError(
                f"metric {self.name!r} of plugin {self.plugin!r} failed: {type(exc).__name__}: {exc}",
                hint="report this to the plugin's authors; run with EDGEOPT_DEBUG=1 for the traceback",
            ) from exc
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise PluginError(f"metric {self.name!r} of plugin {self.plugin!r} returned {value!r}, not a finite "
                              "number", hint="report this to the plugin's authors")
        return number


@dataclass
class MetricRegister:
    """Handed to ``edgeopt_metrics``; records metrics under the calling plugin's name."""

    plugin: str
    metrics: list[TaskMetric] = field(default_factory=list)

    def add_metric(
        self,
        name: str,
        function: MetricFunction,
        *,
        description: str,
        labels: str,
        higher_is_better: bool = True,
        unit: str = "points",
    ) -> None:
        """Record one metric. ``name``: lower case letters, digits, ``-``, ``_``, ``.`` (never ``fidelity:…``);
        ``function``: ``(outputs, labels) -> float``; ``labels``: the label format it reads, in words;
        ``unit``: one of ``UNITS``. A malformed declaration raises ``PluginError`` (the plugin is quarantined)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(f"plugin {self.plugin!r} adds metric {name!r}: a metric name is lower case letters, "
                              "digits, '-', '_' and '.'")
        if not callable(function):
            raise PluginError(f"plugin {self.plugin!r} adds metric {name!r} without a callable function")
        if unit not in UNITS:
            raise PluginError(f"plugin {self.plugin!r} gives metric {name!r} unit {unit!r}; "
                              f"choose one of: {', '.join(UNITS)}")
        if not description or not labels:
            raise PluginError(f"plugin {self.plugin!r} adds metric {name!r} without a description and the labels "
                              "it needs")
        self.metrics.append(TaskMetric(name, function, description, labels, bool(higher_is_better), unit,
                                       self.plugin))


def merge(found: Sequence[TaskMetric]) -> dict[str, TaskMetric]:
    """The metrics by name; ``PluginError`` naming both owners when two claim one name or one takes a built-in's."""
    from edgeopt.evaluate.metrics import FIDELITY_METRICS, METRICS

    table: dict[str, TaskMetric] = {}
    for m in found:
        builtin = m.name in METRICS or m.name in FIDELITY_METRICS
        if builtin or m.name in table:
            other = "edgeopt (a built-in metric)" if builtin else f"plugin {table[m.name].plugin!r}"
            raise PluginError(
                f"metric {m.name!r} is added by plugin {m.plugin!r} and also by {other}",
                hint="block one of the plugins with EDGEOPT_BLOCKED_PLUGINS, or ask its authors to rename the metric",
            )
        table[m.name] = m
    return table


_ACTIVE: dict[str, TaskMetric] = {}


def activate(found: Sequence[TaskMetric]) -> dict[str, TaskMetric]:
    """Make ``found`` (after ``merge``) this process's plugin metrics, replacing the previous set; return them."""
    table = merge(found)
    _ACTIVE.clear()
    _ACTIVE.update(table)
    return dict(table)


def active(name: str) -> TaskMetric | None:
    """The active plugin metric called ``name``, or None."""
    return _ACTIVE.get(name)


def check_metric(metric: object, pm: PluginManager | None = None) -> None:
    """Refuse an unknown ``--metric`` name before any work, listing every name available (built-in and plugin);
    a plugin's name activates the metrics of ``pm`` (default: a fresh ``get_plugin_manager()``). A built-in
    name, a callable or None passes unchanged."""
    from edgeopt.evaluate.metrics import FIDELITY_METRICS, METRICS
    from edgeopt.plugin.manager import get_plugin_manager

    if not isinstance(metric, str) or metric in METRICS or metric in FIDELITY_METRICS:
        return
    plugins = (pm or get_plugin_manager()).metrics()
    if metric not in plugins:
        raise DataError(f"unknown metric {metric!r}",
                        hint=f"choose one of: {', '.join([*METRICS, *FIDELITY_METRICS, *sorted(plugins)])}")
