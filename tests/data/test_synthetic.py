"""The synthetic book has the shape of a real one, and its imbalance really predicts the mid."""

from __future__ import annotations

import numpy as np
import pandas as pd

from l2exp.data.synthetic import SyntheticReader


def frame(**kw) -> pd.DataFrame:
    r = SyntheticReader(10, n_snapshots=50_000, **kw)
    return next(r.iter_chunks("synthetic://", 50_000, set())).table.to_pandas()


def test_seeded_and_deterministic():
    a, b, c = frame(seed=1), frame(seed=1), frame(seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_book_shape():
    df = frame()
    spread_ticks = (df.ask_price_1 - df.bid_price_1) / 0.5
    assert (spread_ticks == 1).mean() > 0.85  # mostly one-tick spreads
    assert (spread_ticks >= 1).all()
    assert (df.bid_price_1 - df.bid_price_2 > 0).all() and (df.ask_price_2 - df.ask_price_1 > 0).all()
    assert df.timestamp.is_monotonic_increasing
    depth = df[[f"bid_size_{i}" for i in range(1, 11)]].mean()
    assert depth.min() > 0 and depth.iloc[-1] < depth.iloc[:5].max()  # a depth profile, not flat


def test_volatility_clusters():
    df = frame()
    mid = (df.bid_price_1 + df.ask_price_1) / 2
    r = np.abs(np.log(mid).diff(50).dropna().to_numpy()[::50])
    assert pd.Series(r).autocorr() > 0.1


def test_queue_imbalance_predicts_next_mid_move():
    df = frame()
    mid = (df.bid_price_1 + df.ask_price_1) / 2
    imb = (df.bid_size_1 - df.ask_size_1) / (df.bid_size_1 + df.ask_size_1)
    move = mid.diff()
    nxt = pd.Series(np.where(move != 0, np.sign(move), np.nan)).shift(-1).bfill()
    ok = nxt.notna() & (imb != 0)
    hit = (np.sign(imb[ok]) == nxt[ok]).mean()
    assert hit > 0.56, hit  # a coin would give 0.5
