#!/usr/bin/env bash
# Set up, then deploy the bundled digits CNN to the CPU target as int8 and print its profile.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV="${EDGEOPT_VENV:-.venv}"
"$VENV/bin/edgeopt" deploy examples/digits/digits_cnn.onnx --target cpu --precision int8 \
  --calib examples/digits/calib.npz --eval examples/digits/eval.npz --batch 1,8 --out out/digits-cpu.edgeopt
"$VENV/bin/edgeopt" verify out/digits-cpu.edgeopt
