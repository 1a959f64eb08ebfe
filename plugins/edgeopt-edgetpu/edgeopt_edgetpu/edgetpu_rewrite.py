"""Edge TPU graph pass: express hard-swish and hard-sigmoid with ops the Edge TPU maps, before conversion.

The Edge TPU has no HARD_SWISH (Coral's op table), and the TFLite converter fuses every spelling of
``x * relu6(x + 3) / 6`` into one HARD_SWISH op; hard-sigmoid becomes RELU_0_TO_1, which the Edge TPU lacks and
ai-edge-quantizer leaves in float (a DEQUANTIZE/QUANTIZE pair around it). MobileNetV3-style models (PP-OCR's
backbones) use both in every block, so the compiler's single partition stops at the first one.

``edgetpu_activations`` rewrites, on the ONNX graph, without changing what it computes (up to float rounding):

- ``HardSwish(x)`` and ``Div(Mul(x, Clip(Add(x, 3), 0, 6)), 6)`` (also ``Mul(..., 1/6)``) into
  ``Mul(Mul(x, 1/6), Clip(Add(x, 3), 0, 6))`` — scaling first is a form the converter does not fuse, and it
  lowers to MUL, ADD with a fused RELU6, MUL;
- ``HardSigmoid(x; alpha, beta)`` into ``Mul(Clip(Add(Mul(x, 6 alpha), 6 beta), 0, 6), 1/6)`` — MUL, ADD with a
  fused RELU6, MUL.

Used for ``edgetpu`` plans only: on a CPU, LiteRT's own HARD_SWISH kernel is the faster choice.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper


def _constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def _scalar(values: dict[str, np.ndarray], name: str) -> float | None:
    value = values.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


class _Builder:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.used = {n for node in model.graph.node for n in (*node.input, *node.output, node.name)}
        self.used |= {t.name for t in model.graph.initializer}

    def name(self, base: str) -> str:
        candidate, i = base, 0
        while candidate in self.used:
            i += 1
            candidate = f"{base}_{i}"
        self.used.add(candidate)
        return candidate

    def const(self, base: str, value: float, dtype: np.dtype) -> str:
        name = self.name(base)
        self.model.graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, output: str | None = None) -> onnx.NodeProto:
        out = output or self.name(f"{base}_out")
        return helper.make_node(op, inputs, [out], name=self.name(base))


def edgetpu_activations(model: onnx.ModelProto) -> tuple[onnx.ModelProto, Counter]:
    """A rewritten copy of ``model`` (see the module docstring) and how many of each pattern were rewritten."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    values = _constants(model)
    build = _Builder(model)
    dtype = np.float32
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: Counter = Counter(i for node in model.graph.node for i in node.input)
    consumers.update(o.name for o in model.graph.output)
    replace: dict[int, list[onnx.NodeProto]] = {}
    dropped: set[int] = set()
    done: Counter = Counter()

    def relu6_of(clip: onnx.NodeProto | None) -> bool:
        if clip is None or clip.op_type != "Clip" or len(clip.input) < 3:
            return False
        return _scalar(values, clip.input[1]) == 0.0 and _scalar(values, clip.input[2]) == 6.0

    def plus_three_of(x_name: str, clip: onnx.NodeProto) -> bool:
        add = producer.get(clip.input[0])
        if add is None or add.op_type != "Add" or len(add.input) != 2 or x_name not in add.input:
            return False
        other = add.input[1] if add.input[0] == x_name else add.input[0]
        return _scalar(values, other) == 3.0

    def swish(x: str, clip_out: str, base: str, output: str) -> list[onnx.NodeProto]:
        scaled = build.node("Mul", [x, build.const(f"{base}_sixth", 1 / 6, dtype)], f"{base}_scale")
        return [scaled, build.node("Mul", [scaled.output[0], clip_out], f"{base}_gate", output)]

    for index, node in enumerate(model.graph.node):
        base = node.name or f"node{index}"
        if node.op_type == "HardSwish":
            x = node.input[0]
            add = build.node("Add", [x, build.const(f"{base}_three", 3.0, dtype)], f"{base}_add")
            clip = build.node("Clip", [add.output[0], build.const(f"{base}_zero", 0.0, dtype),
                                       build.const(f"{base}_six", 6.0, dtype)], f"{base}_relu6")
            replace[index] = [add, clip, *swish(x, clip.output[0], base, node.output[0])]
            done["HardSwish"] += 1
        elif node.op_type == "HardSigmoid":
            attrs = {a.name: a.f for a in node.attribute}
            alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
            mul = build.node("Mul", [node.input[0], build.const(f"{base}_alpha6", 6 * alpha, dtype)], f"{base}_mul")
            add = build.node("Add", [mul.output[0], build.const(f"{base}_beta6", 6 * beta, dtype)], f"{base}_add")
            clip = build.node("Clip", [add.output[0], build.const(f"{base}_zero", 0.0, dtype),
                                       build.const(f"{base}_six", 6.0, dtype)], f"{base}_relu6")
            out = build.node("Mul", [clip.output[0], build.const(f"{base}_sixth", 1 / 6, dtype)], f"{base}_scale",
                             node.output[0])
            replace[index] = [mul, add, clip, out]
            done["HardSigmoid"] += 1
        elif node.op_type in ("Div", "Mul") and len(node.input) == 2:
            divisor = _scalar(values, node.input[1])
            if divisor is None or not np.isclose(divisor, 6.0 if node.op_type == "Div" else 1 / 6):
                continue
            inner = producer.get(node.input[0])
            if inner is None or inner.op_type != "Mul" or consumers[inner.output[0]] != 1:
                continue
            for x, other in ((inner.input[0], inner.input[1]), (inner.input[1], inner.input[0])):
                clip = producer.get(other)
                if relu6_of(clip) and plus_three_of(x, clip):  # type: ignore[arg-type]
                    replace[index] = swish(x, other, base, node.output[0])
                    dropped.add(list(model.graph.node).index(inner))
                    done["hard-swish pattern"] += 1
                    break
    if not done:
        return model, done
    nodes = []
    for index, node in enumerate(model.graph.node):
        if index in dropped:
            continue
        nodes.extend(replace.get(index, [node]))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for node in model.graph.node for i in node.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model, done
