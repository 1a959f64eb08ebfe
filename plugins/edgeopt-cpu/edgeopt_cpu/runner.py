"""A loaded ONNX Runtime CPU session behind edgeopt's ``Runner`` protocol (no timing here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import CompileError, InputSpecError, feeds_mismatch, ort_signature


class OrtCpuRunner:
    """Runs a model file on ``CPUExecutionProvider``: sequential execution, ``threads`` intra-op threads.

    The session applies every ORT optimization at load (``ORT_ENABLE_ALL``, host-specific layouts
    included: they are never saved into the artifact). Inputs are passed as given; feeds the model
    cannot take raise ``InputSpecError`` naming the input, what came and what the model expects; any
    other failure inside ONNX Runtime raises ``CompileError``. A model whose batch is fixed at
    another size is re-batched with the core's ``with_batch``.
    """

    def __init__(self, model_path: Path, *, threads: int | None = None, batch: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 4
        if _decode_only_dequantize(Path(model_path)):
            options.add_session_config_entry("session.disable_quant_qdq", "1")  # fold weight decodes at load
        self._path = Path(model_path)
        source: str | bytes = str(model_path)
        fixed = _fixed_batch(self._path)
        if fixed is not None and fixed != batch:
            source = _rebatched(self._path, batch)
        try:
            self._session: Any = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise CompileError(
                f"ONNX Runtime cannot load {self._path.name} at batch {batch}: {str(exc).splitlines()[0]}",
                hint="this model fixes its batch size internally; profile it at its own batch",
            ) from exc
        self._inputs = ort_signature(self._session.get_inputs())
        self._output_names = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> Sequence[np.ndarray]:
        """One inference; outputs in graph order."""
        if self._session is None:
            raise RuntimeError("OrtCpuRunner.run called after close()")
        try:
            return self._session.run(self._output_names, feeds if isinstance(feeds, dict) else dict(feeds))
        except Exception as exc:  # ORT's pybind errors: say whether the inputs or the model are at fault
            problem = self.mismatch(feeds)
            if problem:
                raise InputSpecError(problem) from exc
            raise CompileError(
                f"ONNX Runtime failed running {self._path.name}: {type(exc).__name__}: {exc}",
                hint="the compiled model does not run on this CPU; try another precision or plan",
            ) from exc

    def mismatch(self, feeds: Mapping[str, np.ndarray]) -> str | None:
        """What about ``feeds`` does not fit the model's inputs, or None when they fit."""
        return feeds_mismatch(self._inputs, feeds)

    def close(self) -> None:
        """Drop the session (ORT frees its memory when the last reference goes)."""
        self._session = None


def _decode_only_dequantize(path: Path) -> bool:
    """True for a model with DequantizeLinear but no QuantizeLinear: DQ there only decodes compactly stored weights
    (edgeopt.compress: codebooks, signs), which ORT folds at load only with QDQ handling off; a QDQ int8 model
    (with QuantizeLinear) keeps ORT's QDQ fusions."""
    import onnx

    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    return "DequantizeLinear" in ops and "QuantizeLinear" not in ops


def _fixed_batch(path: Path) -> int | None:
    """The static leading dim of the model's first input, or None when it is dynamic."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim if model.graph.input else []
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def _rebatched(path: Path, batch: int) -> bytes:
    """The model re-batched with the core's ``with_batch``; the core checks the result against per-sample runs."""
    import onnx
    from edgeopt.plugin import with_batch

    model = onnx.load(str(path), load_external_data=True)
    return with_batch(model, batch).SerializeToString()
