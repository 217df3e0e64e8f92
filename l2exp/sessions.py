"""Sessions: the contiguous stretches of one instrument's recording.

A gap longer than ``gap_ms`` between two consecutive snapshots of a symbol ends a session (two
recordings days apart, an outage). Everything that looks across time respects the cut: the flow
features restart and warm up again, no label window reaches across it, Sharpe and time-in-market
are measured inside sessions only. One definition, here, so the three can never disagree.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_GAP_MS = 300_000.0  # features.params.reset_gap_ms default: 5 minutes
DAY_NS = 86_400_000_000_000  # one UTC day: the store's partitions are (symbol, timestamp // DAY_NS)


def sessions(ts: np.ndarray, gap_ms: float, daily: bool = False) -> list[slice]:
    """Split one symbol's time-ordered snapshots where the gap exceeds ``gap_ms`` (and, with ``daily``,
    at 00:00 UTC too: where the feature state restarts, see ``features.params.reset_daily``)."""
    cut = np.diff(ts) > gap_ms * 1e6
    if daily:
        cut |= np.diff(ts // DAY_NS) != 0
    bounds = [0, *(np.flatnonzero(cut) + 1).tolist(), len(ts)]
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def session_ids(ts: np.ndarray, gap_ms: float) -> np.ndarray:
    """0, 0, ..., 1, 1, ...: the session number of each snapshot of one time-ordered symbol."""
    if len(ts) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.r_[0, np.cumsum(np.diff(ts) > gap_ms * 1e6)].astype(np.int64)


def session_groups(book: pd.DataFrame, gap_ms: float | None) -> list[np.ndarray]:
    """Row positions of each (symbol, exchange, session) of a canonical frame, each in time order.

    ``gap_ms=None`` means no cut inside a symbol (one session per instrument).
    """
    if not len(book):
        return []
    groups = book.groupby(["symbol", "exchange"], sort=False, observed=True).indices
    ts_all = book["timestamp"].to_numpy(np.int64)
    out: list[np.ndarray] = []
    for idx in groups.values():
        if gap_ms is None:
            out.append(idx)
            continue
        out.extend(idx[sl] for sl in sessions(ts_all[idx], gap_ms))
    return out
