"""The suite's warm interpreter (tests/cli_zygote.py) runs a command as a fresh ``l2exp`` does: the same
output and exit code, the environment and working directory it was given; a timeout ends the command."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from l2exp.config import PROJECT_ROOT
from tests import conftest
from tests.cli_zygote import Zygote
from tests.conftest import run_cli


@pytest.mark.parametrize("args", [["--help"], ["data=nope"], ["--cfg", "job", "data=bitmex_ob10", "levels=5"]])
def test_a_forked_command_answers_as_a_fresh_one(tmp_path, args):
    if os.environ.get("L2EXP_TEST_ZYGOTE") == "0":
        pytest.skip("L2EXP_TEST_ZYGOTE=0: every command runs fresh")
    warm = run_cli(args, tmp_path)
    assert conftest._zygote is not None and conftest._zygote.usable, "the zygote fell back to fresh interpreters"
    fresh = run_cli(args, tmp_path, fresh=True)
    assert (warm.returncode, warm.stdout, warm.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_environment_cwd_and_timeout(tmp_path):
    z = Zygote()
    try:
        env = dict(os.environ, L2EXP_WORKDIR=str(tmp_path), MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/m.db")
        done = z.run(["mode=validate", "data.reader.n_snapshots=2000"], env, PROJECT_ROOT, 120)
        assert done is not None and done.returncode == 0, done and done.stderr[-2000:]
        assert list((tmp_path / "outputs").rglob("summary.json")), "the command did not see its L2EXP_WORKDIR"
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):  # ~minutes of synthetic book, stopped after 2 s
            z.run(["mode=ingest", "data.reader.n_snapshots=100000000"], env, PROJECT_ROOT, 2)
        assert time.monotonic() - t0 < 30
        again = z.run(["--help"], env, PROJECT_ROOT, 60)  # the zygote serves on after a killed command
        assert again is not None and again.returncode == 0 and "mode" in again.stdout
    finally:
        z.stop()
    assert z.proc is not None and z.proc.poll() is not None


def test_the_zygote_ends_with_the_process_that_started_it(tmp_path):
    """A worker killed mid-suite (no pytest_unconfigure) leaves no zygote behind."""
    import signal
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(PROJECT_ROOT)!r})
        from pathlib import Path
        from tests.cli_zygote import Zygote
        z = Zygote()
        z.start(Path({str(PROJECT_ROOT)!r}))
        print(z.proc.pid, flush=True)
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        zygote_pid = int(parent.stdout.readline())
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{zygote_pid}/stat") as f:
                if f.read().split(")")[-1].split()[0] == "Z":  # ended, waiting to be reaped by init
                    return
        except FileNotFoundError:  # ended and reaped
            return
        time.sleep(0.1)
    os.kill(zygote_pid, signal.SIGKILL)
    raise AssertionError("the zygote outlived the process that started it")
