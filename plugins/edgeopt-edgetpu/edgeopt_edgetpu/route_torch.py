"""Route ``torch``: ONNX → ``torch.nn.Module`` (onnx2torch) → fp32 ``.tflite`` (litert-torch). No TensorFlow.

Run in the converter toolchain only. ``build(model_path, out, sample, notes)`` writes the fp32 model or raises
``RouteFailure`` naming the stage (``onnx2torch`` or ``litert-torch``) and the first ONNX node that failed, when
the message lets it be found. Before the export the module is specialized to the static input shapes
(``torch_specialize.specialize``), so shape operands read at run time by onnx2torch do not become
data-dependent sizes.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

NAME = "torch"
CONVERTER = "onnx2torch+litert-torch"

if __package__:
    from . import convert_common as common
else:  # loaded by path in the converter toolchain (convert_worker.load_siblings)
    import convert_common as common  # type: ignore[no-redef]

RouteFailure = common.RouteFailure
_PLACEHOLDER: list[str] = []


def torchvision_placeholder() -> str | None:
    """Register a placeholder ``torchvision`` when the real one does not import; return why, or None.

    onnx2torch imports torchvision for its NonMaxSuppression/RoiAlign converters only; PyPI's Linux torchvision
    wheels are CUDA builds that do not load beside a CPU-only torch. The placeholder's functions raise, so a
    graph that does use those ops fails with a message naming torchvision and every other graph converts."""
    if _PLACEHOLDER:
        return _PLACEHOLDER[0]
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # broken binary build (missing CUDA libraries) or not installed
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"

        def unavailable(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"this graph needs torchvision (NonMaxSuppression/RoiAlign), which does not import "
                               f"here ({reason})")

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        for fn in ("nms", "batched_nms", "roi_align", "roi_pool", "deform_conv2d", "box_convert"):
            setattr(ops, fn, unavailable)
        tv.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
        _PLACEHOLDER.append(reason)
        return reason
    return None


def available() -> str | None:
    """None when the route's packages import, else why not."""
    try:
        torchvision_placeholder()
        import litert_torch  # noqa: F401
        import onnx2torch  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_NOT_IMPLEMENTED = re.compile(r"operation_type='([^']+)'")
_WHILE_EXECUTING = re.compile(r"While executing %\S+ : .*?call_module\[target=([^\]]+)\]")
_LEGALIZE = re.compile(r"failed to legalize operation '([^']+)'")


def _explain(exc: BaseException, model, stage: str) -> RouteFailure:  # noqa: ANN001 - onnx.ModelProto
    """The failure with the first ONNX node it names (op type for onnx2torch's missing converters, the fx module
    the export stopped at, or the MLIR op LiteRT could not legalize) and its kind."""
    first_node = common.first_node
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    first = text.splitlines()[0][:400] if text.strip() else type(exc).__name__
    node = op = kind = ""
    if (found := _NOT_IMPLEMENTED.search(text)) and stage == "onnx2torch":
        op, kind = found.group(1), "unsupported-op"
        node = (first_node(model, op_type=op) or ("", op))[0]
    elif found := _WHILE_EXECUTING.search(text):
        hit = first_node(model, name=found.group(1))
        node, op = hit if hit else (found.group(1), "")
    if found := _LEGALIZE.search(text):
        op, kind = found.group(1), "unsupported-op"
    if "GuardOnDataDependentSymNode" in text or "data-dependent" in text:
        kind = "data-dependent-shape"
    return RouteFailure(stage, first, node=node, op=op, kind=kind)


def build(model_path: str, out: Path, sample: tuple, notes: list[str]) -> None:
    """Write the fp32 ``.tflite`` of the ONNX model at ``model_path`` to ``out`` (sample: numpy arrays, one per
    graph input, at the static shapes); ``RouteFailure`` when a stage fails."""
    import onnx
    import torch
    prepare_for_onnx2torch, specialize = common.prepare_for_onnx2torch, common.sibling("torch_specialize").specialize

    placeholder = torchvision_placeholder()
    if placeholder:
        notes.append(f"torchvision not importable ({placeholder}); placeholder used for onnx2torch")
    model = onnx.load(model_path)
    try:
        from onnx2torch import convert as onnx_to_torch

        prepared, lowered = prepare_for_onnx2torch(model)
        if lowered:
            notes.append(lowered)
        module = onnx_to_torch(prepared).eval()
    except Exception as exc:
        raise _explain(exc, model, "onnx2torch") from exc
    try:
        import litert_torch

        tensors = tuple(torch.from_numpy(a) for a in sample)
        done = specialize(module, tensors)
        if done:
            notes.append("specialized to the static input shapes for torch.export: "
                         + ", ".join(f"{n} {k.removeprefix('Onnx')}" for k, n in sorted(done.items())))
        with torch.no_grad():
            edge = litert_torch.convert(module, tensors)
        edge.export(str(out))
    except Exception as exc:
        raise _explain(exc, model, "litert-torch") from exc
