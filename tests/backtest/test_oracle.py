"""hftbacktest as the oracle for fill timing (``bench/oracle.py``): on the real BitMEX XBTUSD day, the
same events and the same decisions give the same fills, one by one. Skipped with the reason when
hftbacktest (the ``bench`` extra, installed by ``scripts/test.sh``) or the recording is absent."""

from __future__ import annotations

import importlib.util

import pytest

from l2exp.config import shared_data_dir

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


@pytest.fixture(scope="module")
def day():
    if importlib.util.find_spec("hftbacktest") is None:
        pytest.skip("hftbacktest is not installed (pip install '.[bench]'): no oracle to compare with")
    if not (shared_data_dir() / "bitmex").exists():
        pytest.skip(f"no BitMEX recording under {shared_data_dir()}")
    from bench.oracle import hft_events, load

    book, trades = load()
    return book, trades, hft_events(book, trades)


@pytest.mark.parametrize("interval_ms, queue", [(100, "trades_only"), (1000, "power_prob")])
def test_fills_match_hftbacktest_on_the_same_events(day, interval_ms, queue):
    from bench.oracle import compare

    book, trades, events = day
    r = compare(book, trades, events, interval_ms, queue)
    ours, theirs = r["l2exp"]["fills"], r["hftbacktest"]["fills"]
    assert theirs > 40, r  # the strategy trades on this day: the comparison is not vacuous
    assert abs(ours - theirs) <= (max(2, 0.1 * theirs) if interval_ms < 1000 else 2), r
    assert r["l2exp_matched"] >= 0.95 and r["hftbacktest_matched"] >= 0.95, (r["unmatched_l2exp"],
                                                                          r["unmatched_hftbacktest"])
    assert r["l2exp"]["maker"] == ours - r["l2exp"]["taker"] and r["l2exp"]["by_rule"].get("print", 0) > 0
