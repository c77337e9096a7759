#!/usr/bin/env bash
# The test suite from a fresh clone: the same environment as run.sh (scripts/env.sh: a local
# .venv when the requirements are missing), then pytest. CPU, offline; .ci/run calls this.
#
#   bash scripts/test.sh              # = python -m pytest -q, in that environment
#   bash scripts/test.sh -k readme    # any pytest arguments instead of -q
set -euo pipefail
cd "$(dirname "$0")/.."
NEED_PYTEST=1
source scripts/env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
if [ $# -eq 0 ]; then set -- -q; fi
exec "$PY" -m pytest "$@"
