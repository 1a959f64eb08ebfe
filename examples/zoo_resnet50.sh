#!/usr/bin/env bash
# Deploy the opset-9 ResNet-50 that ships inside the onnx wheel's backend test data to CPU int8.
# No calibration data exists for it, so edgeopt calibrates on synthetic inputs and says so.
set -euo pipefail
MODEL="$(python -c 'import onnx, pathlib; print(pathlib.Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx")')"
edgeopt inspect "$MODEL"
edgeopt deploy "$MODEL" --target cpu --precision int8 --out out/resnet50-cpu.edgeopt "$@"
edgeopt verify out/resnet50-cpu.edgeopt
