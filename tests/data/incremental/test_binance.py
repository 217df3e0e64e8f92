"""Binance depth captures rebuilt into books: the real spot / USD-M / COIN-M captures (0 gaps, the
venue's own top of book matched on every tick that names the same update id, the second day
continuing the first), hand-built captures for the sequence rules, and the errors a user meets."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest, run_validate
from tests.conftest import SHARED, make_cfg, needs_shared


def ingest(workdir: Path, data: str, *extra: str) -> dict:
    return run_ingest(make_cfg(["mode=ingest", "mode.progress=false", f"data={data}", f"workdir={workdir}", *extra]))


def explained(s: dict) -> None:
    """Every reject is a message the venue's rules say to drop; the deltas add up."""
    assert set(s["rejected_by_reason"]) <= {"before_snapshot"}, s["rejected_by_reason"]
    b = s["book"]
    assert b["sequence_gaps"] == 0 and b.get("crossed_books", 0) == 0
    assert b["deltas_in"] == b["deltas_applied"] + b.get("deltas_before_snapshot", 0) + b.get("deltas_rejected", 0)
    assert b["top_of_book_match"] == 1.0 and b["ticker_checks"] >= 100
    assert s["accepted"] == b["snapshots_out"] and s["rows_in"] == s["accepted"] + s["rejected"]


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_usdm_capture_rebuilds_with_no_gap_and_matches_the_venue_top_of_book(workdir):
    s = ingest(workdir, "binance_usdm_btcusdt")
    explained(s)
    assert s["accepted"] > 6000 and s["book"]["ticker_checks"] >= 120
    book = open_store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={workdir}"])).read()
    assert (book.ask_price_1 > book.bid_price_1).all() and book.timestamp.is_monotonic_increasing
    assert ((book.ask_price_1 - book.bid_price_1) / 0.1).round(6).min() >= 1  # on the 0.1 tick


@needs_shared("binance_capture/spot_btcusdt_20240808.gz", "binance_capture/spot_btcusdt_20240809.gz")
def test_spot_second_day_continues_the_first_also_when_ingested_in_a_later_run(workdir, tmp_path):
    whole = ingest(workdir, "binance_spot_btcusdt")
    explained(whole)
    day2 = [f for f in whole["files"] if f["path"].endswith("20240809.gz")][0]
    assert day2["accepted"] > 2500 and day2["rejected"] == 0  # no snapshot in it: the first day's book goes on
    # the first day alone, then both: the second day's book is rebuilt by replaying the first
    other = tmp_path / "later"
    first = str(SHARED / "binance_capture/spot_btcusdt_20240808.gz")
    ingest(other, "binance_spot_btcusdt", f"data.path={first}")
    later = ingest(other, "binance_spot_btcusdt")
    assert [f["reused"] for f in later["files"]] == [True, False]
    a = open_store(make_cfg(["data=binance_spot_btcusdt", f"workdir={workdir}"])).read()
    b = open_store(make_cfg(["data=binance_spot_btcusdt", f"workdir={other}"])).read()
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@needs_shared("binance_capture/cm_btcusd_perp_20240808.gz", "binance_capture/cm_btcusd_perp_20240809.gz")
def test_coinm_capture_two_days(workdir):
    s = ingest(workdir, "binance_cm_btcusd_perp")
    explained(s)
    assert s["symbols"] == {"BTCUSD_PERP": s["accepted"]} and s["accepted"] > 40000


# -- hand-built captures --------------------------------------------------------------------------

def write_capture(path: Path, messages: list[dict]) -> Path:
    with gzip.open(path, "wt") as fh:
        for i, m in enumerate(messages):
            fh.write(f"{1_700_000_000_000_000_000 + i * 1_000_000} {json.dumps(m)}\n")
    return path


def snapshot(last_id: int, bid: float = 100.0, ask: float = 100.5) -> dict:
    return {"lastUpdateId": last_id, "E": 1_700_000_000_000, "bids": [[str(bid), "1"], [str(bid - 0.5), "2"]],
            "asks": [[str(ask), "1"], [str(ask + 0.5), "2"]]}


def depth(U: int, u: int, pu: int | None, k: int, bid_size: str = "3") -> dict:
    d = {"e": "depthUpdate", "E": 1_700_000_000_100 + k, "s": "BTCUSDT", "U": U, "u": u,
         "b": [["100.0", bid_size]], "a": []}
    if pu is not None:
        d["pu"] = pu
    return {"stream": "btcusdt@depth@0ms", "data": d}


