"""A real local Ray cluster for the tests (``ray start --head`` on 127.0.0.1, 2 CPUs), one per test
session on the worker that runs the ``ray`` xdist group. Ray is the optional extra ``.[ray]``, which
``scripts/test.sh`` installs and then requires (``L2EXP_REQUIRE_RAY=1``): there a missing Ray fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sim.fake_exchange import _free_port

RAY = Path(sys.executable).with_name("ray")


def need_ray() -> None:
    try:
        import hydra_plugins.hydra_ray_launcher  # noqa: F401
        import ray  # noqa: F401
    except ImportError as exc:
        why = f"Ray is not installed ({exc}): pip install .[ray]"
        if os.environ.get("L2EXP_REQUIRE_RAY") == "1":
            pytest.fail(why)
        pytest.skip(why)


@contextlib.contextmanager
def local_cluster(cpus: int = 2) -> Iterator[str]:
    """A head node on 127.0.0.1 with ``cpus`` CPUs; its address, stopped afterwards (the tests' fixture and
    bench/scale.py). Ray's socket paths must stay under ~107 characters, hence a short temporary
    directory of its own. Ray 2.5x enables token authentication and keeps the token in
    ~/.ray/auth_token: a token left there by another cluster (a benchmark's ray.init) made every client
    of this one fail "InvalidAuthToken". A loopback cluster runs without it; clients started from this
    process inherit the setting."""
    os.environ["RAY_AUTH_MODE"] = "disabled"
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="l2r", dir="/tmp")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", str(cpus), "--include-dashboard", "false", "--disable-usage-stats",
                    "--temp-dir", tmp], check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster():
    """The session's local 2-CPU cluster (:func:`local_cluster`): its address."""
    need_ray()
    with local_cluster() as address:
        yield address
