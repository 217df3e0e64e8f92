"""The ccxt.pro websocket feed, offline: a fake Binance diff-depth stream on 127.0.0.1 with dropped
connections, garbage frames, sequence gaps, a stalled stream and a venue that never answers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from l2exp.errors import UserError
from l2exp.sim.feeds import CcxtWsFeed
from tests.sim.fake_ws import FakeBinanceWs
from tests.sim.test_sim import BINANCE, needs_binance

pytestmark = needs_binance


def collect(feed: CcxtWsFeed, n: int, timeout_s: float = 30) -> list:
    ticks, t0 = [], time.time()
    while len(ticks) < n and time.time() - t0 < timeout_s:
        tick = feed.poll()
        if tick is None:
            time.sleep(0.002)
            continue
        ticks.append(tick)
    return ticks


def valid(tick) -> bool:  # noqa: ANN001
    b = tick.book
    return bool(np.isfinite(b[:, 0]).all() and b[0, 0] < b[2, 0] and (np.diff(b[0]) < 0).all()
                and (np.diff(b[2]) > 0).all())


@pytest.mark.parametrize("fault", ["ok", "drop", "garbage", "gap"])
def test_stream_survives_faults(fault):
    with FakeBinanceWs(BINANCE, [fault], n=15) as fake:
        feed = CcxtWsFeed("binance", "BTC/USDT", 5, options=fake.ccxt_options(), backoff_ms=5, backoff_cap_ms=20,
                          max_failures=5, silence_s=1.0)
        try:
            ticks = collect(feed, 40)
        finally:
            feed.close()
    assert len(ticks) == 40 and all(valid(t) for t in ticks)
    assert all(t2.ts >= t1.ts for t1, t2 in zip(ticks, ticks[1:], strict=False))
    if fault == "ok":
        assert feed.stats.reconnects == 0 and fake.connections == 1 and fake.snapshots == 1
    elif fault == "gap":  # ccxt notices the missing sequence id and resynchronises from a fresh snapshot
        assert fake.snapshots >= 2
    else:  # the connection's book is gone: a reconnect, a fresh snapshot, a valid stream again
        assert feed.stats.reconnects >= 1 and fake.connections >= 2 and fake.snapshots >= 2, \
            (fault, feed.stats.last_error)


def test_stalled_stream_is_reconnected():
    """A connection that stays open and sends nothing: no invented books; after silence_s the feed
    counts a failure, reconnects, and the next (healthy) connection streams again."""
    with FakeBinanceWs(BINANCE, ["stale"]) as fake:
        feed = CcxtWsFeed("binance", "BTC/USDT", 5, options=fake.ccxt_options(), backoff_ms=5, silence_s=0.5)
        try:
            ticks = collect(feed, 20, timeout_s=20)
        finally:
            feed.close()
    assert len(ticks) == 20 and all(valid(t) for t in ticks)
    assert feed.stats.reconnects >= 1 and "stalled" in feed.stats.last_error and fake.connections >= 2


def test_gives_up_after_bounded_failures():
    with FakeBinanceWs(BINANCE, ["refuse"] * 50) as fake:
        feed = CcxtWsFeed("binance", "BTC/USDT", 5, options=fake.ccxt_options(), backoff_ms=5, backoff_cap_ms=10,
                          max_failures=3)
        t0 = time.time()
        with pytest.raises(UserError, match="3 consecutive failures"):
            while time.time() - t0 < 30:
                feed.poll()
                time.sleep(0.01)
        feed.close()
    assert fake.connections == 3
