"""The register handed to ``edgeopt_register_targets``: a plugin declares its targets through it, checked as
they come."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgeopt.errors import PluginError

if TYPE_CHECKING:

    pass

from edgeopt.types import TargetInfo


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
