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
echo "  then open the 'compare runs' link printed above: experiment l2exp-pipeline, a row per pipeline with"
echo "  its validation / test / baseline metrics and backtest PnL (expand a row for its ingest, features, train,"
echo "  promote and backtest runs); the 'backtest report' link opens that backtest's interactive report.html."
echo "Next: .venv/bin/l2exp mode=analyze   (predictions + SHAP pages on the champion, a comparison of the backtests)"
