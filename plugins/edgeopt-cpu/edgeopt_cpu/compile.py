"""Build a plan's model for the ONNX Runtime CPU provider: run its passes in order into ``workdir``.

Passes: ``ort-optimize`` (offline graph optimization), ``transformer-fuse`` (ONNX Runtime's transformer
optimizer: Attention, SkipLayerNormalization, BiasGelu; core ``edgeopt.passes.transformer_fusion``),
``quantize-static`` (QDQ int8, calibrated), ``quantize-dynamic`` (int8 weights). Quantization works on the
normalized graph and its QDQ output
is kept as is, so ``model.onnx`` loads in any ONNX Runtime; the runner's session applies the
host-specific fusions at load time.

The plan's generic fields are honoured here: ``keep_fp32`` nodes join ``nodes_to_exclude`` and, in a
QDQ model, read their inputs before the QuantizeLinear/DequantizeLinear pair (ORT quantizes the
outputs of the quantized node before them, which would otherwise still reach the kept node at 8 bits);
``calibration`` and ``granularity`` override the static pass's ``calibrate_method`` and ``per_channel``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeopt.plugin import (
    LEVELS,
    Compiled,
    CompileError,
    Dataset,
    DynamicInt8Options,
    Graph,
    PassSpec,
    Plan,
    QuantizeReport,
    StaticInt8Options,
    TransformerFusionOptions,
    fuse_transformer,
    model_files,
    optimize_offline,
    quantize_dynamic_int8,
    quantize_static_int8,
    run_pass_chain,
)

MODEL_FILE = "model.onnx"
PASSES = ("ort-optimize", "transformer-fuse", "quantize-static", "quantize-dynamic")
GRANULARITIES = ("per-channel", "per-tensor")
_ACTIVATIONS = ("Relu", "Clip")
"""Activations ORT's QDQ quantizer removes in front of a QuantizeLinear (see ``_float_inputs``)."""


def _summary(report: QuantizeReport) -> str:
    by_op = ", ".join(f"{op} {n}" for op, n in report.quantized_by_op.items())
    return (
        f"{report.mode} int8: {report.quantized_nodes}/{report.quantizable_nodes} weighted nodes quantized "
        f"({by_op}); weights {report.weight_bytes_before / 1e6:.2f} MB -> {report.weight_bytes_after / 1e6:.2f} MB"
    )


def _with_plan_fields(spec: PassSpec, plan: Plan) -> dict[str, Any]:
    """The pass parameters with the plan's generic ``keep_fp32``/``calibration``/``granularity`` applied."""
    params: dict[str, Any] = dict(spec.params)
    if spec.name in ("quantize-static", "quantize-dynamic") and plan.keep_fp32:
        params["nodes_to_exclude"] = [*params.get("nodes_to_exclude", ()), *plan.keep_fp32]
    if spec.name == "quantize-static":
        if plan.calibration:
            params["calibrate_method"] = plan.calibration
        if plan.granularity:
            if plan.granularity not in GRANULARITIES:
                raise CompileError(
                    f"invalid granularity {plan.granularity!r}", hint=f"choose one of {', '.join(GRANULARITIES)}"
                )
            params["per_channel"] = plan.granularity == "per-channel"
    return params


def _check_keep(graph: Graph, plan: Plan) -> None:
    if not plan.keep_fp32:
        return
    import onnx

    names = {n.name for n in onnx.load(str(graph.path), load_external_data=False).graph.node}
    unknown = [n for n in plan.keep_fp32 if n not in names]
    if unknown:
        raise CompileError(
            f"keep_fp32 names nodes the graph does not have: {', '.join(unknown)}",
            hint="give node names of the normalized graph (see `edgeopt inspect MODEL`)",
        )


