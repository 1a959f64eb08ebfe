#!/usr/bin/env bash
# Set up, then run the whole test suite (core and every first-party plugin). Exit 5 (no tests) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
VENV="${EDGEOPT_VENV:-.venv}"
"$VENV/bin/ruff" check edgeopt plugins examples tests
set +e
"$VENV/bin/python" -m pytest -q -m "not slow" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
