"""One writer per store: two real processes racing on the same store. The second exits 2 naming the
holder (or waits for it with store.lock_wait_s), the store ends exactly as one clean ingest leaves it,
and a writer killed with SIGKILL leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from l2exp.config import PROJECT_ROOT, instantiate
from tests.conftest import make_cfg

ROWS = 400_000  # seconds of writing: both processes reach the lock while it is held


def start(workdir, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, L2EXP_WORKDIR=str(workdir), COLUMNS="200")
    return subprocess.Popen([sys.executable, "-m", "l2exp.cli", "mode=ingest", "mode.progress=false",
                             f"data.reader.n_snapshots={ROWS}", *extra], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def store_of(workdir, store: str):
    return instantiate(make_cfg([f"store={store}", f"data.reader.n_snapshots={ROWS}", f"workdir={workdir}"]).store)


@pytest.mark.parametrize("store", ["parquet", "sqlite"])
def test_two_writers_race_one_refused_store_clean(workdir, store):
    a, b = start(workdir, f"store={store}"), start(workdir, f"store={store}")  # started together: they race
    out = {p.pid: p.communicate(timeout=300) for p in (a, b)}
    (win,), (lose,) = [p for p in (a, b) if p.returncode == 0], [p for p in (a, b) if p.returncode == 2]
    err = out[lose.pid][1]
    assert "being written by another l2exp (pid" in err and f"pid {win.pid}" in err and "Traceback" not in err
    assert store_of(workdir, store).count() == ROWS
    again = start(workdir, f"store={store}")
    assert again.wait(timeout=300) == 0 and store_of(workdir, store).count() == ROWS


def test_second_writer_can_wait_and_a_killed_writer_leaves_no_stale_lock(workdir):
    a, b = start(workdir, "store.lock_wait_s=300"), start(workdir, "store.lock_wait_s=300")
    out = [p.communicate(timeout=300) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    assert sum("waiting for the store" in o[0] for o in out) == 1  # the second waited, then found it done
    assert store_of(workdir, "parquet").count() == ROWS
    # kill -9 a writer mid-ingest: the kernel drops its lock, the next writer proceeds and repairs
    fresh = workdir / "fresh"
    k = start(fresh)
    time.sleep(3.0)
    k.send_signal(signal.SIGKILL)
    k.wait(timeout=60)
    nxt = start(fresh)
    out = nxt.communicate(timeout=300)
    assert nxt.returncode == 0, out[1][-2000:]
    assert store_of(fresh, "parquet").count() == ROWS
    assert not any((store_of(fresh, "parquet").root / "_staging").glob("*"))  # the dead writer's staging: gone
