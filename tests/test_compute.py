"""The local compute backends where the environment is unusual (``l2exp/compute.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

from l2exp.config import PROJECT_ROOT

POOL = """
import sys
from l2exp.compute import LocalPool
print(LocalPool(workers=2).map(abs, [-1, -2, -3]))
"""


def test_a_process_pool_starts_under_a_temp_folder_too_long_for_a_unix_socket(tmp_path):
    """A ``TMPDIR`` of 90 bytes: the forkserver's socket (<tmp>/pymp-XXXXXXXX/listener-XXXXXXXX) would be
    122 bytes, over Linux's 107 -- ``OSError: AF_UNIX path too long`` and a traceback (a CI run's
    pytest-xdist temp folder did this to the pooled ingest). The pool now runs, its socket folder in a
    short system folder, and the temp folder itself is still the one given."""
    deep = tmp_path / ("d" * max(1, 90 - len(str(tmp_path)) - 1))
    deep.mkdir()
    assert len(str(deep)) >= 90
    env = dict(os.environ, TMPDIR=str(deep))
    done = subprocess.run([sys.executable, "-c", POOL + "import tempfile; print(tempfile.gettempdir())"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[1, 2, 3]", str(deep)]
