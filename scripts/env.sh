# shellcheck shell=bash
# Sourced by run.sh and scripts/test.sh (from the repo root): sets PY to a Python that imports
# everything nanoinstruct needs, making a local environment first when the machine has none.
#   - $PYTHON when set, used as it is (nothing is installed);
#   - else python (or python3) when it already imports the requirements;
#   - else ./.venv: made once (it sees the system's packages, so only what is missing is
#     installed) and, saying so, given torch ($TORCH_SPEC, default torch==2.13.0) when it has
#     none, then requirements.txt. A bare `pip install torch` on Linux is a multi-GB CUDA build;
#     on a CPU-only machine with internet, TORCH_SPEC="torch --index-url
#     https://download.pytorch.org/whl/cpu" gets the ~200 MB CPU build.
# NEED_PYTEST=1 adds pytest to what must import (the tests).
_needs="torch, tiktoken, regex, numpy, matplotlib"
[ "${NEED_PYTEST:-0}" = 1 ] && _needs="$_needs, pytest"
_has_all() { "$1" -c "import $_needs" >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  PY=python
  command -v python >/dev/null 2>&1 || PY=python3
  if ! _has_all "$PY"; then
    if [ ! -x .venv/bin/python ]; then
      echo "env: $PY cannot import all of: $_needs; creating a local environment in .venv"
      "$PY" -m venv --system-site-packages .venv
    fi
    PY=.venv/bin/python
    if ! _has_all "$PY"; then
      if ! "$PY" -c "import torch" >/dev/null 2>&1; then
        echo "env: installing ${TORCH_SPEC:-torch==2.13.0} into .venv"
        # shellcheck disable=SC2086
        "$PY" -m pip install --progress-bar off ${TORCH_SPEC:-torch==2.13.0}
      fi
      echo "env: installing what .venv lacks of requirements.txt ($(grep -v '^#' requirements.txt | tr '\n' ' '))"
      "$PY" -m pip install --progress-bar off -r requirements.txt
    fi
  fi
fi
if ! _has_all "$PY"; then
  echo "env: $PY still cannot import all of: $_needs" >&2
  exit 1
fi
echo "env: $PY, $("$PY" -c 'import sys, torch; print(f"Python {sys.version.split()[0]}, torch {torch.__version__}")')"
