"""What a deploy is asked and what it returns: the request (plain data, so a deploy can run as a job elsewhere),
its checks before any work, the written deployment, and the default event sink."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.compression.spec import CompressionSpec
from edgeopt.errors import EdgeoptWarning, InputSpecError, TargetError
from edgeopt.measure.devices import get_profile, host_profile
from edgeopt.plugin.manager import PluginManager, get_plugin_manager
from edgeopt.process.memory_limit import memory_limit_bytes
from edgeopt.types import DeviceProfile, TargetInfo

log = logging.getLogger("edgeopt")

SYNTHETIC_SAMPLES = 32
AUTO_TARGET = "auto"
"""``--target auto``: search every available target and deploy the fastest (``edgeopt.pipeline.compare``)."""
AUTO_BUDGET_S = 60.0
"""Default search budget of ``--target auto`` (seconds, every target's fp32 baseline and all the searches
together; the searches get at least a third of it after the baselines, ``edgeopt.pipeline.target_order``): its
searches run fastest target first and screened for speed, so what the budget leaves out is the least promising
part. With the fixed stages around it (import, reference, final timing, profile) a 10 MB model's deploy stays
within about two minutes on 2 cores."""
OBJECTIVES = ("latency", "latency-p90", "throughput")


@dataclass(frozen=True)
class DeployRequest:
    """Everything a deploy needs; plain data so a deploy can run as a job elsewhere."""

    source: object
    target: str = "cpu"
    device: str | None = None
    precision: str = "auto"
    calib: object = None
    eval: object = None
    max_drop: float = 1.0
    metric: str | Callable | None = None
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    batches: tuple[int, ...] = (1,)
    slo_ms: float | None = None
    out: Path | None = None
    force_precision: bool = False
    trust_pickle: bool = False
    trust_code: bool = False
    """Let a model file run code from outside its framework while loading (Keras Lambda/custom layers)."""
    weights: Path | None = None
    runs: int | None = None
    timing_s: float = 2.0
    threads: int | None = None
    budget_s: float | None = None
    """Wall-clock limit for the candidate search (compile, check, fallback); candidates not started in time
    are listed as skipped. Timing (``timing_s`` per run) and profiling come on top. With several targets it
    bounds their searches together (``edgeopt.pipeline.target_order``). None: no limit, except that ``--target auto``
    stops starting candidates after ``AUTO_BUDGET_S`` unless ``exhaustive``."""
    cache: bool = True
    """Reuse compiled and evaluated candidates from the search cache (``edgeopt.search.cache``)."""
    exhaustive: bool = False
    """Build every plan of a ``--precision auto`` search, even those the speed screen shows cannot win
    (``edgeopt.search.speed_screen``)."""
    objective: str = "latency"
    """What ``--target auto`` and ``edgeopt compare`` optimize: ``latency`` (batch 1, p50 with p90 shown) or
    ``throughput`` (samples/s over ``batches``, the largest batch whose p90 meets ``slo_ms`` when given)."""
    targets: tuple[str, ...] = ()
    """Targets ``--target auto`` searches; empty: every available target."""
    compression: CompressionSpec | None = None
    """Compress the torch source first (prune, distill, cluster, binarize, QAT; ``edgeopt.compress``); the
    deploy then imports the compressed model and records every stage in ``manifest["compression"]``."""
    state: Mapping[str, str] | None = None
    """Recurrent state of a streaming model, output -> input (``{"stateN": "state"}``): calibration, evaluation
    and synthetic data then run as a stream, each call's state fed back (``edgeopt.data.stream``). None detects
    obvious pairs (``edgeopt.data.stream.detect_state``); ``{}`` runs the model without state."""
    max_memory: int | str | None = None
    """Memory each candidate build may use, bytes or a size such as ``"2GiB"``: every build runs in a worker
    process whose tree is stopped past it, the candidate then failed with that reason (``edgeopt.search.build_worker``).
    None: 60% of the memory available when the search starts (``edgeopt.process.memory_limit``)."""


@dataclass(frozen=True)
class Deployment:
    """A written, verified artifact."""

    path: Path
    manifest: dict
    warnings: tuple[str, ...] = ()

    @property
    def profile(self) -> dict:
        return self.manifest.get("profile", {})

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})


class LogEvents:
    """Default Events for the SDK: steps to the ``edgeopt`` log, warnings through ``warnings.warn`` as
    ``EdgeoptWarning``."""

    def step(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        warnings.warn(message, EdgeoptWarning, stacklevel=3)


def resolve_device(name: str | None, target: TargetInfo) -> DeviceProfile:
    if name is None or name == "host":
        if "cpu" in target.device_kinds:
            return host_profile()
        raise TargetError(
            f"target {target.name!r} needs a device profile (--device)",
            hint="run `edgeopt devices` and pass --device NAME",
        )
    return get_profile(name)


def measured_on_host(device: DeviceProfile) -> str:
    """"this host" when ``device`` is a CPU profile of another machine (CPU runners run here), else ""."""
    return "this host" if device.kind == "cpu" and device.name != host_profile().name else ""


def default_out(source: object, target: str) -> Path:
    stem = Path(source).stem if isinstance(source, (str, Path)) else type(source).__name__.lower()
    stem = stem.replace(":", "-").replace(".", "-") or "model"
    return Path.cwd() / f"{stem}-{target}.edgeopt"


def check_deploy_request(request: DeployRequest, pm: PluginManager | None = None) -> None:
    from edgeopt.extras import check_request

    check_request(request.source, weights=request.weights, compression=request.compression)  # before any work
    if request.max_memory is not None:
        memory_limit_bytes(request.max_memory)  # a malformed --max-memory fails here, not in every build
    (pm or get_plugin_manager()).check_metric(request.metric)  # a plugin's metric name activates its metrics
    if request.budget_s is not None and not (math.isfinite(request.budget_s) and request.budget_s > 0):
        raise InputSpecError(f"--budget-s must be a positive number of seconds, got {request.budget_s}",
                             hint="leave --budget-s unset for no limit")
    if request.objective not in OBJECTIVES:
        raise InputSpecError(f"unknown objective {request.objective!r}", hint=f"choose one of: {', '.join(OBJECTIVES)}")
    if not math.isfinite(request.max_drop):
        raise InputSpecError(f"--max-drop must be a finite number, got {request.max_drop}",
                             hint="give the largest accepted drop in the metric's own units, e.g. 1.0")
