#!/usr/bin/env bash
# Create (or reuse) .venv with Python 3.11 and install exactly the versions of uv.lock (hashed) with the
# extras in L2EXP_EXTRAS (default: dev). `uv sync --locked` refuses a uv.lock that no longer matches
# pyproject.toml (run `uv lock` after changing a dependency), and removes what the lock does not list: the
# same install on every machine, twice. optuna>=4 over hydra-optuna-sweeper's optuna<3 pin is recorded in
# pyproject.toml ([tool.uv] override-dependencies). uv itself lives in .uv/ (pinned), outside the synced venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
UV_VERSION=0.13.10
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if [ ! -x .uv/bin/uv ] || [ "$(.uv/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PY" -m venv .uv
  .uv/bin/python -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
extras=()
for e in ${L2EXP_EXTRAS:-dev}; do extras+=(--extra "$e"); done
UV_PROJECT_ENVIRONMENT=.venv .uv/bin/uv sync --quiet --locked --python .venv/bin/python "${extras[@]}"
# Bytecode for every installed module, once: uv does not write it, and where PYTHONDONTWRITEBYTECODE is
# set (this CI) Python would recompile ~2,000 modules in every process -- 4 s of each CLI start.
.venv/bin/python -m compileall -q -j 0 .venv/lib/python3.11/site-packages l2exp > /dev/null || true
