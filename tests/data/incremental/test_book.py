"""The book builder against a plain-Python reference book (dicts, sorted at each emit): the same
snapshots for any update stream (hypothesis), plus the known answers a reader can check by hand."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from l2exp.data.incremental.book import COUNTER_NAMES, BookState, build


def run(messages: list[list[tuple[int, float, float]]], clear: list[bool] | None = None, levels: int = 3,
        max_depth: int = 50, every_ns: int = 0, ts: list[int] | None = None):
    msg = [m for m, ups in enumerate(messages) for _ in ups]
    flat = [u for ups in messages for u in ups]
    n = len(messages)
    counts = np.zeros(len(COUNTER_NAMES), np.int64)
    state = BookState(max_depth)
    snaps, best = build(state, np.asarray(msg, np.int64), np.asarray([u[0] for u in flat], np.int8),
                        np.asarray([u[1] for u in flat], float), np.asarray([u[2] for u in flat], float),
                        np.asarray(ts or list(range(1, n + 1)), np.int64), np.asarray(clear or [False] * n),
                        np.ones(n, bool), np.ones(n, bool), levels, every_ns, counts)
    return snaps, best, dict(zip(COUNTER_NAMES, counts.tolist(), strict=True))


def reference(messages: list[list[tuple[int, float, float]]], levels: int) -> list[np.ndarray]:
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    out = []
    for ups in messages:
        for side, price, size in ups:
            book = bids if side > 0 else asks
            if size > 0:
                book[price] = size
            else:
                book.pop(price, None)
        row = np.full(4 * levels, np.nan)
        for k, p in enumerate(sorted(bids, reverse=True)[:levels]):
            row[k], row[levels + k] = p, bids[p]
        for k, p in enumerate(sorted(asks)[:levels]):
            row[2 * levels + k], row[3 * levels + k] = p, asks[p]
        out.append(row)
    return out


def test_known_answers():
    snaps, best, counts = run([
        [(1, 100.0, 1.0), (1, 99.0, 2.0), (-1, 101.0, 3.0), (-1, 102.0, 4.0)],  # the book
        [(1, 99.5, 5.0)],            # insert between levels
        [(1, 100.0, 0.0)],           # delete the best bid
        [(-1, 101.0, 7.0)],          # resize
        [(1, 98.0, 0.0)],            # delete a level that is not there: counted, book unchanged
    ])
    assert snaps.bid_px[1, :3].tolist() == [100.0, 99.5, 99.0]
    assert snaps.bid_px[2, :2].tolist() == [99.5, 99.0] and np.isnan(snaps.bid_px[2, 2])
    assert snaps.ask_sz[3, :2].tolist() == [7.0, 4.0]
    assert best[4].tolist() == [99.5, 101.0]
    assert counts["delete_of_missing_level"] == 1 and counts["snapshots_out"] == 5


def test_clear_replaces_the_book_and_depth_is_bounded():
    snaps, _, counts = run([[(1, 100.0, 1.0), (1, 99.0, 1.0), (1, 98.0, 1.0), (-1, 101.0, 1.0)],
                            [(1, 90.0, 2.0), (-1, 91.0, 2.0)]], clear=[True, True], max_depth=2)
    assert snaps.bid_px[0, :2].tolist() == [100.0, 99.0] and counts["beyond_depth"] == 1  # 98 fell off
    assert snaps.bid_px[1, 0] == 90.0 and np.isnan(snaps.bid_px[1, 1]) and snaps.ask_px[1, 0] == 91.0
    assert counts["crossed_books"] == 0


def test_time_sampling_shows_the_book_as_it_stood_at_each_boundary():
    # updates at 5, 25, 27 ns; boundaries every 10 ns: at 10 and 20 the book of t=5, at 30 none yet (stream ends)
    snaps, _, _ = run([[(1, 100.0, 1.0), (-1, 101.0, 1.0)], [(1, 100.0, 2.0)], [(1, 100.0, 3.0)]],
                      ts=[5, 25, 27], every_ns=10)
    assert snaps.ts.tolist() == [10, 20] and snaps.bid_sz[:, 0].tolist() == [1.0, 1.0]


updates = st.lists(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(90, 110).map(float),
                                      st.sampled_from([0.0, 0.5, 1.0, 2.0])), min_size=1, max_size=6),
                   min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(updates)
def test_same_snapshots_as_the_reference_book(messages):
    levels = 4
    snaps, _, _ = run(messages, levels=levels, max_depth=64)
    got = np.hstack([snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz])
    want = np.vstack(reference(messages, levels))
    np.testing.assert_array_equal(got, want)
