"""Task metrics that plugins add through the ``edgeopt_metrics`` hook: the record, and the active table.

``edgeopt.plugin.metrics`` collects plugins' metrics and makes them this process's active ones (``set_active``);
``edgeopt.evaluate.task_metrics`` looks a name up here after its built-ins, so ``--metric NAME`` judges candidates by
the plugin's function and the manifest records the name and unit like a built-in's. The table is per process: each
deploy activates the metrics of its own plugin manager before any work (``PluginManager.check_metric``).
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
    pass


MetricFunction = Callable[[list[np.ndarray], np.ndarray], float]
"""``(outputs, labels) -> float``: outputs one array per model output (graph order, samples on axis 0), labels
the evaluation data's ``labels`` array cut to the evaluated samples."""


UNITS = ("points", "units", "squared units", "unitless")
"""Units a plugin metric may declare (``points``: percent, like accuracy)."""


NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


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


_ACTIVE: dict[str, TaskMetric] = {}


def set_active(table: dict[str, TaskMetric]) -> None:
    """Make ``table`` (checked for clashes by the caller) this process's plugin metrics, replacing the previous set."""
    _ACTIVE.clear()
    _ACTIVE.update(table)


def active(name: str) -> TaskMetric | None:
    """The active plugin metric called ``name``, or None."""
    return _ACTIVE.get(name)