def test_a_gap_is_rejected_exactly_over_the_gap_and_the_next_snapshot_resumes(workdir, tmp_path):
    msgs = [depth(90, 95, 89, 0),           # line 1: before the snapshot (u < lastUpdateId): dropped
            depth(96, 101, 95, 1),          # line 2: arrives before the snapshot line but is needed by it
            snapshot(100),                  # line 3
            depth(102, 105, 101, 2),        # line 4: pu = previous u
            depth(112, 115, 110, 3),        # line 5: pu 110 != 105 -> gap
            depth(116, 118, 115, 4),        # line 6: still no book
            snapshot(200, 101.0, 101.5),    # line 7: resync
            depth(199, 203, 198, 5),        # line 8: brackets 200
            depth(204, 206, 203, 6)]        # line 9
    path = write_capture(tmp_path / "cap.gz", msgs)
    s = ingest(workdir, "binance_usdm_btcusdt", f"data.path={path}", "data.trades=null")
    assert s["rejected_by_reason"] == {"before_snapshot": 1, "sequence_gap": 2}
    assert s["accepted"] == 4 and s["book"]["sequence_gaps"] == 1
    store = open_store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={workdir}", f"data.path={path}"]))
    rej = store.read_rejects().sort_values("line")
    assert rej.line.tolist() == [1, 5, 6] and rej.reason.tolist() == ["before_snapshot", "sequence_gap", "sequence_gap"]
    assert "expected pu=105" in rej.detail.iloc[1] and "got pu=110" in rej.detail.iloc[1]
    book = store.read()
    assert book.bid_price_1.tolist() == [100.0, 100.0, 101.0, 101.0]  # lines 2, 4 then 8, 9
    assert book.bid_size_1.tolist() == [3.0, 3.0, 1.0, 1.0]  # after resync the old book is gone


def test_spot_rule_and_wrong_venue_decoders(workdir, tmp_path):
    spot = [snapshot(100), {"stream": "btcusdt@depth@100ms", "data": {**depth(101, 104, None, 0)["data"]}},
            {"stream": "btcusdt@depth@100ms", "data": {**depth(105, 107, None, 1)["data"]}}]
    path = write_capture(tmp_path / "spot.gz", spot)
    s = ingest(workdir / "a", "binance_spot_btcusdt", f"data.path={path}", "data.trades=null")
    assert s["accepted"] == 2 and s["rejected"] == 0
    with pytest.raises(UserError, match="not a futures capture"):
        ingest(workdir / "b", "binance_usdm_btcusdt", f"data.path={path}", "data.trades=null")
    fut = write_capture(tmp_path / "fut.gz", [snapshot(100), depth(99, 101, 98, 0), depth(102, 103, 101, 1)])
    with pytest.raises(UserError, match="futures capture read with the spot rule"):
        ingest(workdir / "c", "binance_spot_btcusdt", f"data.path={fut}", "data.trades=null")


def test_no_snapshot_is_an_error_with_the_cause(workdir, tmp_path):
    path = write_capture(tmp_path / "nosnap.gz", [depth(1, 5, 0, 0), depth(6, 9, 5, 1)])
    with pytest.raises(UserError) as err:
        ingest(workdir, "binance_usdm_btcusdt", f"data.path={path}", "data.trades=null")
    assert "no_snapshot" in str(err.value) and "no depth snapshot" in err.value.fix


@needs_shared("binance/BTCUSDT_depth10_20230109.jsonl.gz")
def test_the_wrong_layout_is_an_error_not_a_success(workdir):
    path = SHARED / "binance/BTCUSDT_depth10_20230109.jsonl.gz"
    with pytest.raises(UserError) as err:
        ingest(workdir, "bitmex_ob10", f"data.path={path}")
    assert "'unparseable'" in str(err.value) and "layout" in err.value.fix


@needs_shared("binance_capture/spot_btcusdt_20240808.gz", "binance_capture/spot_btcusdt_20240809.gz")
@pytest.mark.parametrize("store", ["parquet", "sqlite"])
def test_deltas_and_trades_are_stored_with_the_book_and_replay_to_it(workdir, store):
    s = ingest(workdir, "binance_spot_btcusdt", f"store={store}")
    b = s["book"]
    assert b["deltas_stored"] == b["deltas_applied"] and b["trades_stored"] == b["trades_in"] > 1000
    cfg = make_cfg(["data=binance_spot_btcusdt", f"workdir={workdir}", f"store={store}"])
    st = open_store(cfg)
    deltas, trades = st.read_side("deltas"), st.read_side("trades")
    assert len(deltas) == b["deltas_stored"] and len(trades) == b["trades_stored"]
    assert trades.ts.is_monotonic_increasing and set(trades.side) == {-1, 1}
    from l2exp.data.incremental.book import replay

    snaps, _ = replay(deltas, levels=10, emit_snapshots=False)
    book = st.read()
    np.testing.assert_array_equal(snaps.ts, book.timestamp.to_numpy())
    np.testing.assert_array_equal(snaps.bid_px[:, 0], book.bid_price_1.to_numpy())
    np.testing.assert_array_equal(snaps.ask_sz[:, 9], book.ask_size_10.to_numpy())
    again = ingest(workdir, "binance_spot_btcusdt", f"store={store}")  # idempotent: nothing twice
    assert all(f["reused"] for f in again["files"]) and len(open_store(cfg).read_side("deltas")) == len(deltas)


