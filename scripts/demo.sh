#!/usr/bin/env bash
# Install, then run the main demo on the embedded synthetic order book (no files needed):
# ingest -> validate -> train LightGBM and CatBoost (tracked in MLflow) -> promote the best.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
L2EXP=.venv/bin/l2exp
$L2EXP mode=ingest data=synthetic "$@"
$L2EXP mode=train data=synthetic model=lightgbm "$@"
$L2EXP mode=train data=synthetic model=catboost "$@"
$L2EXP mode=promote data=synthetic mode.metric=test_log_loss mode.direction=min "$@"
echo
echo "Compare the runs: .venv/bin/mlflow ui --backend-store-uri sqlite:///$(pwd)/mlruns/mlflow.db --workers 1"
