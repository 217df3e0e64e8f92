"""Splits: no training label window overlaps any test row (purge), for every scheme and horizon."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2exp.errors import UserError
from l2exp.split import ChronologicalSplit, WalkForwardSplit


def series(n: int, horizon: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(1, 1000, n)).astype(np.int64)
    idx = np.arange(n) + horizon
    end = np.where(idx < n, ts[np.minimum(idx, n - 1)], -1)
    keep = end >= 0
    return ts[keep], end[keep]


def assert_purged(fold, ts, end):
    test_start = ts[fold.test].min()
    assert end[fold.train].max() < test_start, "a training label reaches into the test set"
    if len(fold.valid):
        assert end[fold.train].max() < ts[fold.valid].min()
        assert end[fold.valid].max() < test_start
    assert not set(fold.train) & set(fold.test) and not set(fold.valid) & set(fold.test)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(300, 3000), horizon=st.integers(1, 80), seed=st.integers(0, 10))
def test_chronological_purge(n, horizon, seed):
    ts, end = series(n, horizon, seed)
    (fold,) = ChronologicalSplit(0.6, 0.2, 0.2).folds(ts, end)
    assert_purged(fold, ts, end)
    assert fold.purged >= 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(600, 3000), horizon=st.integers(1, 40), folds=st.integers(1, 4),
       scheme=st.sampled_from(["rolling", "expanding"]), seed=st.integers(0, 10))
def test_walk_forward_purge(n, horizon, folds, scheme, seed):
    ts, end = series(n, horizon, seed)
    out = WalkForwardSplit(n_folds=folds, train_blocks=2, scheme=scheme).folds(ts, end)
    assert len(out) == folds
    for k, fold in enumerate(out):
        assert_purged(fold, ts, end)
        if k:
            assert ts[fold.test].min() > ts[out[k - 1].test].max()  # forward in time


def test_embargo_widens_the_gap():
    ts, end = series(2000, 10)
    (a,) = ChronologicalSplit(0.6, 0.2, 0.2).folds(ts, end)
    (b,) = ChronologicalSplit(0.6, 0.2, 0.2, embargo_ms=0.05).folds(ts, end)  # 50_000 ns
    assert len(b.train) < len(a.train) and end[b.train].max() < ts[b.valid].min() - 50_000


def test_empty_split_is_a_user_error():
    ts, end = series(50, 45)
    with pytest.raises(UserError, match="empty"):
        ChronologicalSplit(0.6, 0.2, 0.2).folds(ts, end)
    with pytest.raises(UserError):
        ChronologicalSplit(0.5, 0.5, 0.5)
