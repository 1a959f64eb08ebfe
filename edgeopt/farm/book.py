"""The farm's memory of the devices it has seen, so a device whose node died shows as gone, not as absent.

Ray forgets a dead node's resources, so the devices it advertised would silently vanish from ``ray.nodes()``.
A detached named actor on the head (``edgeopt-farm-book``, no CPUs) keeps every device ever seen with its
profile, targets and last node; ``devices_with_gone`` merges it with what is alive. The actor holds plain data
and has two methods; it is one of the farm's fixed entry points like ``edgeopt.farm.worker``.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

from edgeopt.farm.resources import FarmDevice

BOOK_NAME = "edgeopt-farm-book"


class DeviceBook:
    """Device name -> the last ``FarmDevice`` seen alive, as plain dicts."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, Any]] = {}

    def note(self, devices: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Record ``devices`` (alive ones); return every device ever seen."""
        self.seen.update({k: v for k, v in devices.items() if not v.get("gone")})
        return dict(self.seen)


def devices_with_gone(ray: Any, alive: dict[str, FarmDevice]) -> dict[str, FarmDevice]:
    """``alive`` plus every device the book has seen that no alive node offers now, marked ``gone``."""
    actor = ray.remote(num_cpus=0)(DeviceBook).options(
        name=BOOK_NAME, namespace="edgeopt-farm", lifetime="detached", get_if_exists=True,
        resources={"node:__internal_head__": 0.001},
    ).remote()
    seen = ray.get(actor.note.remote({k: asdict(v) for k, v in alive.items()}), timeout=60)
    out = dict(alive)
    for name, data in seen.items():
        if name not in out or out[name].gone:
            dev = FarmDevice(**{**data, "targets": tuple(data["targets"]), "nodes": ()})
            out[name] = replace(dev, gone=True)
    return dict(sorted(out.items()))
