"""Labels: the future mid-price move over a horizon, computed per symbol with only data after t.

For a snapshot at time t with mid m_t, the future mid m_f is
* ``unit: events``: the mid h snapshots later (same symbol);
* ``unit: ms``: the mid of the last snapshot at or before t + h (the book as it stands then).

r = ln(m_f / m_t) * 1e4 (bps). Kinds:
* ``classification`` (3 classes): 0 down if r < -thr, 2 up if r > thr, else 1 flat;
* ``binary``: 1 if r > thr else 0;
* ``regression``: r itself.
``thr`` is ``threshold`` in bps, or ``threshold`` x the spread at t in bps (``threshold_unit: spread``).
Rows whose horizon runs past the end of their symbol's data -- or past the end of their *session*
(a gap longer than ``gap_ms``, the same cut at which the features restart, see :mod:`l2exp.sessions`)
-- have no label: they are dropped and counted. A label never reads a book from another recording.
``label_end_ts`` (the time of the snapshot the label reads) lets splits purge overlapping rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from l2exp.errors import UserError
from l2exp.sessions import session_groups

CLASS_NAMES = {"classification": ["down", "flat", "up"], "binary": ["not_up", "up"], "regression": []}


@dataclass
class Labels:
    y: np.ndarray  # float64 (NaN where no label)
    future_ret_bps: np.ndarray
    label_end_ts: np.ndarray  # int64 (-1 where no label)
    valid: np.ndarray  # bool
    cut_by_gap: int = 0  # rows left unlabelled because their horizon crosses a session gap


class LabelSpec:
    def __init__(self, horizon: float, unit: str = "events", kind: str = "classification",
                 threshold: float = 0.0, threshold_unit: str = "bps", permute: bool = False) -> None:
        if horizon is None or float(horizon) <= 0:
            raise UserError(f"labels.horizon must be > 0, got {horizon}", where="labels.horizon",
                            fix="e.g. labels.horizon=50 (events) or labels.unit=ms labels.horizon=1000")
        if unit not in ("events", "ms"):
            raise UserError(f"labels.unit must be 'events' or 'ms', got {unit!r}", where="labels.unit")
        if kind not in CLASS_NAMES:
            raise UserError(f"labels.kind must be one of {list(CLASS_NAMES)}, got {kind!r}", where="labels.kind")
        if threshold_unit not in ("bps", "spread"):
            raise UserError(f"labels.threshold_unit must be 'bps' or 'spread', got {threshold_unit!r}",
                            where="labels.threshold_unit")
        self.horizon = float(horizon)
        self.unit = unit
        self.kind = kind
        self.threshold = float(threshold)
        self.threshold_unit = threshold_unit
        # the leakage control (mode=train): shuffle the training labels, change nothing else
        self.permute = bool(permute)

    @property
    def classes(self) -> list[str]:
        return CLASS_NAMES[self.kind]

    def describe(self) -> dict:
        return {"horizon": self.horizon, "unit": self.unit, "kind": self.kind, "threshold": self.threshold,
                "threshold_unit": self.threshold_unit, "permute": self.permute, "classes": self.classes}

    def classify(self, ret_bps: np.ndarray, spread_bps: np.ndarray) -> np.ndarray:
        """Map returns (bps) to labels of this kind; NaN stays NaN."""
        valid = ~np.isnan(ret_bps)
        thr = self.threshold * (spread_bps if self.threshold_unit == "spread" else 1.0)
        if self.kind == "regression":
            return ret_bps.copy()
        if self.kind == "binary":
            return np.where(valid, (ret_bps > thr).astype(float), np.nan)
        return np.where(valid, np.where(ret_bps > thr, 2.0, np.where(ret_bps < -thr, 0.0, 1.0)), np.nan)

    def past_returns(self, book: pd.DataFrame, gap_ms: float | None = None) -> np.ndarray:
        """ln(m_t / m_{t-h}) * 1e4: the same horizon looking back within the session (NaN where
        history is short)."""
        out = np.full(len(book), np.nan)
        mid_all = 0.5 * (book["bid_price_1"].to_numpy(float) + book["ask_price_1"].to_numpy(float))
        ts_all = book["timestamp"].to_numpy(np.int64)
        for idx in session_groups(book, gap_ms):
            ts, mid = ts_all[idx], mid_all[idx]
            if self.unit == "events":
                j = np.arange(len(idx)) - int(round(self.horizon))
            else:
                j = np.searchsorted(ts, ts - int(self.horizon * 1e6), side="right") - 1
            ok = j >= 0
            out[idx[ok]] = np.log(mid[ok] / mid[j[ok]]) * 1e4
        return out

    def horizon_ns(self) -> float:
        return self.horizon * 1e6 if self.unit == "ms" else 0.0

    def compute(self, book: pd.DataFrame, gap_ms: float | None = None) -> Labels:
        """Labels of every row of a canonical frame; ``gap_ms``: the session gap (``None``: none)."""
        n = len(book)
        ret = np.full(n, np.nan)
        end = np.full(n, -1, dtype=np.int64)
        mid_all = 0.5 * (book["bid_price_1"].to_numpy(float) + book["ask_price_1"].to_numpy(float))
        spread_bps_all = (book["ask_price_1"].to_numpy(float) - book["bid_price_1"].to_numpy(float)) / mid_all * 1e4
        ts_all = book["timestamp"].to_numpy(np.int64)
        for idx in session_groups(book, gap_ms):
            self._label_run(idx, ts_all[idx], mid_all[idx], ret, end)
        valid = ~np.isnan(ret)
        cut = 0
        if gap_ms is not None:  # rows that would have a label if the recording had no gap
            whole = np.full(n, np.nan)
            for idx in session_groups(book, None):
                self._label_run(idx, ts_all[idx], mid_all[idx], whole, np.full(n, -1, dtype=np.int64))
            cut = int((~np.isnan(whole) & ~valid).sum())
        return Labels(self.classify(ret, spread_bps_all), ret, end, valid, cut)

    def _label_run(self, idx: np.ndarray, ts: np.ndarray, mid: np.ndarray, ret: np.ndarray, end: np.ndarray) -> None:
        """Label one contiguous, time-ordered run of snapshots in place (rows ``idx`` of the frame)."""
        if self.unit == "events":
            j = np.arange(len(idx)) + int(round(self.horizon))
            ok = j < len(idx)
        else:
            j = np.searchsorted(ts, ts + int(self.horizon * 1e6), side="right") - 1
            ok = ts + int(self.horizon * 1e6) <= ts[-1]
        jj = np.where(ok, j, 0)
        r = np.log(mid[jj] / mid) * 1e4
        ret[idx[ok]] = r[ok]
        end[idx[ok]] = ts[jj][ok]
