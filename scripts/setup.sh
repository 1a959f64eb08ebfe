#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install edgeopt, its first-party plugins, the ncnn example plugin and the
# example extras. With --test, also what the whole test suite exercises: the MLflow plugin (its tests start a
# live MLflow server), mkdocs for the docs site build (tests/test_docs_site.py) and the Edge TPU plugin's
# ONNX->TFLite converter (its own cached venv, ~2 min once).
# torch is installed first at the exact CPU version this machine image carries (any other spec pulls a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TESTS=0
if [ "${1:-}" = "--test" ]; then
  WITH_TESTS=1
  shift
fi
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV="${EDGEOPT_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
# Every first-party plugin is its own distribution; the ncnn example is a third-party-style one.
"$VENV/bin/python" -m pip install -q -e ".[dev]" -e plugins/edgeopt-cpu -e plugins/edgeopt-openvino \
  -e plugins/edgeopt-cuda -e plugins/edgeopt-edgetpu -e examples/edgeopt-ncnn "torch==2.13.0" "$@"
if [ "$WITH_TESTS" = 1 ]; then
  "$VENV/bin/python" -m pip install -q -e "plugins/edgeopt-mlflow[test]" -e ".[farm,docs]" "torch==2.13.0"
  "$VENV/bin/edgeopt" edgetpu toolchain --create
fi
