"""Specialize an onnx2torch module to the graph's static input shapes, so ``torch.export`` sees no data-dependent size.

Run in the converter toolchain only (torch, no edgeopt). onnx2torch keeps the ONNX semantics of "shape as a
tensor": Reshape, Slice, Resize, Expand, Tile, Pad, Split, Squeeze/Unsqueeze with axes as an input read their
constant shape operands at run time (``.tolist()``, ``torch.any(shape == 0)``, ``torch.Size(tensor)``). Under
``torch.export`` those constants are fake tensors, so every such read becomes an unbacked symbol and the export
stops with ``GuardOnDataDependentSymNode`` (``Eq(u0, 1)`` for an int, ``Eq(zuf0, 1.0)`` for a float scale).

With static input shapes every one of these operands is known before the export: ``specialize`` propagates the
sample through the module once (``torch.fx`` ``ShapeProp``), then replaces each such call whose shape operands are
constants (``get_attr`` nodes, or nodes computed only from constants) with a call that has literal Python
arguments — ``torch.reshape(x, out_shape)``, static slices, ``F.interpolate(x, size=out_hw)`` and so on. A node
computed only from constants is folded into a constant first. What each node computes is unchanged (the
replacement's output is checked against the original's on the sample, and the replacement is skipped otherwise).
"""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn
from torch.nn import functional as F

_SHAPE_ONLY = {"OnnxReshape", "OnnxSqueezeDynamicAxes", "OnnxUnsqueezeDynamicAxes", "OnnxExpand", "OnnxFlatten"}
"""Modules whose output is the input's elements rearranged to the (propagated, static) output shape."""


class StaticSlice(nn.Module):
    """ONNX Slice with literal starts/ends/axes/steps: optional flip, then one Python slice per axis."""

    def __init__(self, flips: list[int], index: tuple) -> None:
        super().__init__()
        self.flips = flips
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flips:
            x = torch.flip(x, dims=self.flips)
        return x[self.index]


class StaticResize(nn.Module):
    """ONNX Resize with a known output size (no scale read from a tensor)."""

    def __init__(self, size: tuple[int, ...], mode: str, align_corners: bool | None) -> None:
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners)


class StaticPad(nn.Module):
    def __init__(self, pads: list[int], mode: str, value: float) -> None:
        super().__init__()
        self.pads, self.mode, self.value = pads, mode, value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "constant":
            return F.pad(x, self.pads, mode="constant", value=self.value)
        return F.pad(x, self.pads, mode=self.mode)


class StaticSplit(nn.Module):
    def __init__(self, sizes: list[int], axis: int) -> None:
        super().__init__()
        self.sizes, self.axis = sizes, axis

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(x, self.sizes, dim=self.axis))


def _get(module: nn.Module, target: str) -> torch.Tensor:
    value = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _value(module: nn.Module, arg: object, folded: dict) -> object:
    """The constant an fx argument stands for (a tensor, None, a literal), or ``_NOT_CONSTANT``."""
    if isinstance(arg, torch.fx.Node):
        if arg.op == "get_attr":
            return _get(module, arg.target)
        return folded.get(arg, _NOT_CONSTANT)
    if isinstance(arg, (list, tuple)):
        values = [_value(module, a, folded) for a in arg]
        return _NOT_CONSTANT if any(v is _NOT_CONSTANT for v in values) else type(arg)(values)
    return arg


_NOT_CONSTANT = object()


def _ints(value: object) -> list[int]:
    return [int(v) for v in torch.as_tensor(value).reshape(-1).tolist()]


def _slice(shape: tuple[int, ...], starts: list[int], ends: list[int], axes: list[int] | None,
           steps: list[int] | None) -> StaticSlice:
    """ONNX Slice as Python slices: the kept indices per axis follow ONNX's (numpy's) clamping; a negative step
    flips the axis first and slices it forwards."""
    rank = len(shape)
    axes = [a % rank for a in (axes if axes is not None else range(len(starts)))]
    steps = steps if steps is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * rank
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        size = shape[axis]
        kept = range(size)[slice(start, end, step)]
        if not kept:
            index[axis] = slice(0, 0)
            continue
        if step < 0:
            flips.append(axis)
            index[axis] = slice(size - 1 - kept[0], size - kept[-1], -step)
        else:
            index[axis] = slice(kept[0], kept[-1] + 1, step)
    return StaticSlice(flips, tuple(index))


