"""The device farm: compile anywhere, measure on the node that holds the device, many models × targets × devices.

SDK::

    farm = edgeopt.farm.connect("10.0.0.5:6379")
    result = farm.compare(["a.onnx", "b.onnx"], targets=["cpu", "openvino"], devices=["pi5", "nuc"])
    result.winners()   # {(model, device): target}
    farm.close()

Jobs are plain data (``edgeopt.farm.jobs``) run by fixed entry points (``edgeopt.farm.worker``) on a Ray
cluster whose nodes advertise their targets and devices as Ray resources (``edgeopt.farm.resources``).
Results come back as artifacts verified by hash, installed atomically and registered with ``measured_on``.
Needs ``pip install 'edgeopt[farm]'`` (Ray); see docs/farm.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeopt.farm.jobs import DeployOptions
from edgeopt.farm.matrix import Cell, FarmComparison
from edgeopt.farm.scheduler import Progress

__all__ = ["Cell", "DeployOptions", "Farm", "FarmComparison", "connect"]


class Farm:
    """A connection to a running farm (``connect``)."""

    def __init__(self, ray: Any, address: str, *, retries: int = 2) -> None:
        from edgeopt.farm.executors import RayExecutor

        self.ray = ray
        self.address = address
        self.executor = RayExecutor(ray, address=address, retries=retries)

    def status(self) -> Any:
        """``edgeopt.farm.cluster.FarmStatus``: nodes alive or gone, devices, what is measuring."""
        from edgeopt.farm.cluster import status

        return status(self.ray, self.address)

    def compare(
        self, models: Sequence[str | Path], *, targets: Sequence[str] = (), devices: Sequence[str] = (),
        options: DeployOptions | None = None, calib: str | Path | None = None, eval: str | Path | None = None,  # noqa: A002
        out_dir: str | Path = "edgeopt-farm", timeout_s: float = 1800.0, progress: Progress | None = None,
    ) -> FarmComparison:
        """Every model × target × device (default: every target and device the farm offers); artifacts are
        written to ``out_dir/<model>/<target>@<device>.edgeopt`` and registered; see ``edgeopt.farm.scheduler``."""
        from edgeopt.farm.scheduler import run_matrix

        return run_matrix(
            [Path(m) for m in models], executor=self.executor, targets=targets, devices=devices,
            options=options or DeployOptions(), calib=Path(calib) if calib else None,
            eval_=Path(eval) if eval else None, out_dir=Path(out_dir), timeout_s=timeout_s, progress=progress,
        )

    def close(self) -> None:
        self.ray.shutdown()

    def __enter__(self) -> Farm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect(address: str, *, retries: int = 2) -> Farm:
    """Connect to the farm whose head is at ``address`` (``host:port``); ``MissingExtraError`` without Ray,
    ``FarmError`` when no farm answers. ``retries``: how often a job whose worker died is run again."""
    from edgeopt.farm.cluster import connect_ray

    return Farm(connect_ray(address), address, retries=retries)
