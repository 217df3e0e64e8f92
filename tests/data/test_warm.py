"""The ingest's kernel loader: pauses the cyclic collector while Numba initialises, and leaves it as it was."""

from __future__ import annotations

import gc

import pytest

from l2exp.data import warm


def test_kernel_load_leaves_the_collector_as_it_found_it(monkeypatch):
    seen = []
    monkeypatch.setattr(warm, "_load_kernels", lambda: seen.append(gc.isenabled()))
    assert gc.isenabled()
    warm._load()
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        warm._load()
        assert seen == [False, False] and not gc.isenabled()
    finally:
        gc.enable()


def test_kernel_load_resumes_the_collector_when_loading_fails(monkeypatch):
    def boom() -> None:
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(warm, "_load_kernels", boom)
    with pytest.raises(RuntimeError):
        warm._load()
    assert gc.isenabled()


def test_numba_starts_without_its_blas_probe_and_linear_algebra_still_compiles_after():
    """A fresh process: the ingest's kernel load skips SciPy's import for Numba's BLAS probe (the
    speed-up: ``_HAVE_BLAS`` stays False), leaves ``sys.modules`` as it found it, and an ``np.dot``
    compiled afterwards in the same process runs on SciPy's BLAS and is right."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from l2exp.data import warm
warm._load()
import numba
import numba.np.arraymath as am
assert am._HAVE_BLAS is False
assert sys.modules.get("scipy.linalg.cython_blas", "absent") == "absent"
f = numba.njit(lambda a, b: np.dot(a, b))
a, b = np.arange(12.0).reshape(3, 4), np.arange(8.0).reshape(4, 2)
assert np.array_equal(f(a, b), a @ b)
assert sys.modules["scipy.linalg.cython_blas"] is not None
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