@pytest.mark.parametrize("store", ["parquet", "sqlite"])
def test_side_rows_of_an_unfinished_file_are_never_read_and_a_redo_stores_them_once(workdir, store):
    import pyarrow as pa

    from l2exp.config import instantiate
    from l2exp.schema import TRADE_SCHEMA

    st = instantiate(make_cfg([f"workdir={workdir}", f"store={store}"]).store)
    rows = pa.table({"ts": [1, 2], "recv_ts": [1, 2], "symbol": ["S", "S"], "exchange": ["x", "x"],
                     "price": [1.0, 2.0], "size": [1.0, 1.0], "side": pa.array([1, -1], pa.int8()),
                     "trade_id": [7, 8]}, schema=TRADE_SCHEMA)
    w = st.begin("d" * 32, "f.gz")
    w.write_side("trades", rows)  # a writer killed here: nothing committed
    if store == "parquet":
        w.abort()
    assert len(st.read_side("trades")) == 0
    w = st.begin("d" * 32, "f.gz")  # the redo
    w.write_side("trades", rows)
    w.commit({"path": "f.gz", "digest": "d" * 32, "stats": {}})
    got = st.read_side("trades")
    assert got.trade_id.tolist() == [7, 8]


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_time_sampled_books_are_the_book_as_it_stood_at_each_boundary(workdir, tmp_path):
    ingest(workdir, "binance_usdm_btcusdt")
    ingest(tmp_path / "sampled", "binance_usdm_btcusdt", "data.reader.sample_ms=100")
    per_msg = open_store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={workdir}"])).read()
    sampled = open_store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={tmp_path / 'sampled'}"])).read()
    ts = sampled.timestamp.to_numpy()
    assert (ts % 100_000_000 == 0).all() and (np.diff(ts) == 100_000_000).all() and len(sampled) > 3000
    # each boundary shows the book after the last message stamped before it (never one at or after it)
    src = np.searchsorted(per_msg.timestamp.to_numpy(), ts, side="left") - 1
    ok = src >= 0
    for col in ("bid_price_1", "ask_price_1", "bid_size_3", "ask_size_10"):
        np.testing.assert_array_equal(sampled[col].to_numpy()[ok], per_msg[col].to_numpy()[src[ok]])


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_another_symbols_capture_is_rejected_not_relabelled(workdir):
    """The BTCUSDT capture through a config that says ETHUSDT: every update names BTCUSDT in its stream, so none
    is stored as ETHUSDT (it was, silently: 6,5xx BTC books labelled ETHUSDT) -- rejected as symbol_mismatch,
    and the run exits 2 naming the cause."""
    with pytest.raises(UserError, match="symbol_mismatch") as err:
        run_validate(make_cfg(["mode=validate", "mode.progress=false", "data=binance_usdm_btcusdt",
                               f"workdir={workdir}", "data.reader.symbol=ETHUSDT"]))
    assert "another symbol" in err.value.fix
    same = run_validate(make_cfg(["mode=validate", "mode.progress=false", "data=binance_usdm_btcusdt",
                                  f"workdir={workdir}"]))
    assert "symbol_mismatch" not in same["rejected_by_reason"] and same["symbols"] == {"BTCUSDT": same["accepted"]}


# -- cryptofeed's layout: several symbols in one websocket file, REST snapshots in another ----------------

REST = {"BTCUSDT": "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000",
        "BTCUSD_PERP": "https://dapi.binance.com/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000"}


