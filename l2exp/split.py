"""Chronological and walk-forward splits with purging and embargo.

Splits cut the *time* axis (all symbols together) at time quantiles of the rows -- 60 % of the
rows, not 60 % of the span, so recordings with gaps (two days a week apart) still split sensibly.
Each row carries ``label_end_ts``, the time of
the snapshot its label reads; a training (or validation) row is **purged** when its label window
reaches into a later segment: ``label_end_ts >= start of the next segment``. So no training label
overlaps any test row, whatever the horizon unit. ``embargo_ms`` widens the gap after each training
segment further (for labels whose information leaks beyond their window, e.g. serial correlation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2exp.errors import UserError


@dataclass
class Fold:
    name: str
    train: np.ndarray  # row indices
    valid: np.ndarray
    test: np.ndarray
    purged: int  # rows dropped from train/valid by purging and embargo
    test_start_ts: int = 0  # epoch ns: the test segment is [test_start_ts, test_end_ts)
    test_end_ts: int = 0


def _segment(ts: np.ndarray, lo: int, hi: int, end: np.ndarray, next_start: int, embargo_ns: int) -> np.ndarray:
    rows = np.flatnonzero((ts >= lo) & (ts < hi))
    keep = end[rows] < next_start - embargo_ns
    return rows[keep]


class ChronologicalSplit:
    """Train / valid / test by time fractions, purged at both boundaries."""

    def __init__(self, train: float = 0.6, valid: float = 0.2, test: float = 0.2, embargo_ms: float = 0.0) -> None:
        if min(train, valid, test) < 0 or train <= 0 or test <= 0 or abs(train + valid + test - 1) > 1e-9:
            raise UserError(f"split fractions must be positive and sum to 1, got train={train} valid={valid} "
                            f"test={test}", where="split")
        self.train, self.valid, self.test, self.embargo_ms = train, valid, test, embargo_ms

    def folds(self, ts: np.ndarray, label_end_ts: np.ndarray) -> list[Fold]:
        t0, t1 = int(ts.min()), int(ts.max()) + 1
        b1, b2 = _time_quantiles(ts, [self.train, self.train + self.valid])
        emb = int(self.embargo_ms * 1e6)
        train = _segment(ts, t0, b1, label_end_ts, b1, emb)
        valid = _segment(ts, b1, b2, label_end_ts, b2, emb) if self.valid > 0 else np.zeros(0, dtype=np.int64)
        test = np.flatnonzero((ts >= b2) & (ts < t1))
        purged = int(((ts < b2).sum()) - len(train) - len(valid))
        return [_checked(Fold("chrono", train, valid, test, purged, b2, t1))]


class WalkForwardSplit:
    """K folds moving forward in time. Rows are cut into ``n_folds + train_blocks`` equal-count blocks;
    fold k tests on block ``train_blocks + k`` and trains on the ``train_blocks`` blocks before it
    (``rolling``) or on everything before it (``expanding``); the last ``valid_fraction`` of the
    training span is the validation set (early stopping). Purged and embargoed as above."""

    def __init__(self, n_folds: int = 4, train_blocks: int = 2, scheme: str = "expanding",
                 valid_fraction: float = 0.2, embargo_ms: float = 0.0) -> None:
        if n_folds < 1 or train_blocks < 1:
            raise UserError("split.n_folds and split.train_blocks must be >= 1", where="split")
        if scheme not in ("rolling", "expanding"):
            raise UserError(f"split.scheme must be 'rolling' or 'expanding', got {scheme!r}", where="split.scheme")
        self.n_folds, self.train_blocks, self.scheme = n_folds, train_blocks, scheme
        self.valid_fraction, self.embargo_ms = valid_fraction, embargo_ms

    def folds(self, ts: np.ndarray, label_end_ts: np.ndarray) -> list[Fold]:
        t0, t1 = int(ts.min()), int(ts.max()) + 1
        nb = self.n_folds + self.train_blocks
        edges = [t0, *_time_quantiles(ts, [k / nb for k in range(1, nb)]), t1]
        emb = int(self.embargo_ms * 1e6)
        out = []
        for k in range(self.n_folds):
            test_lo, test_hi = edges[self.train_blocks + k], edges[self.train_blocks + k + 1]
            tr_lo = edges[k] if self.scheme == "rolling" else edges[0]
            span = np.sort(ts[(ts >= tr_lo) & (ts < test_lo)])
            v_lo = int(span[int(len(span) * (1 - self.valid_fraction))]) if len(span) else test_lo
            train = _segment(ts, tr_lo, v_lo, label_end_ts, v_lo, emb)
            valid = _segment(ts, v_lo, test_lo, label_end_ts, test_lo, emb)
            test = np.flatnonzero((ts >= test_lo) & (ts < test_hi))
            purged = int(((ts >= tr_lo) & (ts < test_lo)).sum()) - len(train) - len(valid)
            out.append(_checked(Fold(f"fold{k}", train, valid, test, purged, test_lo, test_hi)))
        return out


def _time_quantiles(ts: np.ndarray, fractions: list[float]) -> list[int]:
    """Timestamps below which the given fractions of rows fall (boundaries between segments)."""
    srt = np.sort(ts)
    return [int(srt[min(int(len(srt) * f), len(srt) - 1)]) for f in fractions]


def _checked(f: Fold) -> Fold:
    if len(f.train) == 0 or len(f.test) == 0:
        raise UserError(f"split {f.name}: empty {'training' if len(f.train) == 0 else 'test'} set "
                        f"(train {len(f.train)}, valid {len(f.valid)}, test {len(f.test)} rows)",
                        where="split", fix="Use more data, fewer folds, or a shorter label horizon.")
    return f
