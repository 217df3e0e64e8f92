"""Each schema rule, one by one, on hand-built books."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2exp.data.validate import CODE, REASONS, Validator, row_keys
from l2exp.errors import UserError
from l2exp.schema import BookChunk

RULES = {r: "reject" for r in REASONS}


def book(n: int = 3, levels: int = 3, ts: list[int] | None = None, symbol: str = "X") -> BookChunk:
    base = 100.0
    bp = np.asfortranarray(np.tile(base - np.arange(levels), (n, 1)).astype(float))
    ap = np.asfortranarray(np.tile(base + 1 + np.arange(levels), (n, 1)).astype(float))
    sz = np.asfortranarray(np.full((n, levels), 5.0))
    t = np.asarray(ts if ts is not None else np.arange(n) * 1_000_000 + 1_700_000_000 * 10**9, dtype=np.int64)
    return BookChunk(t, pd.Categorical([symbol] * n), pd.Categorical(["ex"] * n), bp, sz.copy(), ap, sz.copy())


def reasons(chunk: BookChunk, unparseable: np.ndarray | None = None, v: Validator | None = None) -> list[str]:
    v = v or Validator(RULES)
    codes, _ = v.check(chunk, np.zeros(chunk.n, bool) if unparseable is None else unparseable)
    return ["ok" if c == 0 else REASONS[c - 1] for c in codes]


def test_clean_book_accepted():
    assert reasons(book()) == ["ok"] * 3


def test_unparseable_flag_wins():
    assert reasons(book(), np.array([False, True, False])) == ["ok", "unparseable", "ok"]


def test_empty_side():
    b = book()
    b.ask_price[1, :] = np.nan
    b.ask_size[1, :] = np.nan
    assert reasons(b)[1] == "empty_side"


def test_incomplete_level():
    b = book()
    b.bid_size[0, 2] = np.nan
    assert reasons(b)[0] == "incomplete_level"


def test_non_positive_price_and_size():
    b = book()
    b.bid_price[0, 2] = -1.0
    b.ask_size[1, 0] = 0.0
    assert reasons(b)[:2] == ["non_positive_price", "non_positive_size"]


def test_crossed_book():
    b = book()
    b.bid_price[2, 0] = 101.0  # equal to best ask: crossed (locked counts as crossed)
    assert reasons(b)[2] == "crossed_book"


def test_unsorted_levels_and_holes():
    b = book(n=2)
    b.ask_price[0, 1] = 101.0  # equal to level 1: not strictly rising
    b.bid_price[1, 1] = np.nan
    b.bid_size[1, 1] = np.nan  # hole: level 3 present after missing level 2
    assert reasons(b) == ["unsorted_levels", "unsorted_levels"]


def test_missing_trailing_levels_are_legal():
    b = book()
    b.bid_price[:, 2] = np.nan
    b.bid_size[:, 2] = np.nan
    assert reasons(b) == ["ok"] * 3


def test_equal_timestamps_are_legal_but_earlier_is_not():
    t0 = 1_700_000_000 * 10**9
    b = book(n=4, ts=[t0, t0, t0 - 1, t0 + 5])
    b.bid_size[1, 0] = 6.0  # same time, different book: legal
    assert reasons(b) == ["ok", "ok", "non_monotonic_time", "ok"]


def test_time_order_is_per_symbol_and_carried_across_chunks():
    v = Validator(RULES)
    t0 = 1_700_000_000 * 10**9
    assert reasons(book(n=2, ts=[t0, t0 + 10]), v=v) == ["ok", "ok"]
    assert reasons(book(n=1, ts=[t0 + 5], symbol="Y"), v=v) == ["ok"]  # other symbol: its own clock
    assert reasons(book(n=1, ts=[t0 + 5]), v=v) == ["non_monotonic_time"]


def test_exact_duplicates_within_and_across_chunks():
    v = Validator(RULES)
    t0 = 1_700_000_000 * 10**9
    assert reasons(book(n=2, ts=[t0, t0]), v=v) == ["ok", "duplicate"]
    assert reasons(book(n=1, ts=[t0]), v=v) == ["duplicate"]


def test_fail_action_names_file_and_line():
    v = Validator({**RULES, "crossed_book": "fail"})
    b = book()
    b.bid_price[1, 0] = 200.0
    codes, _ = v.check(b, np.zeros(3, bool))
    assert codes[1] == CODE["crossed_book"]
    with pytest.raises(UserError, match="crossed_book") as err:
        v.raise_if_fatal(codes, np.array([5, 6, 7]), "f.csv", {})
    assert "f.csv, line 6" in err.value.render()


def test_unknown_rule_or_action_is_a_user_error():
    with pytest.raises(UserError):
        Validator({"no_such_rule": "reject"})
    with pytest.raises(UserError):
        Validator({"duplicate": "ignore"})


def test_row_keys_depend_on_every_value():
    b = book(n=1)
    k0 = row_keys(b)[0]
    for field in ("bid_price", "bid_size", "ask_price", "ask_size"):
        c = book(n=1)
        getattr(c, field)[0, 2] += 0.5
        assert row_keys(c)[0] != k0, field
    assert row_keys(book(n=1, symbol="Y"))[0] != k0


def test_non_finite_and_absurd_values_have_their_own_reasons():
    """inf, -inf and 1e308 are never a quote: rejected as non_finite / implausible_value -- not mislabelled
    crossed_book or unsorted_levels -- in the batch rules and in the live row check alike."""
    from l2exp.data.validate import check_row

    b = book(n=6)
    b.ask_price[0, 0] = np.inf  # used to pass as a valid best ask
    b.bid_size[1, 1] = np.inf
    b.bid_price[2, 2] = -np.inf  # used to be non_positive_price
    b.ask_price[3, 2] = 1e308  # parses; used to pass
    b.ask_size[4, 0] = 5e12
    got = reasons(b)
    assert got == ["non_finite", "non_finite", "non_finite", "implausible_value", "implausible_value", "ok"]
    tight = Validator(RULES, {"max_price": 100.5})
    assert reasons(book(n=1), v=tight) == ["implausible_value"]  # asks at 101..103 exceed it
    for i, want in enumerate(got):
        code = check_row(int(b.timestamp[i]), 0, b.bid_price[i], b.bid_size[i], b.ask_price[i], b.ask_size[i])
        assert ("ok" if code == 0 else REASONS[code - 1]) == want
    with pytest.raises(UserError, match="validation.plausible"):
        Validator(RULES, {"max_prize": 1.0})


def test_no_non_finite_value_reaches_the_store(workdir):
    from l2exp.modes.ingest import run_ingest
    from tests.conftest import make_cfg

    rows = ["timestamp,symbol,exchange,bid_price_1,bid_size_1,ask_price_1,ask_size_1"]
    for k in range(6):
        ask = {1: "inf", 3: "1e308"}.get(k, "101")
        size = "inf" if k == 4 else "5"
        rows.append(f"{1_700_000_000_000_000_000 + k * 1_000_000},X,ex,100,{size},{ask},5")
    path = workdir / "inf.csv"
    path.write_text("\n".join(rows) + "\n")
    s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={path}",
                             "data.levels=1", f"workdir={workdir}"]))
    assert s["accepted"] == 3 and s["rejected_by_reason"] == {"non_finite": 2, "implausible_value": 1}
    from l2exp.config import instantiate

    store = instantiate(make_cfg(["data=canonical_csv", f"data.path={path}", "data.levels=1",
                                  f"workdir={workdir}"]).store)
    stored = store.read()
    assert np.isfinite(stored[["bid_price_1", "bid_size_1", "ask_price_1", "ask_size_1"]].to_numpy()).all()


_CELLS = [np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e308, 5e12, 1.0, 2.0, 3.0, 99.0, 100.0, 101.0, 102.0]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_chunk_row_rules_equal_the_live_check_row(data):
    """The chunk pass clears most rows column-wise and sends only the others to ``check_row``: on random
    books -- NaN holes, inf, zeros, absurd sizes, crossed and unsorted sides, mostly-valid ladders --
    every row gets exactly the code ``check_row`` gives it alone."""
    from l2exp.data.validate import _row_rules, check_row

    n = data.draw(st.integers(1, 25))
    levels = data.draw(st.integers(1, 4))
    cells = st.sampled_from(_CELLS)
    mats = []
    for side, step in (("bid", -1.0), ("ask", 1.0)):
        price = np.empty((n, levels))
        size = np.empty((n, levels))
        for i in range(n):
            if data.draw(st.booleans()):  # a valid ladder, perhaps with one bad cell
                price[i] = (100.0 if side == "bid" else 101.0) + step * np.arange(levels)
                size[i] = 5.0
                how = data.draw(st.sampled_from(["none", "cell", "equal", "swap", "trailing_nan", "zero_last"]))
                k = data.draw(st.integers(0, levels - 1))
                if how == "cell":
                    (price if data.draw(st.booleans()) else size)[i, k] = data.draw(cells)
                elif how == "equal" and k > 0:  # a level equal to the one above: unsorted
                    price[i, k] = price[i, k - 1]
                elif how == "swap" and k > 0:
                    price[i, [k - 1, k]] = price[i, [k, k - 1]]
                elif how == "trailing_nan":  # legal: a short side
                    price[i, k:] = size[i, k:] = np.nan
                elif how == "zero_last":  # the deepest price 0: still falls on the bid side
                    price[i, -1] = 0.0
            else:
                price[i] = data.draw(st.lists(cells, min_size=levels, max_size=levels))
                size[i] = data.draw(st.lists(cells, min_size=levels, max_size=levels))
        mats += [np.asfortranarray(price), np.asfortranarray(size)]
    bp, bs, ap, as_ = mats
    for i in range(n):
        if data.draw(st.integers(0, 5)) == 0:  # best bid at the best ask: crossed
            bp[i, 0] = ap[i, 0]
    unparseable = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    max_price = data.draw(st.sampled_from([1e9, 1e9, 100.5, 1e308]))
    max_size = data.draw(st.sampled_from([1e12, 1e12, 4.0]))
    got = np.zeros(n, np.int8)
    _row_rules(bp, bs, ap, as_, unparseable, max_price, max_size, got)
    lowest = np.iinfo(np.int64).min
    want = [1 if unparseable[i] else check_row(0, lowest, bp[i], bs[i], ap[i], as_[i], max_price, max_size)
            for i in range(n)]
    assert got.tolist() == want


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-2, -1, 0, 0, 0, 1]), st.integers(0, 2), st.integers(0, 1)),
                min_size=1, max_size=60),
       st.lists(st.integers(1, 20), min_size=1, max_size=8))
def test_time_and_duplicate_rules_equal_a_row_by_row_reference(steps, cuts):
    """Random rows -- times that repeat and step back, books drawn from three, one or two symbols -- cut into
    random chunks: the reasons equal a row-by-row reference (late: before the running latest time of
    its symbol; duplicate: the same time, symbol and book as an earlier on-time row)."""
    rows, t = [], 10  # times mostly repeat (runs of equal times across chunk cuts), sometimes step back
    for dt, bk, sym in steps:
        t += dt
        rows.append((t, bk, sym))
    v = Validator(RULES)
    latest: dict[str, int] = {}
    seen: set[tuple[int, str, int]] = set()
    want = []
    for t, bk, sym in rows:
        name = "XY"[sym]
        if name in latest and t < latest[name]:
            want.append("non_monotonic_time")
            continue
        latest[name] = t
        want.append("duplicate" if (t, name, bk) in seen else "ok")
        seen.add((t, name, bk))
    got, start, k = [], 0, 0
    while start < len(rows):
        part = rows[start:start + cuts[k % len(cuts)]]
        start, k = start + len(part), k + 1
        n = len(part)
        b = book(n=n, ts=[1_700_000_000 * 10**9 + t * 1_000 for t, _, _ in part])
        for i, (_, bk, _sym) in enumerate(part):
            b.bid_size[i, 0] = 1.0 + bk
        b.symbol = pd.Categorical(["XY"[sym] for _, _, sym in part])
        got += reasons(b, v=v)
    assert got == want
