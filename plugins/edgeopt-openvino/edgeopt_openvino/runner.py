"""A compiled OpenVINO model behind edgeopt's ``Runner`` protocol (no timing here: the core times it).

Batch 1 (or a batch no stream split fits): one infer request, compiled with ``PERFORMANCE_HINT=LATENCY``;
``run`` sets the inputs as shared tensors (no copy), calls ``infer()`` and copies the outputs out.

Batch ``b > 1``: throughput mode. OpenVINO is asked (``PERFORMANCE_HINT=THROUGHPUT``) how many infer
requests keep the device busy (``OPTIMAL_NUMBER_OF_INFER_REQUESTS``, one per stream); the batch is
split into ``k`` equal sub-batches, ``k`` the largest divisor of ``b`` not above that number, the IR is
reshaped to ``b/k`` and compiled with ``k`` streams, and ``run`` starts one sub-batch on each of ``k``
requests (``start_async``), waits for all and concatenates their outputs. To the harness ``run`` is
still one synchronous inference of the whole batch, so latency at batch ``b`` means "time until all
``b`` results are back" and throughput is ``b`` over it. The requests are driven directly rather than
through ``AsyncInferQueue``: its per-job Python callback costs about as much as a whole digits-CNN
inference (see docs/openvino.md). When ``k`` would be 1 the whole batch runs on one LATENCY request.

``INFERENCE_PRECISION_HINT`` pins the arithmetic to what the core measured, never OpenVINO's own default
(which is bf16 on CPUs with AVX512_BF16 or AMX): the plan's ``ov-convert`` pass may name it
(``inference_precision``: ``f32``, ``bf16`` or ``f16``; the ``bf16`` plans and the int8 plans with bf16 float
parts do); otherwise ``f32`` for fp32 and for int8's float parts on CPUs, ``f16`` for fp16 on devices that
compute in fp16.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import CompileError, InputSpecError, TargetUnavailable

from edgeopt_openvino.devices import capabilities, device_present

LATENCY = "LATENCY"
THROUGHPUT = "THROUGHPUT"
_RESHAPE_HINT = "this model fixes its batch size internally; profile it at its own batch"
_TENSOR_CACHE = 32
"""Input tensors kept for reuse (the harness cycles through up to 8 feeds)."""


HINTS = {"f32": "FP32", "bf16": "BF16", "f16": "FP16"}
"""``INFERENCE_PRECISION_HINT`` values edgeopt sets, with the capability a device must report for each."""


def inference_precision(precision: str, ov_device: str, caps: Sequence[str], requested: str | None = None) -> str:
    """The ``INFERENCE_PRECISION_HINT`` for a plan precision on a device with these capabilities.

    ``requested`` (from the plan's ``ov-convert`` pass) wins when given; a hint the device cannot compute is a
    ``CompileError``, never a silent change of arithmetic."""
    if requested:
        if requested not in HINTS:
            raise CompileError(f"unknown OpenVINO inference precision {requested!r}",
                               hint=f"use one of {', '.join(HINTS)}")
        if requested != "f32" and HINTS[requested] not in caps:
            raise CompileError(
                f"this {ov_device} does not compute in {requested} (OpenVINO reports {', '.join(caps) or 'nothing'})",
                hint="deploy again on this machine: the plan was made for a device with that arithmetic",
            )
        return requested
    if precision == "bf16":
        return inference_precision(precision, ov_device, caps, "bf16")
    if "FP16" in caps and (precision == "fp16" or (precision == "int8" and ov_device != "CPU")):
        return "f16"
    return "f32"


def runtime_config(
    core: Any,
    ov_device: str,
    *,
    precision: str,
    hint: str = LATENCY,
    threads: int | None = None,
    streams: int | None = None,
    compute: str | None = None,
) -> dict[str, str]:
    """The ``compile_model`` properties edgeopt uses (strings, as ``benchmark_app -load_config`` takes them);
    properties the device does not list in ``SUPPORTED_PROPERTIES`` are left out. ``compute`` is the plan's
    requested inference precision (see ``inference_precision``)."""
    config = {
        "PERFORMANCE_HINT": hint,
        "INFERENCE_PRECISION_HINT": inference_precision(precision, ov_device, capabilities(core, ov_device), compute),
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    if streams:
        config["NUM_STREAMS"] = str(int(streams))
    supported = set(core.get_property(ov_device, "SUPPORTED_PROPERTIES"))
    return {k: v for k, v in config.items() if k in supported}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _batched(model: Any) -> set[str]:
    """Names of the inputs that carry the batch: those leading with a dynamic size or with the first input's
    static leading size (the batch the model was built for). An input leading with another size has no batch
    axis there (a recurrent state laid out ``[layers, batch, hidden]``) and keeps its shape, as with the core's
    ``edgeopt.passes.batch.with_batch``."""
    ranked = [p for p in model.inputs if p.get_partial_shape().rank.is_static and len(p.get_partial_shape()) > 0]
    first = ranked[0].get_partial_shape()[0] if ranked else None
    built = first.get_length() if first is not None and first.is_static else None
    return {
        p.get_any_name() for p in ranked
        if not p.get_partial_shape()[0].is_static or p.get_partial_shape()[0].get_length() == built
    }


def _with_batch(model: Any, batch: int) -> Any:
    """A copy of ``model`` whose batched inputs (``_batched``) lead with ``batch`` (``CompileError`` when OpenVINO
    cannot)."""
    import openvino as ov

    batched = _batched(model)
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        if port.get_any_name() in batched and not (shape[0].is_static and shape[0].get_length() == batch):
            shapes[port.get_any_name()] = ov.PartialShape([ov.Dimension(batch), *list(shape)[1:]])
    if not shapes:
        return model
    copy = model.clone()
    try:
        copy.reshape(shapes)
    except Exception as exc:  # OpenVINO shape inference refuses it
        raise CompileError(f"OpenVINO cannot reshape the model to batch {batch}: {_first_line(exc)}",
                           hint=_RESHAPE_HINT) from exc
    return copy


def _leads_with(model_outputs: Sequence[Any], batch: int) -> bool:
    """Whether every output's first dimension is ``batch`` (or dynamic): sub-batches then concatenate."""
    for port in model_outputs:
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic or len(shape) == 0:
            return False
        if shape[0].is_static and shape[0].get_length() != batch:
            return False
    return True


class OpenVinoRunner:
    """Loads ``model.xml`` once on ``ov_device`` for ``batch``; ``run(feeds)`` is one inference of the batch."""

    def __init__(
        self,
        model_xml: Path,
        *,
        ov_device: str = "CPU",
        precision: str = "fp32",
        batch: int = 1,
        threads: int | None = None,
        compute: str | None = None,
    ) -> None:
        import openvino as ov

        self._ov = ov
        self._core: Any = ov.Core()
        devices = tuple(self._core.available_devices)
        if not device_present(ov_device, devices):
            raise TargetUnavailable(
                f"OpenVINO reports no {ov_device} device here (available: {', '.join(devices) or 'none'})",
                hint="run `edgeopt targets` to see which OpenVINO targets this machine has",
            )
        self._path = Path(model_xml)
        try:
            model = self._core.read_model(str(self._path))
        except Exception as exc:
            raise CompileError(f"OpenVINO cannot read {self._path.name}: {_first_line(exc)}",
                               hint="the artifact's IR is damaged or from a newer OpenVINO; re-run `edgeopt deploy`") \
                from exc
        self.batch = batch
        self._device, self._precision, self._threads, self._compute = ov_device, precision, threads, compute
        compiled, self.streams = self._compile(model, batch)
        self.mode = f"{THROUGHPUT.lower()} x{self.streams}" if self.streams > 1 else LATENCY.lower()
        self._compiled: Any = compiled
        self._requests: list[Any] | None = [compiled.create_infer_request() for _ in range(self.streams)]
        self._tensors: dict[int, tuple[np.ndarray, Any]] = {}
        self._chunk = batch // self.streams
        self._outputs = range(len(compiled.outputs))
        self._inputs = []
        batched = _batched(model)
        for port in model.inputs:
            shape = port.get_partial_shape()
            lead = port.get_any_name() in batched
            dims = [batch if i == 0 and lead else (d.get_length() if d.is_static else None)
                    for i, d in enumerate(shape)]
            self._inputs.append((port.get_any_name(), np.dtype(port.get_element_type().to_dtype()), tuple(dims)))

    def _compile(self, model: Any, batch: int) -> tuple[Any, int]:
        """``(compiled model, streams)``: one LATENCY request, or ``k`` THROUGHPUT streams on ``batch/k`` each."""
        whole = _with_batch(model, batch)
        if batch > 1:
            probe = self._compile_model(whole, THROUGHPUT)
            optimal = int(probe.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            del probe
            k = max(d for d in range(1, min(optimal, batch) + 1) if batch % d == 0)
            if k > 1:
                part = _with_batch(model, batch // k)
                if _leads_with(part.outputs, batch // k):
                    return self._compile_model(part, THROUGHPUT, streams=k), k
        return self._compile_model(whole, LATENCY), 1

    def _compile_model(self, model: Any, hint: str, *, streams: int | None = None) -> Any:
        self.config = runtime_config(
            self._core, self._device, precision=self._precision, hint=hint, threads=self._threads, streams=streams,
            compute=self._compute,
        )
        try:
            return self._core.compile_model(model, self._device, self.config)
        except Exception as exc:
            raise CompileError(f"OpenVINO cannot compile {self._path.name} for {self._device}: {_first_line(exc)}",
                               hint="try another precision, or target 'cpu'") from exc

    def mismatch(self, feeds: Mapping[str, np.ndarray]) -> str | None:
        """What about ``feeds`` does not fit the model's inputs, or None when they fit."""
        names = [name for name, _, _ in self._inputs]
        missing, extra = sorted(set(names) - set(feeds)), sorted(set(feeds) - set(names))
        if missing or extra:
            return f"inputs do not match the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
        for name, dtype, dims in self._inputs:
            value = feeds[name]
            fits = np.ndim(value) == len(dims) and all(
                d is None or d == v for d, v in zip(dims, np.shape(value), strict=True)
            )
            if getattr(value, "dtype", None) != dtype or not fits:
                want = [d if d is not None else "?" for d in dims]
                got = f"{getattr(value, 'dtype', type(value).__name__)}{list(np.shape(value))}"
                return f"input {name!r} is {got}, the model (built for batch {self.batch}) expects {dtype}{want}"
        return None

    def _arrays(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The feeds in input order, contiguous; ``InputSpecError`` (from ``mismatch``) when they do not fit."""
        arrays = []
        if len(feeds) == len(self._inputs):
            for name, dtype, dims in self._inputs:
                value = feeds.get(name)
                if value is None or getattr(value, "dtype", None) != dtype or value.shape != dims:
                    break
                arrays.append(np.require(value, requirements="C"))  # keeps a scalar 0-d (ascontiguousarray would not)
            else:
                return arrays
        problem = self.mismatch(feeds)
        if problem:
            raise InputSpecError(problem)
        return [np.require(feeds[name], requirements="C") for name, _, _ in self._inputs]  # dynamic dims that fit

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One inference of the whole batch; outputs in graph order, copied out of OpenVINO's tensors."""
        requests = self._requests
        if requests is None:
            raise RuntimeError("OpenVinoRunner.run called after close()")
        arrays = self._arrays(feeds)
        tensor = self._ov.Tensor
        try:
            if len(requests) == 1:
                request = requests[0]
                for i, array in enumerate(arrays):
                    request.set_input_tensor(i, self._shared_tensor(array))
                request.infer()
                return [request.get_output_tensor(o).data.copy() for o in self._outputs]
            c = self._chunk
            for j, request in enumerate(requests):
                for i, array in enumerate(arrays):
                    request.set_input_tensor(i, tensor(array[j * c : (j + 1) * c], shared_memory=True))
                request.start_async()
            for request in requests:
                request.wait()
            return [np.concatenate([r.get_output_tensor(o).data for r in requests], axis=0) for o in self._outputs]
        except Exception as exc:  # OpenVINO's RuntimeError from inside the plugin
            raise CompileError(f"OpenVINO failed running {self._path.name}: {_first_line(exc)}",
                               hint="the compiled model does not run on this device; try another precision") from exc

    def _shared_tensor(self, array: np.ndarray) -> Any:
        """An OpenVINO tensor over ``array``'s memory (no copy), reused while the same array object comes back:
        wrapping costs about as much as a tenth of a small model's inference (docs/openvino.md). The cache holds
        the arrays themselves, so an id is never reused while cached, and in-place changes are seen."""
        hit = self._tensors.get(id(array))
        if hit is not None and hit[0] is array:
            return hit[1]
        made = self._ov.Tensor(array, shared_memory=True)
        if len(self._tensors) >= _TENSOR_CACHE:
            self._tensors.pop(next(iter(self._tensors)))
        self._tensors[id(array)] = (array, made)
        return made

    def close(self) -> None:
        """Release the requests and the compiled model; the runner is not used afterwards."""
        self._requests = None
        self._compiled = None
        self._tensors.clear()
