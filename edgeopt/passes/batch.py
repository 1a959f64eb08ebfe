"""Re-batching an ONNX model whose batch size was fixed at export.

Many exported models carry a static batch of 1 in their inputs and in Reshape shape constants.
``with_batch`` rewrites both; the result is only trusted after ``batch_matches`` has compared it
with per-sample runs, because a graph can hide the batch size in places no rewrite sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from edgeopt.errors import CompileError
from edgeopt.types import Feeds, Runner


def _leading_dim(value_info: onnx.ValueInfoProto) -> onnx.TensorShapeProto.Dimension | None:
    shape = value_info.type.tensor_type.shape
    return shape.dim[0] if value_info.type.HasField("tensor_type") and len(shape.dim) > 0 else None


def batch_reshapes(model: onnx.ModelProto, batch: int) -> list[onnx.NodeProto]:
    """The Reshape nodes of ``model`` that spell out ``batch``: a constant target shape (an initializer) whose
    first entry is ``batch``, applied to a tensor whose inferred leading dimension is ``batch``.

    These are the constants a re-batch must rewrite; others (a flatten to ``[-1, n]``, a batch folded into
    another dimension) are left to the runtime, and ``batch_matches`` checks the result.
    """
    inferred = {vi.name: vi for vi in onnx.shape_inference.infer_shapes(model).graph.value_info}
    inferred.update({vi.name: vi for vi in model.graph.input})
    initializers = {init.name: init for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        shape = numpy_helper.to_array(initializers[node.input[1]])
        data_dim = _leading_dim(inferred[node.input[0]]) if node.input[0] in inferred else None
        if shape.ndim != 1 or shape.size == 0 or shape[0] != batch or data_dim is None or data_dim.dim_value != batch:
            continue
        found.append(node)
    return found


def _lead_with(graph: onnx.GraphProto, nodes: Sequence[onnx.NodeProto], value: int) -> None:
    """Make the Reshape constants of ``nodes`` lead with ``value``: edited in place when only these nodes read
    the constant, otherwise a copy named ``<constant>__batch<value>`` that only these nodes read."""
    initializers = {init.name: init for init in graph.initializer}
    chosen = {id(node) for node in nodes}
    other_readers = {name for node in graph.node if id(node) not in chosen for name in node.input}
    other_readers |= {out.name for out in graph.output}
    for node in nodes:
        name = node.input[1]
        shape = numpy_helper.to_array(initializers[name]).copy()
        shape[0] = value
        new_name = name if name not in other_readers else f"{name}__batch{value}"
        new = numpy_helper.from_array(shape.astype(np.int64), name=new_name)
        if new_name in initializers:
            initializers[new_name].CopyFrom(new)
        else:
            graph.initializer.append(new)
            initializers[new_name] = graph.initializer[-1]
        node.input[1] = new_name


def with_batch(model: onnx.ModelProto, batch: int) -> onnx.ModelProto:
    """A copy of ``model`` whose inputs and outputs lead with ``batch``.

    The Reshape constants ``batch_reshapes`` finds for the old batch (the first input's leading dimension)
    get the new batch instead. Intermediate shape annotations are dropped so the runtime re-infers them.
    """
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    first = _leading_dim(graph.input[0]) if graph.input else None
    old = first.dim_value if first is not None and first.HasField("dim_value") else None
    if old is not None:
        _lead_with(graph, batch_reshapes(result, old), batch)
    for vi in [*graph.input, *graph.output]:
        dim = _leading_dim(vi)
        if dim is not None and (dim.HasField("dim_param") or dim.dim_value == old):
            dim.Clear()
            dim.dim_value = batch
    del graph.value_info[:]
    return result


def batch_agnostic_reshapes(model: onnx.ModelProto, batch: int) -> int:
    """Rewrite, in place, the Reshape constants ``batch_reshapes`` finds for ``batch`` to lead with ``0``
    (ONNX: copy that dimension from the input); return how many changed.

    The model is identical at ``batch`` and reshapes correctly at other batch sizes, for runtimes that
    re-batch a converted model themselves. Reshapes with ``allowzero=1`` (where 0 means an empty dimension)
    are left alone.
    """
    nodes = [n for n in batch_reshapes(model, batch) if not any(a.name == "allowzero" and a.i for a in n.attribute)]
    _lead_with(model.graph, nodes, 0)
    return len(nodes)


def batch_matches(
    run_batched: Callable[[Feeds], Sequence[np.ndarray]],
    run_single: Callable[[Feeds], Sequence[np.ndarray]],
    feeds: Feeds,
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> str | None:
    """None when running ``feeds`` as one batch equals running its samples one by one; else the reason."""
    batched = run_batched(feeds)
    n = len(next(iter(feeds.values())))
    singles = [run_single({k: v[i : i + 1] for k, v in feeds.items()}) for i in range(n)]
    for index, out in enumerate(batched):
        expected = np.concatenate([s[index] for s in singles], axis=0)
        if out.shape != expected.shape:
            return f"output {index} has shape {out.shape} at batch {n}, expected {expected.shape}"
        if not np.allclose(out, expected, rtol=rtol, atol=atol):
            return f"output {index} differs from per-sample runs at batch {n}"
    return None


def checked_batches(
    make_runner: Callable[[int], Runner], feeds_for_batch: Callable[[int], Sequence[Feeds]], *, base_batch: int
) -> Callable[[int], Runner]:
    """Wrap ``make_runner`` so a runner for a batch other than ``base_batch`` (which must be 1) is only
    returned after its outputs equal per-sample runs; otherwise ``CompileError`` says why."""

    def make(batch: int) -> Runner:
        runner = make_runner(batch)
        if batch == base_batch or base_batch != 1:
            return runner
        base = make_runner(base_batch)
        try:
            problem = batch_matches(runner.run, base.run, feeds_for_batch(batch)[0])
        except Exception as exc:  # the re-batched model cannot even run: the batch is unsupported
            problem = f"running it failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        finally:
            base.close()
        if problem:
            runner.close()
            raise CompileError(f"batch {batch} is not supported by this model: {problem}")
        return runner

    return make
