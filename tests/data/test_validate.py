"""Each schema rule, one by one, on hand-built books."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
