"""Delta tables mapped by YAML (Tardis ``incremental_book_L2``): a snapshot arriving mid-stream
replaces the book, updates before any snapshot are rejects with their reason, messages cut by a read
block come out the same; Tardis ``book_snapshot_N`` flat layouts (0-based bracketed names) map by YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from l2exp.data.incremental.table import DeltaTable
from l2exp.errors import UserError
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest
from tests.conftest import SHARED, make_cfg, needs_shared

HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"


def rebuild(path: Path, levels: int = 3, **kw) -> tuple[dict[str, np.ndarray], list, dict]:
    reader = DeltaTable(levels, **kw)
    tables, rejects, stats = [], [], {}
    for raw in reader.iter_chunks(str(path), 1000, set()):
        tables.append(raw.table.to_pandas())
        rejects += raw.rejects
        for k, v in raw.stats.items():
            stats[k] = stats.get(k, 0) + v
    import pandas as pd

    return pd.concat(tables, ignore_index=True), rejects, stats


@needs_shared("tardis/deltas_with_snapshot.csv")
def test_a_snapshot_mid_stream_replaces_the_whole_book():
    book, rejects, stats = rebuild(SHARED / "tardis/deltas_with_snapshot.csv", levels=2)
    assert len(book) == 7 and not rejects and stats["snapshots_in"] == 2
    before = book.iloc[3]  # after 3 updates on the first snapshot: bids 50000 (49998 deleted: not there)
    assert before.bid_price_1 == 50000.0 and before.bid_price_2 == 49999.0 and before.ask_price_2 == 50002.0
    snap = book.iloc[4]  # the second snapshot: nothing of the old book survives
    assert (snap.bid_price_1, snap.bid_size_1, snap.ask_price_1, snap.ask_size_1) == (50100.0, 3.0, 50101.0, 4.0)
    assert np.isnan(snap.bid_price_2) and np.isnan(snap.ask_price_2)
    last = book.iloc[6]
    assert (last.bid_price_2, last.ask_price_2) == (50099.0, 50102.0)
    assert book.timestamp.iloc[4] == 1640995300000000 * 1000  # exchange time, µs -> ns


@needs_shared("tardis/deltas_with_snapshot.csv")
def test_the_same_rows_whatever_the_read_block_size(tmp_path):
    rows = (SHARED / "tardis/deltas_with_snapshot.csv").read_text().splitlines()[1:]
    path = tmp_path / "big.csv"
    step = 200_000_000
    with open(path, "w") as fh:  # the sample 300 times, each copy later in time
        fh.write(HEADER)
        for k in range(300):
            for r in rows:
                f = r.split(",")
                f[2], f[3] = str(int(f[2]) + k * step), str(int(f[3]) + k * step)
                fh.write(",".join(f) + "\n")
    a, ra, _ = rebuild(path)
    b, rb, _ = rebuild(path, block_bytes=4096)
    assert len(a) == 300 * 7 and a.equals(b) and ra == rb == []


def test_updates_before_any_snapshot_and_unknown_sides_are_rejects(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(HEADER + "x,S,1,1,false,bid,10,1\n" "x,S,2,2,true,bid,10,1\n" "x,S,2,2,true,ask,11,1\n"
                    "x,S,3,3,false,buy,10,2\n" "x,S,4,4,false,ask,11,0\n" "x,S,5,5,false,ask,12,1\n")
    book, rejects, _ = rebuild(path)
    assert [(r[0], r[1]) for r in rejects] == [(5, "unparseable"), (2, "no_snapshot")]
    assert len(book) == 4 and book.ask_price_1.tolist()[-1] == 12.0


@needs_shared("tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv")
def test_deribit_sample_rebuilds_and_its_one_sided_book_is_named(workdir):
    book, rejects, _ = rebuild(SHARED / "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv", levels=10)
    assert len(book) == 1 and not rejects and book.ask_price_1[0] == 6421.5 and book.ask_size_1[0] == 18640
    assert np.isnan(book.bid_price_1[0])  # the sample holds the ask side of the snapshot only
    assert book.recv_ts[0] == 1585699200355684 * 1000  # local_timestamp (µs): the second clock, kept
    with pytest.raises(UserError, match="empty_side"):  # never exit 0 with nothing usable
        run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=tardis_deribit_l2", f"workdir={workdir}"]))


def test_book_snapshot_n_flat_layout_maps_by_yaml(workdir, tmp_path):
    levels = 3
    cols = [f"{s}[{k}].{f}" for k in range(levels) for s in ("asks", "bids") for f in ("price", "amount")]
    path = tmp_path / "deribit_book_snapshot_25_2020-04-01_BTC-PERPETUAL.csv"
    lines = ["exchange,symbol,timestamp,local_timestamp," + ",".join(cols)]
    for t in range(5):
        vals = []
        for k in range(levels):
            vals += [100.5 + k + t, 10 + k, 100.0 - k + t, 20 + k]
        lines.append(f"deribit,BTC-PERPETUAL,{1585699200245000 + t * 100_000},{1585699200355684 + t},"
                     + ",".join(map(str, vals)))
    path.write_text("\n".join(lines) + "\n")
    s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=tardis_book_snapshot_25", "data.levels=3",
                             "levels=3", f"data.path={path}", f"workdir={workdir}"]))
    assert s["accepted"] == 5 and s["rejected"] == 0
    book = open_store(make_cfg(["data=tardis_book_snapshot_25", "data.levels=3", "levels=3", f"data.path={path}",
                                f"workdir={workdir}"])).read()
    assert book.bid_price_1.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]  # bids[0] is level 1
    assert book.ask_size_3.tolist() == [12.0] * 5 and book.timestamp.iloc[0] == 1585699200245000 * 1000
    # two clocks: local_timestamp (µs) is the receive time, stored beside the exchange time, and the skew reported
    assert book.recv_ts.tolist() == [(1585699200355684 + t) * 1000 for t in range(5)]
    assert s["clock_skew"]["rows"] == 5 and s["clock_skew"]["recv_backwards"] == 0
    # skew(t) = (355,684 - 245,000) µs + t x (1 - 100,000) µs: 110.684 ms at t = 0 down to -289.312 ms at t = 4
    assert s["clock_skew"]["max_ms"] == 110.684 and s["clock_skew"]["min_ms"] == -289.312


def test_wrong_delimiter_names_the_one_the_header_suggests(tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text(HEADER.replace(",", ";") + "x;S;1;1;true;bid;10;1\n")
    with pytest.raises(UserError) as err:
        rebuild(path)
    assert "delimiter=';'" in err.value.fix


def test_a_snapshot_csv_with_the_wrong_delimiter_names_the_right_one(workdir, tmp_path):
    path = tmp_path / "semi.csv"
    path.write_text("timestamp;symbol;exchange;bid_price_1;bid_size_1;ask_price_1;ask_size_1\n"
                    "1700000000000000000;S;x;1;1;2;1\n")
    with pytest.raises(UserError) as err:
        run_ingest(make_cfg(["mode=validate", "mode.progress=false", "data=canonical_csv", f"data.path={path}",
                             "levels=1", "data.levels=1", f"workdir={workdir}"]), write=False)
    assert "data.reader.delimiter=';'" in err.value.fix


@needs_shared("tardis/bitmex_trades_XBTUSD.csv")
def test_tardis_trades_map_by_yaml():
    from l2exp.backtest.trades import load_trades

    spec = {"path": str(SHARED / "tardis/bitmex_trades_XBTUSD.csv"), "timestamp": {"column": "timestamp", "unit": "us"},
            "price": "price", "size": "amount", "side": {"column": "side", "buy": "buy"}, "symbol": "symbol"}
    t = load_trades(spec, "XBTUSD")
    raw = (SHARED / "tardis/bitmex_trades_XBTUSD.csv").read_text().splitlines()[1:]
    assert len(t) == len(raw) == 10
    first = raw[0].split(",")
    assert t.ts.iloc[0] == int(first[2]) * 1000 and t.price.iloc[0] == float(first[6])
    assert t.side.iloc[0] == (1.0 if first[5] == "buy" else -1.0) and t.side.isin([1.0, -1.0]).all()


@needs_shared("tardis/deltas_with_snapshot.csv")
@pytest.mark.parametrize("block_bytes", [1 << 24, 300])
def test_a_delta_table_of_several_symbols_keeps_a_book_per_symbol(tmp_path, block_bytes):
    """Two symbols' rows interleaved message by message in one table (the sample, and a second symbol made
    from it at other prices, 1 ms later): each symbol's books equal the book of its rows alone, with the
    rejects on the right source lines -- whatever the read block cuts. It was refused ("split the file")."""
    rows = (SHARED / "tardis/deltas_with_snapshot.csv").read_text().splitlines()[1:]
    other = []
    for r in rows:
        f = r.split(",")
        f[1], f[2], f[3], f[6] = "ETHUSDT", str(int(f[2]) + 1000), str(int(f[3]) + 1000), str(float(f[6]) / 20)
        other.append(",".join(f))
    bad = "binance-futures,ETHUSDT,1640995302001000,1640995302101000,false,buy,2505.1,2.0"
    mixed, k = [], 0
    for i, r in enumerate(rows):  # message by message: a snapshot run's two rows stay together
        mixed.append(r)
        if i % 2 == 1 or i >= 7:
            mixed += other[k:i + 1]
            k = i + 1
    mixed += other[k:] + [bad]
    path = tmp_path / "two.csv"
    path.write_text(HEADER + "\n".join(mixed) + "\n")
    for sym, own in (("BTCUSDT", rows), ("ETHUSDT", [*other, bad])):
        alone = tmp_path / f"{sym}.csv"
        alone.write_text(HEADER + "\n".join(own) + "\n")
        want, want_rej, _ = rebuild(alone, levels=2)
        book, rejects, _ = rebuild(path, levels=2, block_bytes=block_bytes)
        got = book[book.symbol == sym].reset_index(drop=True)
        assert len(got) == len(want) == 7
        assert got.equals(want), sym
    assert [(r[0], r[1]) for r in rejects] == [(len(mixed) + 1, "unparseable")]  # the line of the file read
    assert sorted(book.symbol.unique()) == ["BTCUSDT", "ETHUSDT"] and len(book) == 14