def cryptofeed_recording(folder: Path) -> tuple[Path, Path]:
    """The real USD-M BTCUSDT and COIN-M BTCUSD_PERP captures (day 1 of each) rewritten as cryptofeed's raw
    recorder writes them: one websocket file with both symbols' streams interleaved by receive time behind
    ``<float s>: `` (plus its header, connect and subscribe lines), and the REST snapshots in the HTTP
    connection's file as ``<url> -> <float s>: <json>``."""
    lines = []
    for name, sym in (("usdm_btcusdt_20240808.gz", "BTCUSDT"), ("cm_btcusd_perp_20240808.gz", "BTCUSD_PERP")):
        with gzip.open(SHARED / "binance_capture" / name, "rt") as fh:
            for line in fh:
                recv, payload = line.rstrip("\n").split(" ", 1)
                lines.append((int(recv), sym, payload))
    lines.sort(key=lambda r: r[0])
    secs = lambda ns: f"{ns // 10**9}.{ns % 10**9:09d}"  # noqa: E731
    ws = [f"configuration: {json.dumps({'BINANCE_FUTURES': {'symbols': list(REST)}})}",
          f"wss://fstream.binance.com/stream <-> {secs(lines[0][0] - 10**6)}",
          f"wss://fstream.binance.com/stream <- {secs(lines[0][0] - 10**6)}: {{\"method\": \"SUBSCRIBE\"}}"]
    rest = ["configuration: {}"]
    for recv, sym, payload in lines:
        if payload.startswith('{"lastUpdateId"'):
            rest.append(f"{REST[sym]} -> {secs(recv)}: {payload}")
        else:
            ws.append(f"{secs(recv)}: {payload}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ws-1.0").write_text("\n".join(ws) + "\n")
    (folder / "rest-1.0").write_text("\n".join(rest) + "\n")
    return folder / "ws-1.0", folder / "rest-1.0"


