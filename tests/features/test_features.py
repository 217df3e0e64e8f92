"""The feature library: formulas (vs an independent pandas implementation), streaming == batch,
no look-ahead, warm-up marking, level checks, documentation -- for every feature, on real data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.features import depth, flow, price
from l2exp.features.engine import StreamingEngine, compute_batch, state_segments
from l2exp.features.params import FeatureParams
from l2exp.features.reference import reference_features
from l2exp.features.registry import FeatureSet
from l2exp.schema import SIDE_FIELDS, level_columns
from tests.conftest import SHARED, make_cfg, needs_shared

BITMEX_TICKS = {"XBTUSD": 0.5, "ETHUSD": 0.05}


def load(data: str, tmp_path, rows: int | None = None) -> pd.DataFrame:
    import hydra

    from l2exp.modes.ingest import run_ingest

    cfg = make_cfg(["mode=ingest", "mode.progress=false", f"data={data}", f"workdir={tmp_path}"])
    run_ingest(cfg)
    book = hydra.utils.instantiate(cfg.store).read()
    return book.iloc[:rows].reset_index(drop=True) if rows else book


@pytest.fixture(scope="module")
def bitmex(tmp_path_factory) -> pd.DataFrame:
    if not (SHARED / "bitmex/orderbook10_2020-03-10.csv.gz").exists():
        pytest.skip(f"BitMEX recording not found under {SHARED}")
    return load("bitmex_ob10", tmp_path_factory.mktemp("bitmex"))


def test_at_least_48_documented_features():
    p = FeatureParams()
    names = p.names()
    assert len(names) >= 48 and len(set(names)) == len(names)
    docs = (price.__doc__ or "") + (depth.__doc__ or "") + (flow.__doc__ or "")
    for name in names:
        base = re.sub(r"_(w\d+(ms)?|\d+bps|\d+)(?=_|$)", "", name)  # drop depth / window / bps suffixes
        assert f"``{base}" in docs, f"{name} ({base}) has no formula/unit row in its family docstring"


def test_formulas_match_the_pandas_reference(bitmex):
    """Every feature of the Numba kernels equals an independent pandas implementation (real data)."""
    p = FeatureParams(tick_size=BITMEX_TICKS)
    for symbol, part in bitmex.groupby("symbol"):
        ts = part["timestamp"].to_numpy()
        for sl in state_segments(ts, p):
            sess = part.iloc[sl].reset_index(drop=True)
            got = compute_batch(sess, p, 10).features
            want = reference_features(sess, p, 10, BITMEX_TICKS[symbol])
            for name in p.names():
                np.testing.assert_allclose(got[name], want[name], rtol=1e-7, atol=1e-7, equal_nan=True,
                                           err_msg=f"{name} ({symbol})")


def _stream(book: pd.DataFrame, p: FeatureParams, levels: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty((len(book), len(p.names())))
    ready = np.empty(len(book), dtype=bool)
    for (symbol, _), idx in book.groupby(["symbol", "exchange"], sort=False).indices.items():
        eng = StreamingEngine(p, levels, str(symbol) if isinstance(p.tick_size, dict) else None)
        mats = [book[level_columns(f, levels)].to_numpy(float)[idx] for f in SIDE_FIELDS]
        ts = book["timestamp"].to_numpy()[idx]
        snap = np.empty((4, levels))
        for j, row in enumerate(idx):
            for k in range(4):
                snap[k] = mats[k][j]
            vec, ok = eng.update_book(int(ts[j]), snap)
            out[row] = vec
            ready[row] = ok
    return out, ready


@pytest.mark.parametrize(("unit", "capacity"), [("events", 2048), ("ms", 2048), ("ms", 64)])
def test_streaming_equals_batch_on_a_real_recording(bitmex, unit, capacity):
    """capacity 64 is below the batch block (256 rows): time windows are truncated to 63 snapshots and
    the exact re-summation runs every 64 -- inside blocks, as the streaming engine does it per row."""
    windows = {"short": 10, "medium": 50, "long": 200} if unit == "events" else \
        {"short": 500, "medium": 2000, "long": 10000}
    p = FeatureParams(tick_size=BITMEX_TICKS, window_unit=unit, windows=windows, capacity=capacity)
    book = bitmex.iloc[:40_000].reset_index(drop=True)  # both symbols interleaved, ring wraps many times
    batch = compute_batch(book, p, 10)
    stream, ready = _stream(book, p, 10)
    np.testing.assert_array_equal(ready, batch.ready)
    for j, name in enumerate(p.names()):
        np.testing.assert_allclose(stream[:, j], batch.features[name].to_numpy(), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=name)


@pytest.mark.parametrize("unit", ["events", "ms"])
def test_block_size_changes_no_value(bitmex, unit):
    """The batch engine's blocks are a speed device only: blocks of 256, 7 and 1 rows give the same bits."""
    from l2exp.features import engine

    windows = {"short": 10, "medium": 50, "long": 200} if unit == "events" else \
        {"short": 500, "medium": 2000, "long": 10000}
    p = FeatureParams(tick_size=0.5, window_unit=unit, windows=windows, capacity=512)
    book = bitmex[bitmex.symbol == "XBTUSD"].iloc[:6_000]
    pf, pi = p.packed()
    mats = [np.asfortranarray(book[level_columns(f, 10)].to_numpy(float)) for f in SIDE_FIELDS]
    ts = book["timestamp"].to_numpy(np.int64)
    results = []
    for block in (256, 7, 1):
        out = np.empty((len(p.names()), len(book))).T
        ready = np.zeros(len(book), dtype=bool)
        engine._batch(ts, *mats, 0, len(book), pf, pi, out, ready, *engine._state(p, 10, pi),
                      *engine._scratch(10, pi, block))
        results.append((out, ready))
    for out, ready in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(ready, results[0][1])


