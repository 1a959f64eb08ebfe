"""Task metrics plugins add through the ``edgeopt_metrics`` hook: the register handed to the hook, the clash checks
(two plugins claiming one name, or a plugin claiming a built-in's), and making them this process's active plugin
metrics (``edgeopt.evaluate.metric_table``). ``PluginManager.metrics()`` and ``check_metric`` use them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edgeopt.errors import PluginError
from edgeopt.evaluate.metric_table import NAME_PATTERN, UNITS, MetricFunction, TaskMetric, set_active
from edgeopt.evaluate.task_metrics import FIDELITY_METRICS, METRICS


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
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
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


def activate(found: Sequence[TaskMetric]) -> dict[str, TaskMetric]:
    """Make ``found`` (after ``merge``) this process's plugin metrics, replacing the previous set; return them."""
    table = merge(found)
    set_active(table)
    return dict(table)
