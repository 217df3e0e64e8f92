#!/usr/bin/env bash
# Install, then run the whole workflow on the embedded synthetic order book (no files needed):
# ingest -> features -> train -> promote -> backtest, once with LightGBM and once with CatBoost
# (the second run reuses the stored data and the cached features, and promotes the better model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/l2exp mode=pipeline model=lightgbm "$@"
.venv/bin/l2exp mode=pipeline model=catboost "$@"
echo
echo "Look at the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///$(pwd)/mlruns/mlflow.db --workers 1"
echo "                  then open http://127.0.0.1:5000, experiment l2exp-pipeline (a parent run per pipeline,"
echo "                  a child per step: ingest, features, train, promote, backtest)"
echo "Next: .venv/bin/l2exp mode=analyze   (SHAP + predictions on the champion, report of the demo's backtests)"