@pytest.mark.parametrize("unit", ["events", "ms"])
def test_no_look_ahead(bitmex, unit):
    """Change every row after t: every feature at <= t is unchanged (and so is the warm-up flag)."""
    windows = {"short": 10, "medium": 50, "long": 200} if unit == "events" else \
        {"short": 500, "medium": 2000, "long": 10000}
    p = FeatureParams(tick_size=BITMEX_TICKS, window_unit=unit, windows=windows)
    book = bitmex.iloc[:20_000].reset_index(drop=True)
    base = compute_batch(book, p, 10)
    rng = np.random.default_rng(0)
    for cut in (150, 7_777, 15_000):
        changed = book.copy()
        after = changed.index > cut
        for col in [c for c in book.columns if c.startswith(("bid_size", "ask_size"))]:
            changed.loc[after, col] *= rng.uniform(0.1, 3.0, after.sum())
        for col in [c for c in book.columns if c.startswith(("bid_price", "ask_price"))]:
            changed.loc[after, col] += 0.5
        res = compute_batch(changed, p, 10)
        pd.testing.assert_frame_equal(res.features.iloc[: cut + 1], base.features.iloc[: cut + 1])
        np.testing.assert_array_equal(res.ready[: cut + 1], base.ready[: cut + 1])
        assert not res.features.iloc[cut + 1:].equals(base.features.iloc[cut + 1:])


def test_time_windows_match_brute_force(bitmex):
    p = FeatureParams(tick_size=BITMEX_TICKS, window_unit="ms", windows={"short": 500, "medium": 2000,
                                                                         "long": 10000})
    book = bitmex[bitmex.symbol == "XBTUSD"].iloc[:5000].reset_index(drop=True)
    got = compute_batch(book, p, 10).features
    ts = book.timestamp.to_numpy()
    mid = (book.bid_price_1 + book.ask_price_1).to_numpy() / 2
    lag = np.searchsorted(ts, ts - 500_000_000, side="right") - 1
    want = np.where(lag >= 0, np.log(mid / mid[np.maximum(lag, 0)]) * 1e4, np.nan)
    np.testing.assert_allclose(got["mid_ret_bps_w500ms"], want, rtol=1e-9, atol=1e-9, equal_nan=True)


def test_warmup_rows_are_marked_not_filled(bitmex):
    p = FeatureParams(tick_size=BITMEX_TICKS)
    book = bitmex[bitmex.symbol == "ETHUSD"].iloc[:1000].reset_index(drop=True)
    res = compute_batch(book, p, 10)
    assert not res.ready[:200].any() and res.ready[200:].all()
    assert res.features["mid_ret_bps_w200"].iloc[:200].isna().all()
    assert res.features["mid_ret_bps_w200"].iloc[200:].notna().all()


