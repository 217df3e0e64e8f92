#!/usr/bin/env bash
# Install, lint, and run the whole offline test suite. Fails if any test fails or none ran
# (pytest exits 5 when it collected nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
# the locked install with Ray and hftbacktest, optional extras (.[ray], .[bench]): the Ray-launcher sweep tests
# start a local cluster; the oracle test (tests/backtest/test_oracle.py) compares fills with hftbacktest
L2EXP_EXTRAS="dev ray bench" bash scripts/install.sh
export L2EXP_REQUIRE_RAY=1
# The browser tests (tests/browser) drive Debian's Chromium through Playwright -- never a downloaded
# browser. Installed here when missing; L2EXP_SKIP_BROWSER=1 runs the suite without them (said loudly).
if [ "${L2EXP_SKIP_BROWSER:-0}" != "1" ]; then
  if [ ! -x "${L2EXP_CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "installing Debian's chromium for the browser tests ..."
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get install -y -qq chromium > /dev/null 2>&1 \
      || { $SUDO apt-get update -qq > /dev/null && $SUDO apt-get install -y -qq chromium > /dev/null; } \
      || { echo "could not install chromium (apt-get install chromium); L2EXP_SKIP_BROWSER=1 skips the browser tests" >&2; exit 1; }
  fi
  export L2EXP_REQUIRE_BROWSER=1   # from here a missing browser fails the browser tests instead of skipping them
else
  echo "L2EXP_SKIP_BROWSER=1: the browser tests will be skipped"
fi
.venv/bin/ruff check l2exp tests bench
# One thread per model fit (model.threads follows OMP_NUM_THREADS): two workers each running a 2-thread
# LightGBM on 2 cores, plus a Ray cluster's tasks, oversubscribed the cores and a 20 s training took > 300 s.
export OMP_NUM_THREADS=1
# two workers (the CI machine's cores), slow whole-mode tests handed out first (tests/conftest.py);
# loadgroup keeps the browser tests on one worker (they share one demo and one tracking server)
.venv/bin/python -m pytest -q -p no:cacheprovider -n "${L2EXP_TEST_WORKERS:-2}" --dist loadgroup --durations=15 "$@"
