"""A ``.tflite`` behind edgeopt's ``Runner`` protocol, on the LiteRT interpreter (no timing here).

The interpreter is ``ai_edge_litert.interpreter`` (``ai-edge-litert``), or ``tflite_runtime.interpreter``
where that is what the platform has (older ARM boards). The model is built for the graph's own batch
(1 for the Edge TPU); a runner for another batch ``b`` runs ``b / built`` invokes one after the other and
stacks the outputs, so its latency is the time for the whole batch on one interpreter.

Feeds and outputs are the graph's: float inputs of a full-integer model are quantized with the input's
scale and zero point, integer outputs dequantized with theirs, so callers never see int8; integer graph
outputs LiteRT narrowed (int64 → int32) are widened back. ``io.json``'s ``signature`` (written at compile
time) gives the signature keys in graph order and, for a route that left an output channels-last, the
permutation back to the graph's layout.

With ``edgetpu=True`` and a Coral attached, the Edge TPU delegate (``libedgetpu.so.1``) is loaded and the
compiler's ``model_edgetpu.tflite`` is run; otherwise the plain int8 model runs on the host CPU.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import InputSpecError, TargetUnavailable

IO_FILE = "io.json"
EDGETPU_LIBRARY = "libedgetpu.so.1"


def interpreter_module() -> tuple[Any, str]:
    """``(module with Interpreter and load_delegate, distribution name)``; ImportError when neither exists."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime import interpreter  # type: ignore[import-not-found]

        return interpreter, "tflite-runtime"


def runtime_version() -> str:
    """``ai-edge-litert 2.3.0`` (or tflite-runtime's), for ``Compiled.runtime``."""
    from importlib.metadata import PackageNotFoundError, version

    _, dist = interpreter_module()
    try:
        return f"{dist} {version(dist)}"
    except PackageNotFoundError:
        return dist


def _quantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if not scale:
        return value.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(value / scale + zero), info.min, info.max).astype(dtype)


def _dequantize(value: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    if not scale or np.issubdtype(value.dtype, np.floating):
        return value.astype(np.float32) if value.dtype == np.float16 else value.copy()
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)


class LiteRtRunner:
    """Loads ``model`` once; ``run(feeds)`` is one inference of ``batch`` samples, outputs in graph order."""

    def __init__(self, model: Path, *, batch: int = 1, threads: int | None = None, edgetpu: bool = False) -> None:
        module, _ = interpreter_module()
        model = Path(model)
        io = json.loads((model.parent / IO_FILE).read_text())
        self.inputs: list[dict] = io["inputs"]
        self.outputs: list[dict] = io["outputs"]
        self.built_batch = int(io.get("batch", 1))
        if batch % self.built_batch:
            raise InputSpecError(f"this model is built for batch {self.built_batch}; batch {batch} is not a multiple",
                                 hint=f"profile it at a multiple of {self.built_batch}")
        self.batch, self.repeats = batch, batch // self.built_batch
        delegates = []
        self.on_edgetpu = False
        self.on_device = True
        """False when made for a Coral that is absent: it runs on this host (set by the runner hook)."""
        if edgetpu:
            compiled = model.with_name(f"{model.stem}_edgetpu.tflite")
            if compiled.is_file():
                try:
                    delegates = [module.load_delegate(EDGETPU_LIBRARY)]
                except (ValueError, OSError) as exc:
                    raise TargetUnavailable(f"the Edge TPU delegate did not load ({exc})",
                                            hint="attach a Coral device and install libedgetpu1-std") from exc
                model, self.on_edgetpu = compiled, True
        kwargs: dict[str, Any] = {"model_path": str(model), "num_threads": threads}
        if delegates:
            kwargs["experimental_delegates"] = delegates
        self._interpreter: Any = module.Interpreter(**kwargs)
        self._interpreter.allocate_tensors()
        signature = self._interpreter._get_full_signature_list()
        keys = next(iter(signature.values())) if signature else None
        details = {d["index"]: d for d in self._interpreter.get_input_details()}
        out_details = {d["index"]: d for d in self._interpreter.get_output_details()}
        recorded = io.get("signature") or {}
        self._perms: list = list(recorded.get("output_perms") or [None] * len(self.outputs))
        if keys is not None:
            in_keys = recorded.get("inputs") or _ordered(keys["inputs"])
            out_keys = recorded.get("outputs") or _ordered(keys["outputs"])
            ins = [details[keys["inputs"][k]] for k in in_keys]
            outs = [out_details[keys["outputs"][k]] for k in out_keys]
        else:
            ins, outs = list(details.values()), list(out_details.values())
        if len(ins) != len(self.inputs) or len(outs) != len(self.outputs):
            raise InputSpecError(f"{model.name} has {len(ins)} inputs / {len(outs)} outputs, the graph "
                                 f"{len(self.inputs)} / {len(self.outputs)}", hint="re-run `edgeopt deploy`")
        self._in, self._out = ins, outs

    def mismatch(self, feeds: Mapping[str, np.ndarray]) -> str | None:
        """What about ``feeds`` does not fit the graph's inputs at this runner's batch, or None."""
        names = [spec["name"] for spec in self.inputs]
        missing, extra = sorted(set(names) - set(feeds)), sorted(set(feeds) - set(names))
        if missing or extra:
            return f"inputs do not match the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
        for spec in self.inputs:
            value = feeds[spec["name"]]
            want = (self.batch, *spec["shape"][1:])
            if getattr(value, "dtype", None) != np.dtype(spec["dtype"]) or tuple(np.shape(value)) != want:
                got = f"{getattr(value, 'dtype', type(value).__name__)}{list(np.shape(value))}"
                expected = f"{spec['dtype']}{list(want)}"
                return f"input {spec['name']!r} is {got}, the model (batch {self.batch}) expects {expected}"
        return None

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        interpreter = self._interpreter
        if interpreter is None:
            raise RuntimeError("LiteRtRunner.run called after close()")
        problem = self.mismatch(feeds)
        if problem:
            raise InputSpecError(problem)
        step = self.built_batch
        parts: list[list[np.ndarray]] = [[] for _ in self._out]
        for r in range(self.repeats):
            for spec, detail in zip(self.inputs, self._in, strict=True):
                chunk = np.ascontiguousarray(feeds[spec["name"]][r * step : (r + 1) * step])
                interpreter.set_tensor(detail["index"], _quantize(chunk, detail))
            interpreter.invoke()
            for i, (spec, detail) in enumerate(zip(self.outputs, self._out, strict=True)):
                value = _dequantize(interpreter.get_tensor(detail["index"]), detail)
                if self._perms[i]:
                    value = np.ascontiguousarray(np.transpose(value, self._perms[i]))
                if value.dtype.kind in "iub" and value.dtype != np.dtype(spec["dtype"]):
                    value = value.astype(spec["dtype"])  # LiteRT keeps int64 graph outputs as int32
                parts[i].append(value)
        return [p[0] if len(p) == 1 else np.concatenate(p, axis=0) for p in parts]

    def close(self) -> None:
        self._interpreter = None


def _ordered(keys: Mapping[str, int]) -> Sequence[str]:
    """Signature keys in argument order: ``args_0, args_1, ..., args_10`` (numeric suffix, not string order)."""
    def position(key: str) -> tuple[int, str]:
        tail = key.rsplit("_", 1)[-1]
        return (int(tail), key) if tail.isdigit() else (1 << 30, key)

    return sorted(keys, key=position)
