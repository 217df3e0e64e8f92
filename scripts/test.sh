#!/usr/bin/env bash
# Install, lint, and run the whole offline test suite. Fails if any test fails or none ran
# (pytest exits 5 when it collected nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check l2exp tests bench
# two workers (the CI machine's cores), slow whole-mode tests handed out first (tests/conftest.py)
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${L2EXP_TEST_WORKERS:-2}" --dist load --durations=15 "$@"