def test_session_gap_restarts_the_state(bitmex):
    """The two BitMEX days are 6 days apart: the second day warms up again instead of one huge move."""
    p = FeatureParams(tick_size=BITMEX_TICKS)
    xbt = bitmex[bitmex.symbol == "XBTUSD"].reset_index(drop=True)
    res = compute_batch(xbt, p, 10)
    first_day = int((xbt.timestamp < xbt.timestamp.iloc[-1] - 86_400 * 10**9).sum())
    assert not res.ready[first_day:first_day + 200].any()
    assert res.features["mid_ret_bps_w200"].abs().max() < 100


def test_too_few_levels_is_refused_with_names():
    fs = FeatureSet("full", params={"tick_size": 0.01})
    with pytest.raises(UserError) as err:
        fs.check_levels(5, "data=x")
    text = err.value.render()
    assert "imbalance_10 needs level 10" in text and "5 present" in text
    FeatureSet("minimal", include=["imbalance_1"], params={"tick_size": 0.01}).check_levels(1)


def test_unknown_feature_is_refused():
    with pytest.raises(UserError, match="imbalance_1"):
        FeatureSet("x", include=["imbalance_one"])


@pytest.mark.slow
@needs_shared("lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv")
def test_features_mode_on_every_recording(tmp_path):
    from tests.conftest import last_summary, run_cli

    for data in ("lobster_aapl", "binance_btcusdt", "bitmex_ob25"):
        proc = run_cli(["mode=features", f"data={data}"], tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        s = last_summary(tmp_path)
        assert s["n_features"] == 67 == len(s["feature_names"])
        assert s["rows_in"] == s["rows_out"] + s["warmup_rows"] and s["rows_out"] > 0
    proc = run_cli(["mode=features", "data=binance_btcusdt"], tmp_path)
    assert last_summary(tmp_path)["cache_hit"] is True


def test_feature_set_minimal_selects_its_columns(tmp_path):
    cfg = make_cfg(["features=minimal", "data=synthetic"])
    import hydra

    fs = hydra.utils.instantiate(cfg.features)
    book = load("synthetic", tmp_path, rows=3000)
    res = fs.compute(book, 10)
    assert list(res.features.columns) == fs.names and len(fs.names) == 14
    stream = fs.streaming(10)
    snap = np.vstack([book[level_columns(f, 10)].to_numpy()[0] for f in SIDE_FIELDS])
    vec, _ = stream.update_book(int(book.timestamp[0]), snap)
    np.testing.assert_allclose(vec, res.features.iloc[0].to_numpy(), equal_nan=True)


@pytest.mark.parametrize("unit", ["events", "ms"])
def test_pieces_equal_the_whole_batch_bit_for_bit(bitmex, unit):
    """Piece by piece (memory bounded by a piece, the state carried between the pieces of a session) the
    same bits as the whole frame at once: pieces of ~1,000 rows over both BitMEX sessions (6 days apart),
    a ring of 1,024 slots, windows in events and in time."""
    from l2exp.features.engine import compute_pieces

    windows = {"short": 10, "medium": 50, "long": 200} if unit == "events" else \
        {"short": 500, "medium": 2000, "long": 10000}
    p = FeatureParams(tick_size=BITMEX_TICKS, window_unit=unit, windows=windows, capacity=512)
    xbt = bitmex[bitmex.symbol == "XBTUSD"].reset_index(drop=True)
    whole = compute_batch(xbt, p, 10)
    assert len(state_segments(xbt["timestamp"].to_numpy(np.int64), p)) >= 2
    values, seen = whole.features.to_numpy(), 0
    for a, b, out, ready in compute_pieces(xbt, p, 10, rows=1000):
        assert a == seen and b - a <= 1024
        np.testing.assert_array_equal(out, values[a:b])
        np.testing.assert_array_equal(ready, whole.ready[a:b])
        seen = b
    assert seen == len(xbt)


def test_a_partition_of_two_exchanges_is_computed_whole(bitmex):
    from l2exp.features.partitioned import _pieces

    fs = FeatureSet("full", params={"tick_size": BITMEX_TICKS})
    book = bitmex[bitmex.symbol == "XBTUSD"].iloc[:3000].reset_index(drop=True)
    book["exchange"] = np.where(np.arange(len(book)) % 2, "venue-a", "venue-b")
    pieces = list(_pieces(fs, book, 10))
    whole = fs.compute(book, 10)
    assert len(pieces) == 1 and pieces[0][:2] == (0, len(book))
    np.testing.assert_array_equal(np.column_stack(pieces[0][2]), whole.features.to_numpy())
    with pytest.raises(ValueError, match="one instrument"):
        next(fs.compute_pieces(book, 10))
