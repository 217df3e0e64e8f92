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
# Compile the Numba kernels once, here, not in the first command a user types (~35 s of it, then again after
# every change of kernel source): a small pipeline and a replayed sim on the synthetic book, in a throwaway
# workdir and tracking store, compile ingest, features (batch and streaming), backtest and sim kernels into
# Numba's on-disk cache. Measured: the first BitMEX ingest after it 2.6 s, the second 1.7 s (37 s cold).
# L2EXP_SKIP_WARMUP=1 skips it; a failure only warns (the kernels then compile on first use).
if [ "${L2EXP_SKIP_WARMUP:-0}" != "1" ]; then
  warm=$(mktemp -d)
  if L2EXP_WORKDIR="$warm" MLFLOW_TRACKING_URI="sqlite:///$warm/mlflow.db" .venv/bin/l2exp mode=pipeline \
       data.reader.n_snapshots=20000 mode.promote.require_beat_baseline=false > "$warm/warm.log" 2>&1 \
     && L2EXP_WORKDIR="$warm" MLFLOW_TRACKING_URI="sqlite:///$warm/mlflow.db" .venv/bin/l2exp mode=sim \
       data.reader.n_snapshots=20000 mode.max_snapshots=300 >> "$warm/warm.log" 2>&1; then
    echo "l2exp: kernels compiled and cached"
  else
    echo "l2exp: warning: compiling the kernels at install failed (they compile on first use instead):" >&2
    tail -5 "$warm/warm.log" >&2
  fi
  rm -rf "$warm"
fi
