#!/usr/bin/env bash
# Create (or reuse) .venv with Python 3.11 and install l2exp with its dev extras.
# uv resolves the same versions as pip in ~10 s instead of ~2 min; the override lifts
# hydra-optuna-sweeper's optuna<3 pin (optuna 2's SQLite storage is broken, the sweeper works on 4+).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check uv
fi
.venv/bin/uv pip install --quiet --python .venv/bin/python --override scripts/overrides.txt -e ".[dev]"
# Bytecode for every installed module, once: uv does not write it, and where PYTHONDONTWRITEBYTECODE is
# set (this CI) Python would recompile ~2,000 modules in every process -- 4 s of each CLI start.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages l2exp > /dev/null || true