BOOK = [f"{s}_{k}_{i}" for s in ("bid", "ask") for k in ("price", "size") for i in range(1, 11)]


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz", "binance_capture/cm_btcusd_perp_20240808.gz")
def test_a_cryptofeed_recording_of_two_symbols_rebuilds_each_book_as_its_own_capture_does(workdir, tmp_path):
    """Both symbols' books from the one recording equal, row for row, each symbol's capture ingested alone
    through its own config (binance_usdm_btcusdt, binance_cm_btcusd_perp); nothing is rejected except what the
    venue's rule drops (updates before each snapshot), and the recorder's own lines are counted, not rejected.
    Before: the websocket file alone gave every update ``no_snapshot``; with the REST file globbed in, the
    URL prefix made the snapshots ``unparseable``."""
    ws, rest = cryptofeed_recording(tmp_path / "rec")
    s = ingest(workdir, "binance_futures_cryptofeed", f"data.path={ws}", f"data.reader.snapshots.path={rest}")
    assert set(s["rejected_by_reason"]) <= {"before_snapshot"}, s["rejected_by_reason"]
    assert s["book"]["lines_skipped"] == 3 and s["book"]["snapshots_from_file"] == 2
    assert s["book"]["sequence_gaps"] == 0 and s["book"]["top_of_book_match"] == 1.0
    # every stored row counted once: book writes that finished while a side table was queued were lost from it
    assert s["inserted"] == s["accepted"] == s["store_rows"], (s["inserted"], s["accepted"])
    both = open_store(make_cfg(["data=binance_futures_cryptofeed", f"workdir={workdir}"])).read()
    assert set(both.symbol.unique()) == {"BTCUSDT", "BTCUSD_PERP"}
    for data, sym, day in (("binance_usdm_btcusdt", "BTCUSDT", "usdm_btcusdt_20240808.gz"),
                           ("binance_cm_btcusd_perp", "BTCUSD_PERP", "cm_btcusd_perp_20240808.gz")):
        alone_dir = tmp_path / data
        ingest(alone_dir, data, f"data.path={SHARED / 'binance_capture' / day}")
        alone = open_store(make_cfg([f"data={data}", f"workdir={alone_dir}"])).read()
        mine = both[both.symbol == sym]
        assert len(mine) == len(alone) > 5000, sym
        pd.testing.assert_frame_equal(mine[["timestamp", *BOOK]].reset_index(drop=True),
                                      alone[["timestamp", *BOOK]].reset_index(drop=True), obj=sym)


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz", "binance_capture/cm_btcusd_perp_20240808.gz")
def test_one_symbol_of_a_recording_and_snapshots_that_name_no_symbol(workdir, tmp_path):
    """``data.reader.symbol=BTCUSD_PERP`` on the two-symbol recording keeps that book only: the other symbol's
    updates are ``symbol_mismatch`` rejects (never relabelled), its snapshot is not applied to this book.
    With ``symbol: "*"`` and a snapshot pattern without a ``symbol`` group, the snapshots are refused
    (``snapshot_symbol_unknown``) instead of being applied to whichever book."""
    ws, rest = cryptofeed_recording(tmp_path / "rec")
    one = ingest(workdir, "binance_futures_cryptofeed", f"data.path={ws}", f"data.reader.snapshots.path={rest}",
                 "data.reader.symbol=BTCUSD_PERP", "store=sqlite")
    assert one["symbols"] == {"BTCUSD_PERP": one["accepted"]} and one["rejected_by_reason"]["symbol_mismatch"] > 6000
    assert set(one["rejected_by_reason"]) == {"symbol_mismatch", "before_snapshot"}
    blind = r"^\S+ -> (?P<time>[0-9.]+): (?P<payload>.*)$"
    with pytest.raises(UserError, match="snapshot_symbol_unknown|no_snapshot"):
        run_validate(make_cfg(["mode=validate", "mode.progress=false", "data=binance_futures_cryptofeed",
                               f"workdir={tmp_path / 'blind'}", f"data.path={ws}",
                               f"data.reader.snapshots.path={rest}", f"data.reader.snapshots.pattern='{blind}'"]))


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_books_are_handed_on_every_second_so_the_progress_moves(monkeypatch):
    """The USD-M capture (6,5xx depth messages) came out as one chunk at the end: the ingest showed "0 rows" for
    the whole read. With the hand-on interval at 0 it comes out every 4,096 lines -- the same books."""
    from l2exp.data.incremental import binance

    path = str(SHARED / "binance_capture/usdm_btcusdt_20240808.gz")

    def read() -> tuple[int, pd.DataFrame]:
        r = binance.FuturesDepth(10, "BTCUSDT", "binance-usdm")
        chunks = [c.table.to_pandas() for c in r.iter_chunks(path, 100_000, set())]
        return sum(len(c) > 0 for c in chunks), pd.concat(chunks, ignore_index=True)

    monkeypatch.setattr(binance, "FLUSH_EVERY_S", 1e9)  # as before: only chunk_rows cuts (timing-free)
    one, whole = read()
    monkeypatch.setattr(binance, "FLUSH_EVERY_S", 0.0)
    many, parts = read()
    assert one == 1 and many >= 20  # 93,954 lines / 4,096
    pd.testing.assert_frame_equal(whole, parts)


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_the_ingest_progress_moves_on_a_pseudo_terminal_while_a_capture_is_read(workdir, monkeypatch):
    """On a terminal the ingest's counter shows books as they come, not 0 until the end (37 s of "0 rows"
    before): read on a pseudo-terminal, the counter passes through values between 0 and the total."""
    import re

    from rich.console import Console

    from l2exp.data import ingest as ingest_module
    from l2exp.data.incremental import binance
    from tests.pty_capture import pseudo_terminal

    with pseudo_terminal() as term:
        monkeypatch.setattr(ingest_module, "console", Console(file=term.tty, force_terminal=True, width=160))
        monkeypatch.setattr(binance, "FLUSH_EVERY_S", 0.0)  # every 4,096 lines, however fast this machine reads
        s = run_validate(make_cfg(["mode=validate", "mode.progress=true", "data=binance_usdm_btcusdt",
                                   f"workdir={workdir}"]))
    shown = {int(m.replace(",", "")) for m in re.findall(r"([\d,]+) rows\b", term.text)}
    assert max(shown) >= s["accepted"] > 6000 and any(0 < v < s["accepted"] for v in shown), sorted(shown)


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz", "binance_capture/cm_btcusd_perp_20240808.gz")
def test_inline_snapshots_of_a_multi_symbol_capture_are_never_guessed(workdir, tmp_path):
    """Two symbols' updates and both REST snapshots inline (no symbol of their own), read as BTCUSDT: both
    snapshots were applied to the BTCUSDT book -- the BTCUSD_PERP one last, its prices 100 x another contract's
    -- silently. The file is refused, nothing stored; declaring whose the snapshots are is the user's call."""
    lines = []
    for name in ("usdm_btcusdt_20240808.gz", "cm_btcusd_perp_20240808.gz"):
        with gzip.open(SHARED / "binance_capture" / name, "rt") as fh:
            lines += [(int(ln.split(" ", 1)[0]), ln) for ln in fh]
    lines.sort(key=lambda r: r[0])
    path = tmp_path / "mixed.gz"
    with gzip.open(path, "wt") as fh:
        fh.writelines(ln for _, ln in lines)
    with pytest.raises(UserError, match="inline REST snapshot") as err:
        ingest(workdir, "binance_usdm_btcusdt", f"data.path={path}")
    assert "data.reader.inline_snapshots_of=BTCUSDT" in err.value.fix and "BTCUSD_PERP" in err.value.what
    from l2exp.modes.build import store  # the store as it is (store_with_data would ingest the default capture)

    assert store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={workdir}"])).count() == 0
