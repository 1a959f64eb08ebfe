"""Subprocess entry: open a one-node session on each given provider and report what ONNX Runtime did.

Run as ``python -m edgeopt_cuda.probe CUDAExecutionProvider TensorrtExecutionProvider``. Prints one JSON
line per provider on stdout as soon as it is known (``provider``, ``providers`` the session really uses,
``error`` if creating or running it failed), after a first line with what preloading printed. Before each
provider a marker line ``@@probe <provider>`` goes to stderr, so the parent can split ONNX Runtime's C++
log (which names a library that failed to load) by provider. A subprocess keeps a crashing driver or a
half-loaded provider library out of the caller's process, and its partial output survives a timeout.
"""

from __future__ import annotations

import json
import sys

MARKER = "@@probe "


def _emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(providers: list[str]) -> int:
    import numpy as np
    from onnx import TensorProto, helper

    from edgeopt_cuda.runtime import import_onnxruntime

    ort, preload = import_onnxruntime(tensorrt="TensorrtExecutionProvider" in providers)
    _emit({"messages": list(preload.messages), "tensorrt_libs": list(preload.tensorrt_libs)})
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for provider in providers:
        sys.stderr.write(f"{MARKER}{provider}\n")
        sys.stderr.flush()
        options = ort.SessionOptions()
        options.log_severity_level = 2  # warnings: ORT says "Failed to create CUDAExecutionProvider" at this level
        report: dict[str, object] = {"provider": provider, "providers": [], "error": ""}
        try:
            session = ort.InferenceSession(model.SerializeToString(), options, providers=[provider])
            report["providers"] = session.get_providers()
            session.run(None, {"x": np.ones((1, 8), np.float32)})
        except Exception as exc:  # reported to the parent, which turns it into a reason
            report["error"] = f"{type(exc).__name__}: {exc}"
        _emit(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["CUDAExecutionProvider"]))
