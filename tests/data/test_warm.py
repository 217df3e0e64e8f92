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
