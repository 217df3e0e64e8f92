#!/usr/bin/env bash
# Install, then run the main demo on the embedded synthetic order book (no files needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/l2exp mode=ingest data=synthetic "$@"
.venv/bin/l2exp mode=validate data=synthetic "$@"