def _float_inputs(path: Path, keep: tuple[str, ...], original: Path) -> int:
    """Let the ``keep`` nodes of a QDQ model read each input from before its QuantizeLinear/DequantizeLinear
    pair; drop pairs nothing else reads. Returns how many inputs were rewired.

    ORT drops a Relu/Clip that feeds a QuantizeLinear (the quantized range clips instead); where the
    ``original`` graph produced the tensor with such an activation, a float copy of it is put back in front
    of the kept node. Weights are not loaded (external data stays where it is)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    source = onnx.load(str(original), load_external_data=False)
    nodes = model.graph.node
    producer = {out: n for n in nodes for out in n.output}
    source_producer = {out: n for n in source.graph.node for out in n.output}
    have = {t.name for t in model.graph.initializer}
    rewired = 0
    for node in list(nodes):
        if node.name not in keep:
            continue
        for i, name in enumerate(node.input):
            dq = producer.get(name)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is None or q.op_type != "QuantizeLinear":
                continue
            tensor = q.input[0]
            act, made = source_producer.get(tensor), producer.get(tensor)
            if act is not None and act.op_type in _ACTIVATIONS and (made is None or made.op_type != act.op_type):
                copy = onnx.NodeProto()
                copy.CopyFrom(act)
                copy.name = f"{act.name}_kept_fp32_{node.name}"
                copy.input[0] = tensor
                copy.output[:] = [f"{tensor}_kept_fp32_{node.name}"]
                for extra in copy.input[1:]:
                    if extra and extra not in have and extra not in producer:
                        init = next(t for t in source.graph.initializer if t.name == extra)
                        model.graph.initializer.append(init)
                        have.add(extra)
                nodes.insert(list(nodes).index(node), copy)
                tensor = copy.output[0]
            node.input[i] = tensor
            rewired += 1
    if not rewired:
        return 0
    graph_outputs = {o.name for o in model.graph.output}
    while True:  # remove Q/DQ nodes whose outputs nobody reads any more
        read = {i for n in nodes for i in n.input} | graph_outputs
        dead = [n for n in nodes if n.op_type in ("QuantizeLinear", "DequantizeLinear") and not set(n.output) & read]
        if not dead:
            break
        for n in dead:
            nodes.remove(n)
    used = {i for n in nodes for i in n.input}
    kept_inits = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept_inits)
    onnx.save(model, str(path))
    return rewired


def _apply(spec: PassSpec, src: Path, dst: Path, calibration: Dataset, plan: Plan) -> tuple[PassSpec, tuple[str, ...]]:
    """Run one pass from ``src`` to ``dst``; return it with its final parameters, and notes."""
    params = _with_plan_fields(spec, plan)
    if spec.name == "ort-optimize":
        level = params.pop("level", "extended")
        if params or level not in LEVELS:
            raise CompileError(
                f"invalid ort-optimize parameters {dict(spec.params)}",
                hint=f"ort-optimize takes only level (one of {', '.join(LEVELS)})",
            )
        optimize_offline(src, dst, level=level)
        return PassSpec(spec.name, {"level": level}), ()
    if spec.name == "transformer-fuse":
        fusion = TransformerFusionOptions.from_params(params)
        done = fuse_transformer(src, dst, fusion)
        return PassSpec(spec.name, {**fusion.to_params(), **done.as_params()}), (done.summary,)
    if spec.name == "quantize-static":
        static = StaticInt8Options.from_params(params)
        report = quantize_static_int8(src, dst, calibration, static)
        final = static.to_params()
        if plan.keep_fp32:
            rewired = _float_inputs(dst, plan.keep_fp32, src)
            extra = (f"kept in fp32: {', '.join(plan.keep_fp32)} ({rewired} input(s) read unquantized)",)
            return PassSpec(spec.name, {**final, **report.as_params()}), (_summary(report), *report.notes, *extra)
    elif spec.name == "quantize-dynamic":
        dynamic = DynamicInt8Options.from_params(params)
        report = quantize_dynamic_int8(src, dst, dynamic)
        final = dynamic.to_params()
    else:
        raise CompileError(f"target 'cpu' has no pass {spec.name!r}", hint=f"passes: {', '.join(PASSES)}")
    return PassSpec(spec.name, {**final, **report.as_params()}), (_summary(report), *report.notes)


def compile_plan(graph: Graph, plan: Plan, calibration: Dataset, workdir: Path) -> Compiled:
    """Write ``workdir/model.onnx`` (plus external data for >2 GB models) for ``plan``; never touch ``graph``."""
    import onnxruntime as ort

    _check_keep(graph, plan)
    def apply(spec: PassSpec, src: Path, dst: Path) -> tuple[PassSpec, tuple[str, ...]]:
        return _apply(spec, src, dst, calibration, plan)

    chain = run_pass_chain(Path(graph.path), plan.passes, apply, Path(workdir), model_file=MODEL_FILE)
    return Compiled(
        directory=chain.model.parent,
        model_file=chain.model.name,
        files=model_files(chain.model),
        plan=plan,
        runtime=f"onnxruntime {ort.__version__}",
        passes=chain.applied,
        notes=(*plan.notes, *chain.notes),
    )
