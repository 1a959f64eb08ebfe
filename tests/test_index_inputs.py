"""Integer inputs that index a constant table get synthetic values inside it; a run ONNX Runtime refuses on
inputs that fit the declared signature is the model's fault (ModelError), not the inputs' (InputSpecError)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.data.datasets import synthetic_dataset
from edgeopt.errors import InputSpecError, ModelError
from edgeopt.evaluate.reference import ReferenceRunner
from edgeopt.graph.index_bounds import index_limits
from edgeopt.graph.normalize import normalize
from edgeopt.types import ImportOptions

EMBEDDING = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted" / "test_Embedding"


def _lookup_model(path: Path) -> Path:
    """ids(int64 [1,6]) -> Cast -> Unsqueeze -> Gather(table 7x4); kind(int64 [1,1]) -> OneHot(depth 3);
    count(int64 [1,1]) -> Add (not an index)."""
    table = numpy_helper.from_array(np.arange(28, dtype=np.float32).reshape(7, 4), "table")
    nodes = [
        helper.make_node("Cast", ["ids"], ["ids32"], to=TensorProto.INT32),
        helper.make_node("Unsqueeze", ["ids32", "axes"], ["ids3"]),
        helper.make_node("Gather", ["table", "ids3"], ["emb"], axis=0),
        helper.make_node("OneHot", ["kind", "depth", "values"], ["onehot"], axis=-1),
        helper.make_node("Add", ["count", "count"], ["twice"]),
    ]
    graph = helper.make_graph(
        nodes,
        "lookup",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 6]),
            helper.make_tensor_value_info("kind", TensorProto.INT64, [1, 1]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [1, 1]),
        ],
        [
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, [1, 6, 1, 4]),
            helper.make_tensor_value_info("onehot", TensorProto.FLOAT, [1, 1, 3]),
            helper.make_tensor_value_info("twice", TensorProto.INT64, [1, 1]),
        ],
        [
            table,
            numpy_helper.from_array(np.array([2], np.int64), "axes"),
            numpy_helper.from_array(np.array([3], np.int64), "depth"),
            numpy_helper.from_array(np.array([0.0, 1.0], np.float32), "values"),
        ],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_index_limits_follow_value_preserving_ops_to_the_table(tmp_path: Path) -> None:
    assert index_limits(_lookup_model(tmp_path / "m.onnx")) == {"ids": 7, "kind": 3}


def test_synthetic_ids_stay_inside_a_real_embedding_table(tmp_path: Path) -> None:
    """The wheel's converted ``nn.Embedding`` (4 rows): ids of 0..9 would make ONNX Runtime refuse the run."""
    graph = normalize(onnx.load(str(EMBEDDING / "model.onnx")), source_fingerprint="x", source_format="onnx",
                      options=ImportOptions(), workdir=tmp_path)  # fmt: skip
    (name,) = [spec.name for spec in graph.inputs]
    data = synthetic_dataset(graph, samples=64)
    assert data.arrays[name].min() >= 0 and data.arrays[name].max() == 3
    runner = ReferenceRunner(graph.path)
    for feeds in data.batches(1):
        runner.run(feeds)


def test_reference_blames_the_inputs_only_when_they_do_not_fit(tmp_path: Path) -> None:
    runner = ReferenceRunner(_lookup_model(tmp_path / "m.onnx"))
    fits = {"ids": np.array([[0, 1, 2, 3, 4, 5]]), "kind": np.array([[1]]), "count": np.array([[2]])}
    assert [out.shape for out in runner.run(fits)] == [(1, 6, 1, 4), (1, 1, 3), (1, 1)]
    with pytest.raises(InputSpecError, match="input 'kind' is int32"):
        runner.run({**fits, "kind": np.array([[1]], np.int32)})
    with pytest.raises(ModelError, match="declared names, types and shapes: .*out of data bounds") as caught:
        runner.run({**fits, "ids": np.array([[0, 1, 2, 3, 4, 70]])})
    assert "[ONNXRuntimeError]" not in str(caught.value)  # ORT's code prefix is dropped, its message kept
