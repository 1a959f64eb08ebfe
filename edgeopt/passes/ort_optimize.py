"""ONNX Runtime's graph optimizations, applied once offline and saved as a new model file.

``basic`` (constant folding, redundant-node removal) and ``extended`` (ORT's fused kernels such as
FusedConv, Gelu, LayerNorm fusions) give a model any ONNX Runtime CPU build can load. ``all`` adds
layout transforms (NCHWc blocking) tuned to the host's vector width: only for models that will run
on the machine that optimized them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.errors import CompileError

if TYPE_CHECKING:
    import onnx

LEVELS = ("basic", "extended", "all")
BIG_MODEL_BYTES = 1800 * 1024**2  # protobuf's 2 GiB limit, with headroom


def model_files(path: Path) -> tuple[str, ...]:
    """The model file's name followed by every external-data file it references, relative to its folder."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    found: list[str] = []
    for tensor in _tensors(model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next(e.value for e in tensor.external_data if e.key == "location")
            if location not in found:
                found.append(location)
    return (path.name, *found)


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and tensor attributes of ``graph`` and its subgraphs."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def model_bytes(src: Path) -> int:
    """Size of the model file plus its external-data files."""
    return sum((src.parent / name).stat().st_size for name in model_files(src))


def optimize_offline(src: Path, dst: Path, *, level: str = "extended") -> Path:
    """Write ``src`` optimized by ONNX Runtime at ``level`` to ``dst`` and return ``dst``.

    Uses a CPU session created only for this; ``dst`` appears complete or not at all. Raises
    ``CompileError`` for an unknown level or when ONNX Runtime cannot load or save the model.
    """
    import onnxruntime as ort

    if level not in LEVELS:
        raise CompileError(f"unknown ORT optimization level {level!r}", hint=f"choose one of {', '.join(LEVELS)}")
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    with tempfile.TemporaryDirectory(prefix=".edgeopt-ortopt-", dir=dst.parent) as tmp:
        staged = Path(tmp) / dst.name
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[level]
        options.optimized_model_filepath = str(staged)
        options.log_severity_level = 4
        try:
            if model_bytes(src) > BIG_MODEL_BYTES:
                options.add_session_config_entry(
                    "session.optimized_model_external_initializers_file_name", dst.name + ".data"
                )
                options.add_session_config_entry(
                    "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
                )
            ort.InferenceSession(str(src), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnx's DecodeError, ORT's own pybind exception types
            raise CompileError(
                f"ONNX Runtime could not optimize {src.name}: {exc}",
                hint="check the model with `edgeopt inspect`; try level='basic'",
            ) from exc
        if not staged.is_file():
            raise CompileError(f"ONNX Runtime did not write the optimized model for {src.name}")
        for produced in Path(tmp).iterdir():
            shutil.move(str(produced), str(dst.parent / produced.name))
    return dst


def copy_model(src: Path, directory: Path, *, name: str) -> None:
    """Copy ``src`` as ``directory/name``, with its external-data files under their own names."""
    names = model_files(src)
    shutil.copyfile(src, directory / name)
    for extra in names[1:]:
        shutil.copyfile(src.parent / extra, directory / extra)


def check_loads_on_cpu(path: Path) -> None:
    """Open ``path`` in a plain ONNX Runtime CPU session with optimizations off, as any consumer of an
    artifact would; ``CompileError`` when it does not load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own pybind exception types
        raise CompileError(f"the compiled model does not load in ONNX Runtime: {exc}") from exc