def _replacement(module: nn.Module, node: torch.fx.Node, kind: str, consts: list, out_shape: tuple | None,
                 in_shape: tuple | None) -> tuple[object, tuple] | None:
    """``(callable or module, args)`` replacing ``node``, or None when this node is not specialized."""
    x = node.args[0]
    if kind in _SHAPE_ONLY and out_shape is not None:
        if kind == "OnnxExpand":
            return torch.Tensor.expand, (x, tuple(out_shape))
        return torch.reshape, (x, tuple(out_shape))
    if kind == "OnnxSlice" and in_shape is not None:
        starts, ends, axes, steps = (consts + [None, None, None, None])[:4]
        return _slice(tuple(in_shape), _ints(starts), _ints(ends), _ints(axes) if axes is not None else None,
                      _ints(steps) if steps is not None else None), (x,)
    if kind in ("OnnxResize", "OnnxResizeV10") and out_shape is not None:
        inner = module.get_submodule(node.target)
        inner = getattr(inner, "_resize", inner)
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(out_shape) - 2) \
            if inner.onnx_mode == "linear" else ("bicubic" if inner.onnx_mode == "cubic" else "nearest")
        return StaticResize(tuple(out_shape[2:]), mode, inner.align_corners), (x,)
    if kind == "OnnxTile" and consts and consts[0] is not None:
        return torch.Tensor.repeat, (x, tuple(_ints(consts[0])))
    if kind == "OnnxPadDynamic" and consts and consts[0] is not None:
        pads = _ints(consts[0])
        half = len(pads) // 2
        torch_pads = [p for axis in reversed(range(half)) for p in (pads[axis], pads[axis + half])]
        while len(torch_pads) > 2 and torch_pads[-2:] == [0, 0]:
            torch_pads = torch_pads[:-2]
        value = float(torch.as_tensor(consts[1]).reshape(-1)[0]) if len(consts) > 1 and consts[1] is not None else 0.0
        return StaticPad(torch_pads, module.get_submodule(node.target).mode, value), (x,)
    if kind == "OnnxSplit13" and consts and consts[0] is not None:
        inner = module.get_submodule(node.target)
        return StaticSplit(_ints(consts[0]), inner.axis), (x,)
    return None


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b) or torch.allclose(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return False


def specialize(module: torch.fx.GraphModule, sample: tuple[torch.Tensor, ...]) -> Counter:
    """Rewrite ``module`` in place as the module docstring says; return a count per rewritten onnx2torch class.

    Every rewritten call is checked on the sample: the replacement must give exactly the original's output
    (values, shape, dtype), else the original call is kept.
    """
    values: dict[torch.fx.Node, object] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> object:
            out = super().run_node(n)
            values[n] = out
            return out

    with torch.no_grad():
        Recorder(module).run(*sample)
    done: Counter = Counter()
    folded: dict[torch.fx.Node, object] = {}
    graph = module.graph
    for node in list(graph.nodes):
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        args = [_value(module, a, folded) for a in node.args]
        kwargs = {k: _value(module, v, folded) for k, v in node.kwargs.items()}
        out = values.get(node)
        if all(a is not _NOT_CONSTANT for a in args) and all(v is not _NOT_CONSTANT for v in kwargs.values()) \
                and isinstance(out, torch.Tensor) and node.op == "call_module":
            folded[node] = out  # computed from constants only: a constant itself
            name = f"edgeopt_folded_{len(folded)}"
            module.register_buffer(name, out.detach().clone())
            with graph.inserting_before(node):
                const = graph.get_attr(name)
            node.replace_all_uses_with(const)
            graph.erase_node(node)
            folded[const] = out
            done["folded"] += 1
            continue
        if node.op != "call_module":
            continue
        kind = type(module.get_submodule(node.target)).__name__
        if any(a is _NOT_CONSTANT for a in args[1:]):
            continue
        x_value = values.get(node.args[0]) if isinstance(node.args[0], torch.fx.Node) else None
        in_shape = tuple(x_value.shape) if isinstance(x_value, torch.Tensor) else None
        out_shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        found = _replacement(module, node, kind, list(args[1:]), out_shape, in_shape)
        if found is None or x_value is None:
            continue
        fn, new_args = found
        with torch.no_grad():
            check = fn(x_value) if isinstance(fn, nn.Module) else fn(x_value, *new_args[1:])
        if not _same(check, out):
            continue
        with graph.inserting_after(node):
            if isinstance(fn, nn.Module):
                name = f"edgeopt_static_{sum(done.values())}"
                module.add_submodule(name, fn)
                replacement = graph.call_module(name, new_args)
            else:
                replacement = graph.call_function(fn, new_args)
        node.replace_all_uses_with(replacement)
        graph.erase_node(node)
        values[replacement] = out
        done[kind] += 1
    if done:
        graph.eliminate_dead_code()
        module.recompile()
    return done


__all__ = ["specialize"]
