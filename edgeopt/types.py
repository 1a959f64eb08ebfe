"""Plain data passed between the core and plugins.

Every value a hook receives or returns is one of these frozen dataclasses (or a ``Runner`` /
``EnergyMeter`` object implementing the protocols below). They hold paths and numbers, never open
sessions, so a job can be serialized and run elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

Dim = int | str
"""A tensor dimension: a size, or a symbolic name for a dynamic one."""

Feeds = Mapping[str, np.ndarray]
"""Model inputs by name."""


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output."""

    name: str
    dtype: str
    """numpy dtype name, e.g. ``float32``."""
    shape: tuple[Dim, ...]

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.shape)


@dataclass(frozen=True)
class Graph:
    """A normalized, checked, hardware-neutral ONNX model stored at ``path``.

    Invariants: passes ``onnx.checker`` (full check), opset >= 17, shapes inferred, graph inputs
    exclude initializers, every input shape in ``inputs`` static unless the user kept a dimension dynamic.
    ``inputs`` are the shapes a deploy feeds; the model file keeps dynamic input dims only where fixing them
    made ONNX Runtime refuse the graph (a note says so).
    """

    path: Path
    fingerprint: str
    """sha256 of the normalized model's bytes."""
    source_fingerprint: str
    """sha256 of what the user gave (file bytes, or the exported model's bytes)."""
    source_format: str
    """``onnx``, ``torch``, ``sklearn`` or a plugin's own format name."""
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source_opset: int | None = None
    notes: tuple[str, ...] = ()
    """Warnings raised while normalizing (e.g. a dynamic dim fixed to a default)."""

    def input(self, name: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(name)


@dataclass(frozen=True)
class ImportOptions:
    """How to turn a user's model into a Graph."""

    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Fixed shapes by input name; key ``""`` applies to a single-input model."""
    trust_pickle: bool = False
    """Allow loading pickled objects (whole torch models, joblib files)."""
    allow_custom_ops: bool = False
    """Allow ops from non-standard domains."""
    weights: Path | None = None
    """Weights file for a ``package.module:factory`` torch source."""
    workdir: Path | None = None
    """Where the normalized model is written; a temp dir when None."""
    opset: int = 17
    """Minimum opset after normalization."""
    simplify: bool = True
    """Run graph simplification (onnxslim)."""
    max_tensor_bytes: int = 2 * 1024**3
    """Refuse any single tensor the model declares larger than this."""
    dynamic_dim_default: int = 1
    """Size given to a dynamic dimension the user did not fix (with a warning)."""
    trust_code: bool = False
    """Allow a model file to run code from outside its framework while loading: Keras Lambda layers and
    Python lambdas (``safe_mode=False``), custom layers/functions (their modules are imported)."""


@dataclass(frozen=True)
class DeviceProfile:
    """What a device can do, read from ``device_profiles/*.yaml``. Figures carry their ``sources``."""

    name: str
    kind: str
    """``cpu``, ``gpu``, ``npu`` or ``tpu``."""
    description: str
    peak_ops: Mapping[str, float]
    """Peak operations per second by precision (``fp32``, ``fp16``, ``int8``...)."""
    memory_bandwidth: float
    """Bytes per second."""
    idle_power_w: float
    active_power_w: float
    isa: tuple[str, ...] = ()
    """CPU instruction-set flags that matter for kernels (``avx2``, ``avx512_vnni``, ``amx``...)."""
    cores: int | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    """Where each figure comes from, by field name."""
    path: Path | None = None


@dataclass(frozen=True)
class TargetInfo:
    """A deploy target as a plugin registers it."""

    name: str
    plugin: str
    description: str
    precisions: tuple[str, ...]
    """Precisions this target can compile: ``fp32``, ``fp16``, ``int8``, ``int8-dynamic``..."""
    available: bool = True
    reason: str = ""
    """Why the target cannot run here, and what to install or attach; empty when available."""
    device_kinds: tuple[str, ...] = ("cpu",)
    """Device profile kinds this target runs on."""
    tolerances: Mapping[str, float] = field(default_factory=dict)
    """Largest error each precision may show against the fp32 reference, as ``max|out - ref| / max|ref|``
    per output. The conformance suite (``edgeopt.testing``) holds runners to it; a precision left out
    gets ``edgeopt.testing.DEFAULT_TOLERANCES``."""
    compression_speedups: tuple[str, ...] = ()
    """Pruning kinds (``edgeopt.compress``) this target turns into speed: ``structured`` (fewer channels, a
    smaller dense model), ``2:4`` (semi-structured sparse kernels, e.g. TensorRT on sparse tensor cores),
    ``unstructured``. A deploy asked for a kind the target does not list warns that it gains no speed there.
    Size from ``--cluster``/``--binarize`` needs no declaration: every target loads the smaller file."""
    emulated: str = ""
    """Non-empty when this target can run here only as a stand-in for its real device (e.g. Edge TPU int8 models
    on the host CPU with no Coral attached): why, in one line. ``--target auto`` and ``compare`` leave such a
    target out unless it is named in ``--targets``, since its timings say nothing about the device."""


@dataclass(frozen=True)
class PassSpec:
    """One optimization step with its parameters, exactly as recorded in the manifest."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """One candidate configuration for a target."""

    target: str
    precision: str
    passes: tuple[PassSpec, ...] = ()
    label: str = ""
    """Short human name, e.g. ``int8 static per-channel minmax``."""
    threads: int | None = None
    notes: tuple[str, ...] = ()
    keep_fp32: tuple[str, ...] = ()
    """Node names of the normalized graph the target must leave in higher precision: their weights stay
    float and they read their inputs unquantized. Set by the core's accuracy fallback (mixed precision). A
    target that cannot honour a name raises ``CompileError``; one that ignores the field builds the same
    files as without it, which the core reports as a duplicate candidate."""
    calibration: str = ""
    """Activation-range calibration for a calibrated int8 plan: ``minmax``, ``percentile`` or ``entropy``;
    empty keeps the plan's own choice. Set by the core's ``--precision auto`` search; ignored like
    ``keep_fp32`` by targets without the choice."""
    granularity: str = ""
    """Int8 weight scales ``per-channel`` or ``per-tensor``; empty keeps the plan's own choice (see
    ``calibration``)."""
    kernels: str = ""
    """Plans of one target with the same non-empty ``kernels`` run the same kernels: they differ only in
    quantization scales (calibration method, percentile, symmetry), so their speed is judged by whichever of
    them ran first (``edgeopt.search.speed_screen``). Empty: the plan shares kernels only with the core's calibration
    and granularity variants of itself."""


@dataclass(frozen=True)
class Compiled:
    """What a target produced for one Plan: files under ``directory``."""

    directory: Path
    model_file: str
    """Path of the main model file, relative to ``directory``."""
    files: tuple[str, ...]
    """Every file the runtime needs, relative to ``directory`` (includes ``model_file``)."""
    plan: Plan
    runtime: str
    """Runtime and version, e.g. ``onnxruntime 1.22.0``."""
    passes: tuple[PassSpec, ...] = ()
    """Passes actually applied, with their final parameters."""
    notes: tuple[str, ...] = ()

    @property
    def model_path(self) -> Path:
        return self.directory / self.model_file


@dataclass(frozen=True)
class RunSettings:
    """How a runner should execute."""

    batch: int = 1
    threads: int | None = None
    """Intra-op threads; None lets the runtime decide."""


@dataclass(frozen=True)
class StatePair:
    """A recurrent state of a streaming model: graph output ``output`` is fed back as graph input ``input`` on
    the next call (e.g. ``stateN`` -> ``state``, ``hn`` -> ``h0``, ``present.0.key`` -> ``past.0.key``)."""

    output: str
    input: str
    index: int
    """Position of ``output`` among the graph's outputs (runners return outputs in that order)."""


@dataclass(frozen=True)
class Dataset:
    """Calibration or evaluation samples, each array stacking samples on axis 0.

    An input named in ``fed_whole`` has no batch axis at 0 (a scalar such as a sample rate, a state laid out
    ``[layers, batch, hidden]``): its array stacks one whole feed per sample on a new axis 0, and a step feeds
    ``array[i]`` as it is. With ``state`` the samples are one stream: run one sample per call, in order, each
    call's state outputs fed back as the next call's state inputs, starting from the arrays' first sample
    (``edgeopt.data.stream``). The state arrays of later samples are the states a stream of the fp32 reference fed
    there once ``edgeopt.data.stream.with_stream_states`` has run (what calibration and timing feed), or whatever
    the source held before that.
    """

    arrays: Mapping[str, np.ndarray]
    labels: np.ndarray | None = None
    synthetic: bool = False
    source: str = ""
    """Where the data came from (file path, ``iterable``, ``synthetic``)."""
    fed_whole: tuple[str, ...] = ()
    """Inputs without a batch axis at 0, fed whole per step (see the class docstring)."""
    state: tuple[StatePair, ...] = ()
    """State pairs: when non-empty the data is run as one stream (see the class docstring)."""

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    @property
    def not_batchable(self) -> str:
        """Why samples cannot be stacked into a larger batch ("" when they can): a stateful input (each call
        needs the previous call's state), or an input fed whole whose batch axis, if any, is not axis 0."""
        if self.state:
            return "stateful input " + ", ".join(repr(p.input) for p in self.state)
        blocked = [name for name in self.fed_whole if name in self.arrays and np.ndim(self.arrays[name]) > 1]
        return ("input " + ", ".join(repr(n) for n in blocked) + " has no batch axis at 0") if blocked else ""

    def head(self, n: int) -> Dataset:
        """The first ``n`` samples (all when fewer), with every other field kept."""
        labels = self.labels[:n] if self.labels is not None else None
        return replace(self, arrays={k: v[:n] for k, v in self.arrays.items()}, labels=labels)

    def batches(self, batch: int) -> list[dict[str, np.ndarray]]:
        """Consecutive feeds of ``batch`` samples (the last partial one dropped unless it is the only one).

        An input in ``fed_whole`` gets the whole value of each feed's first sample. ``DataError`` when
        ``batch`` > 1 and the data is ``not_batchable``.
        """
        if batch > 1 and self.not_batchable:
            from edgeopt.errors import DataError

            raise DataError(f"batch {batch}: not batchable: {self.not_batchable}",
                            hint="run it at batch 1 (one call per step)")
        n = len(self)
        stops = list(range(batch, n + 1, batch)) or [n]
        whole = set(self.fed_whole)
        return [
            {
                k: np.array(v[max(s - batch, 0)]) if k in whole else np.ascontiguousarray(v[max(s - batch, 0) : s])
                for k, v in self.arrays.items()
            }
            for s in stops
        ]


@runtime_checkable
class Runner(Protocol):
    """A loaded model ready to run. Created once, called many times by the core's harness.

    Optional attribute ``on_device: bool`` (absent means True): False when the runner runs on this host
    instead of the device it was made for (e.g. the accelerator is absent and the runtime fell back to the
    CPU). The profile then says where the latency was measured and estimates energy for the device.
    """

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        """Run one inference; return outputs in the graph's output order as numpy arrays."""
        ...

    def close(self) -> None:
        """Release the session; the runner is not used afterwards."""
        ...


@dataclass(frozen=True)
class EnergyReading:
    joules: float
    method: str
    """``rapl``, ``nvml`` or ``estimated:<how>``."""


@runtime_checkable
class EnergyMeter(Protocol):
    """A counter read around a timed region."""

    name: str
    method: str

    def start(self) -> None: ...

    def stop(self) -> EnergyReading: ...


@dataclass(frozen=True)
class LatencyStats:
    """Latency of one configuration, seconds."""

    runs: int
    batch: int
    min: float
    p50: float
    p90: float
    p99: float
    mean: float
    stdev: float
    throughput: float
    """Samples per second at this batch."""
    method: str = "measured:wallclock"
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)
    """Every timed run (seconds), in timing order, so choices can test whether two timings differ
    (``edgeopt.measure.significance``); empty when the stats were not measured here. Never serialized."""


@dataclass(frozen=True)
class Metrics:
    """Quality of a candidate against the reference."""

    metric: str
    """Name of the task metric (``accuracy``, ``mse``...) or ``fidelity:cosine``."""
    reference: float | None
    candidate: float | None
    drop: float | None
    """Drop in the metric's own units (positive is worse)."""
    higher_is_better: bool = True
    fidelity: Mapping[str, float] = field(default_factory=dict)
    """Label-free agreement with the reference: top1_agreement, cosine, sqnr_db, max_abs_error, and the proxy of
    the output's kind (position_top1, map_iou, pixel_top1, embedding_cosine, similarity_rank_corr)."""
    samples: int = 0
    synthetic_data: bool = False
    proxy: str = ""
    """For a label-free metric: which output kind it judged and how (``edgeopt.evaluate.fidelity.Proxy.why``)."""


@dataclass(frozen=True)
class DeploymentRecord:
    """One registered deployment. Mappings are plain JSON data taken from the manifest."""

    name: str
    version: int
    """1, 2, ... per name, assigned by the registry at registration."""
    created: str
    """When it was registered, ISO 8601 UTC."""
    source_path: str
    source_format: str
    source_fingerprint: str
    graph_fingerprint: str
    target: str
    device: str
    precision: str
    plan: Mapping[str, Any]
    """The manifest's ``plan``: precision, label, passes with parameters, threads."""
    metrics: Mapping[str, Any]
    """The manifest's ``metrics``: metric, reference, candidate, drop, fidelity, units."""
    profile: Mapping[str, Any]
    """The manifest's ``profile``: latency per batch, size, memory, energy, each with its method."""
    artifact_path: str
    """Absolute path of the artifact directory."""
    manifest_sha256: str
    """sha256 of the artifact's ``manifest.json`` bytes; loading through the registry checks it."""
    request: Mapping[str, Any] = field(default_factory=dict)
    """What ``edgeopt redeploy`` re-runs: source, weights, calib/eval paths and the deploy options."""
    calibration: Mapping[str, Any] = field(default_factory=dict)
    """Per-input-channel summary of the calibration data (``edgeopt.monitoring.stats.summarize``)."""
    environment: Mapping[str, Any] = field(default_factory=dict)
    edgeopt_version: str = ""
    links: Mapping[str, str] = field(default_factory=dict)
    """References plugins returned from ``edgeopt_deployment_registered`` (e.g. an MLflow run)."""
    stages: tuple[str, ...] = ()
    """Stages that point at this version now (filled when read from the registry)."""
    measured_on: Mapping[str, Any] = field(default_factory=dict)
    """Where a device farm measured it (the manifest's ``measured_on``: node, device, device profile;
    ``edgeopt.farm``); empty for a deploy measured on the machine that ran it."""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"
