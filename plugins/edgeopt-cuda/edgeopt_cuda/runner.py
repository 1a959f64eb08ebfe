"""A GPU session behind edgeopt's ``Runner`` protocol, with IO binding (no timing here).

What one ``run(feeds)`` does, and so what the core's harness times, on purpose:

1. copy each input from host memory into its device buffer (``OrtValue.update_inplace``: one
   host-to-device copy per input; the buffers were allocated and bound once, at load);
2. run the model (``run_with_iobinding``; with a CUDA graph, one graph replay), which returns after the
   GPU has finished;
3. copy each output from its pre-bound device buffer to a new host array (one device-to-host copy).

So latency is what a caller holding numpy arrays sees: H2D + compute + D2H, no allocation per run. It is
the same work ``InferenceSession.run`` does for numpy inputs, which keeps comparisons with plain ONNX
Runtime fair. ``run_resident()`` times only step 2 on the inputs already on the device, for a
compute-only figure (the GPU benchmark reports both).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import (
    ORT_DTYPES,
    CompileError,
    InputSpecError,
    TargetUnavailable,
    cache_dir,
    feeds_mismatch,
    ort_signature,
)

from edgeopt_cuda.config import CachePaths, EpConfig, provider_options
from edgeopt_cuda.runtime import import_onnxruntime
from edgeopt_cuda.status import provider_problem

SMOKE_RUNS = 3
"""Runs on zero inputs at load: they build TensorRT engines, run cuDNN's algorithm search and capture the
CUDA graph, so a failure there shows at load (and a CUDA graph can be turned off) instead of mid-timing."""


def _static_shape(shape: Sequence[Any]) -> tuple[int, ...] | None:
    return tuple(int(d) for d in shape) if all(isinstance(d, int) and d > 0 for d in shape) else None


class BoundSession:
    """IO binding over an ``onnxruntime.InferenceSession``: buffers on ``device`` bound once, reused every run.

    Inputs with static shapes get device buffers filled by one copy per run; inputs with dynamic shapes are
    bound from host memory per run (ORT copies them). Outputs with static shapes get device buffers;
    dynamic ones are re-bound unallocated before each run and ORT allocates them on the device. ``device``
    is ``cuda`` on a GPU; ``cpu`` works too, with the same semantics, which is how this class is tested
    without a GPU.
    """

    def __init__(self, session: Any, *, device: str = "cuda", device_id: int = 0) -> None:
        import onnxruntime as ort

        self._session = session
        self._device, self._device_id = device, device_id
        self._binding = session.io_binding()
        self.inputs = ort_signature(session.get_inputs())
        self._buffers: dict[str, Any] = {}
        for name, (dtype, shape) in self.inputs.items():
            fixed = _static_shape(shape)
            if fixed is not None:
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(fixed), np.dtype(dtype), device, device_id)
                self._binding.bind_ortvalue_input(name, value)
                self._buffers[name] = value
        self._outputs: list[Any] = []
        self._dynamic_outputs: list[str] = []
        for out in session.get_outputs():
            fixed = _static_shape(out.shape)
            if fixed is None:
                self._dynamic_outputs.append(out.name)
                self._outputs.append(None)
            else:
                dtype = np.dtype(ORT_DTYPES.get(out.type, "float32"))
                value = ort.OrtValue.ortvalue_from_shape_and_type(list(fixed), dtype, device, device_id)
                self._binding.bind_ortvalue_output(out.name, value)
                self._outputs.append(value)

    @property
    def fixed_addresses(self) -> bool:
        """Every input and output lives in a buffer bound once (what CUDA graphs need)."""
        return len(self._buffers) == len(self.inputs) and all(v is not None for v in self._outputs)

    def mismatch(self, feeds: Mapping[str, np.ndarray]) -> str | None:
        """What about ``feeds`` does not fit the model's inputs, or None when they fit."""
        return feeds_mismatch(self.inputs, feeds)

    def upload(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Copy ``feeds`` into the bound input buffers (dynamic-shape inputs are bound from host memory)."""
        problem = self.mismatch(feeds)
        if problem:
            raise InputSpecError(problem)
        for name in self.inputs:
            array = np.ascontiguousarray(feeds[name])
            buffer = self._buffers.get(name)
            if buffer is None:
                self._binding.bind_cpu_input(name, array)
            else:
                buffer.update_inplace(array)
        for name in self._dynamic_outputs:  # unallocated again: ORT sizes them for this run's shapes
            self._binding.bind_output(name, self._device, self._device_id)

    def run_resident(self) -> None:
        """Run on the inputs already bound; outputs stay in their device buffers."""
        self._session.run_with_iobinding(self._binding)

    def download(self) -> list[np.ndarray]:
        """The outputs as new host arrays, in graph order (never views of the bound buffers)."""
        dynamic = None
        results = []
        for index, value in enumerate(self._outputs):
            if value is None:
                if dynamic is None:
                    dynamic = self._binding.copy_outputs_to_cpu()
                results.append(np.array(dynamic[index], copy=True))
            else:
                host = value.numpy()  # device-to-host copy for cuda; a view of the buffer for cpu
                results.append(host.copy() if self._device == "cpu" else host)
        return results

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Upload, run, download: the three steps the module docstring describes."""
        self.upload(feeds)
        self.run_resident()
        return self.download()


def cache_root_for(directory: Path) -> Path:
    """Where TensorRT engines for a model in ``directory`` are cached.

    A compile work directory keeps them in ``trt_cache/`` beside the model (not listed in the artifact's
    files). An artifact (it has ``manifest.json``) must stay exactly as hashed, so its engines go to the
    ``tensorrt`` folder of edgeopt's cache folder (``edgeopt.plugin.cache_dir``: ``$EDGEOPT_CACHE_DIR``, else
    the platform's user cache folder).
    """
    directory = Path(directory)
    if not (directory / "manifest.json").exists():
        return directory / "trt_cache"
    return cache_dir("tensorrt")


def engine_cache(cache_root: Path, model: bytes, config: EpConfig, batch: int) -> CachePaths:
    """One engine folder per (model bytes, provider settings, batch): TensorRT's own cache key ignores the
    precision flags and, for models loaded from memory, the input shapes."""
    model_key = hashlib.sha256(model).hexdigest()[:16]
    config_key = hashlib.sha256(json.dumps(config.to_params(), sort_keys=True).encode()).hexdigest()[:8]
    return CachePaths(engines=cache_root / f"{model_key}-{config_key}-b{batch}", timing=cache_root / "timing")


def _fixed_batch(model: Any) -> int | None:
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def model_for_batch(path: Path, batch: int, config: EpConfig) -> bytes:
    """The model's bytes for ``batch``: as is when its batch is dynamic or already ``batch``, else re-batched
    with the core's ``with_batch`` (the core checks the result against per-sample runs)."""
    import onnx
    from edgeopt.plugin import with_batch

    model = onnx.load(str(path), load_external_data=True)
    fixed = _fixed_batch(model)
    if fixed is None:
        largest = config.profile_max_batch()
        if largest is not None and batch > largest:
            raise CompileError(
                f"batch {batch} exceeds the TensorRT optimization profile (max batch {largest})",
                hint="profile at a smaller batch, or recompile with a larger max in the ep-config profiles",
            )
        return model.SerializeToString()
    if fixed == batch:
        return model.SerializeToString()
    return with_batch(model, batch).SerializeToString()


def _zeros(inputs: Mapping[str, tuple[str, tuple[Any, ...]]]) -> dict[str, np.ndarray] | None:
    feeds = {}
    for name, (dtype, shape) in inputs.items():
        fixed = _static_shape(shape)
        if fixed is None:
            return None
        feeds[name] = np.zeros(fixed, dtype=np.dtype(dtype))
    return feeds


class OrtCudaRunner:
    """Runs a model on the CUDA or TensorRT execution provider with IO binding (see the module docstring).

    Raises ``TargetUnavailable`` when ONNX Runtime lacks the provider or falls back to another one, and
    ``CompileError`` when the model cannot be loaded or run. ``notes`` says what was really used
    (providers, CUDA graph on or off and why). ``device`` is where the IO-binding buffers live: ``cuda``;
    the plugin's own tests pass ``cpu`` to drive this logic through a CPU session.
    """

    def __init__(
        self,
        model_path: Path,
        *,
        config: EpConfig,
        cache_root: Path,
        batch: int = 1,
        threads: int | None = None,
        device: str = "cuda",
    ) -> None:
        ort, _ = import_onnxruntime(tensorrt=config.provider == "tensorrt")
        self._path = Path(model_path)
        self.config = config
        self._device = device
        available = ort.get_available_providers()
        if config.ort_provider not in available:
            from edgeopt_cuda.status import ort_distributions

            reason = provider_problem(available, ort_distributions(), ort.__version__) or (
                f"this onnxruntime build has no {config.ort_provider}; run `edgeopt targets` for what to install"
            )
            raise TargetUnavailable(f"cannot run {self._path.name} on the GPU: {reason}", hint=reason)
        source = model_for_batch(self._path, batch, config)
        self.cache = engine_cache(cache_root, source, config, batch) if config.provider == "tensorrt" else None
        if self.cache is not None:
            self.cache.engines.mkdir(parents=True, exist_ok=True)
            self.cache.timing.mkdir(parents=True, exist_ok=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.log_severity_level = 3
        self.notes: list[str] = []
        self._session, self._bound = self._open(ort, source, options, config.cuda_graph)
        self.providers = tuple(self._session.get_providers())
        self.notes.insert(0, f"providers: {', '.join(self.providers)}")

    def _session_for(self, ort: Any, source: bytes, options: Any, cuda_graph: bool) -> Any:
        providers = provider_options(self.config, self.cache, cuda_graph=cuda_graph)
        try:
            session = ort.InferenceSession(source, sess_options=options, providers=providers)
        except Exception as exc:  # ORT's pybind errors
            raise CompileError(
                f"ONNX Runtime cannot load {self._path.name} on {self.config.ort_provider}: {str(exc).splitlines()[0]}",
                hint="try another precision or plan; run with EDGEOPT_DEBUG=1 for the full error",
            ) from exc
        used = session.get_providers()
        if not used or used[0] != self.config.ort_provider:
            raise TargetUnavailable(
                f"ONNX Runtime fell back from {self.config.ort_provider} to {', '.join(used)} for {self._path.name}",
                hint="run `edgeopt targets`: it names the missing CUDA/cuDNN/TensorRT library",
            )
        return session

    def _open(self, ort: Any, source: bytes, options: Any, cuda_graph: bool) -> tuple[Any, BoundSession]:
        """Open the session and smoke-run it; with a CUDA graph that fails, say why and reopen without."""
        try:
            session = self._session_for(ort, source, options, cuda_graph)
            bound = BoundSession(session, device=self._device, device_id=self.config.device_id)
            if cuda_graph and not bound.fixed_addresses:
                raise CompileError("inputs or outputs have dynamic shapes, so their device addresses are not fixed")
            zeros = _zeros(bound.inputs)
            for _ in range(SMOKE_RUNS if zeros is not None else 0):
                bound.run(zeros)
        except (TargetUnavailable, InputSpecError):
            raise  # a fallback to another provider, or feeds that do not fit: no CUDA graph would change that
        except CompileError as exc:
            if not cuda_graph:
                raise
            self.notes.append(f"CUDA graph off: {exc.message}")
            return self._open(ort, source, options, False)
        except Exception as exc:  # ORT errors during the smoke runs
            if not cuda_graph:
                raise CompileError(
                    f"{self._path.name} fails on {self.config.ort_provider}: {str(exc).splitlines()[0]}",
                    hint="try another precision or plan",
                ) from exc
            self.notes.append(f"CUDA graph off: {str(exc).splitlines()[0]}")
            return self._open(ort, source, options, False)
        self.cuda_graph = cuda_graph
        if cuda_graph:
            self.notes.append("CUDA graph on: each run replays one captured graph")
        return session, bound

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """H2D copy of the inputs, one run, D2H copy of the outputs; outputs in graph order."""
        if self._bound is None:
            raise RuntimeError("OrtCudaRunner.run called after close()")
        try:
            return self._bound.run(feeds)
        except InputSpecError:
            raise
        except Exception as exc:  # ORT's pybind errors
            raise CompileError(
                f"ONNX Runtime failed running {self._path.name} on {self.config.ort_provider}: {exc}",
                hint="the compiled model does not run on this GPU; try another precision or plan",
            ) from exc

    def run_resident(self) -> None:
        """Run on the inputs already on the device (from the last ``run``); nothing is copied."""
        if self._bound is None:
            raise RuntimeError("OrtCudaRunner.run_resident called after close()")
        self._bound.run_resident()

    def close(self) -> None:
        """Drop the session and its device buffers."""
        self._bound = None
        self._session = None
