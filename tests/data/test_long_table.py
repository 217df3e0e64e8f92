"""Long tables (one row per snapshot, side and level) pivoted by YAML (``l2exp/data/long_table.py``): the
real BitMEX day pivoted long ingests to the store the wide file gives, whatever the read block cuts; the
price-rank form (no level column); rows that cannot be placed are rejects on their own lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2exp.data.long_table import LongTable
from l2exp.errors import UserError
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest
from tests.conftest import make_cfg, needs_shared

BOOK = [f"{s}_{k}_{i}" for s in ("bid", "ask") for k in ("price", "size") for i in range(1, 11)]


def to_long(book: pd.DataFrame, path: Path, level_column: bool = True) -> int:
    """The wide book as a long CSV: a row per present level, bids then asks, in the book's row order, with the
    snapshot's number (``snap``): 319 consecutive BitMEX snapshots share their millisecond and symbol, so the
    time alone cannot tell them apart -- the key is ``[time, snap]``."""
    parts = []
    for side in ("bid", "ask"):
        for i in range(1, 11):
            part = pd.DataFrame({"timestamp": book.timestamp.to_numpy(), "snap": np.arange(len(book)),
                                 "symbol": book.symbol.astype(str).to_numpy(),
                                 "exchange": book.exchange.astype(str).to_numpy(), "side": side, "level": i,
                                 "price": book[f"{side}_price_{i}"].to_numpy(),
                                 "size": book[f"{side}_size_{i}"].to_numpy()})
            parts.append(part[part.price.notna()])
    long = pd.concat(parts).sort_values(["snap", "side", "level"], ascending=[True, False, True], kind="stable")
    if not level_column:
        long = long.drop(columns="level").sample(frac=1.0, random_state=3).sort_values("snap", kind="stable")
    long.to_csv(path, index=False)
    return len(long)


@needs_shared("bitmex/orderbook10_2020-03-04.csv.gz")
@pytest.mark.parametrize("form", ["levels", "price_rank"])
def test_the_bitmex_day_pivoted_long_ingests_to_the_wide_store(tmp_path, form):
    """8,922 snapshots of two symbols -> 178,440 long rows -> the same store, value for value (the price-rank
    form gets each side's rows shuffled: the level is its rank by price). Before: a wide mapping without
    ``{i}`` turned each row into a 10-level book at one price (every row ``crossed_book``)."""
    wide = tmp_path / "wide"
    run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=bitmex_ob10", f"workdir={wide}",
                         "data.path=${shared_data:}/bitmex/orderbook10_2020-03-04.csv.gz"]))
    book = open_store(make_cfg(["data=bitmex_ob10", f"workdir={wide}"])).read()
    src = tmp_path / "long.csv"
    n = to_long(book, src, level_column=form == "levels")
    assert n == 178_440
    extra = ["data.reader.key=[time,snap]", *([] if form == "levels" else ["data.reader.columns.level=null"])]
    s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=long_csv", f"data.path={src}",
                             f"workdir={tmp_path / 'long'}", "data.reader.block_bytes=65536", *extra]))
    assert s["rows_in"] == s["accepted"] == len(book) == 8_922 and s["rejected"] == 0
    got = open_store(make_cfg(["data=long_csv", f"workdir={tmp_path / 'long'}"])).read()
    cols = ["timestamp", "symbol", "exchange", *BOOK]
    pd.testing.assert_frame_equal(got[cols].astype({"symbol": str, "exchange": str}).reset_index(drop=True),
                                  book[cols].astype({"symbol": str, "exchange": str}).reset_index(drop=True))


def test_rows_that_cannot_be_placed_are_rejects_on_their_lines(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("timestamp,symbol,side,level,price,size\n"
                    "1000,S,bid,1,10.0,1\n" "1000,S,ask,1,11.0,2\n" "1000,S,buy,2,9.0,1\n"      # side: line 4
                    "2000,S,bid,1,10.5,1\n" "2000,S,bid,1,10.4,1\n" "2000,S,ask,1,11.0,2\n"     # repeat: line 6
                    "2000,S,ask,0,11.5,2\n" "2000,S,ask,12,12.0,2\n")                             # level 0: line 8
    reader = LongTable(3, columns={"exchange": None}, exchange="x", block_bytes=64)
    chunks = list(reader.iter_chunks(str(path), 1000, set()))
    rows = pd.concat([c.table.to_pandas() for c in chunks], ignore_index=True)
    rejects = sorted((r[0], r[1]) for c in chunks for r in c.rejects)
    assert rejects == [(4, "unparseable"), (6, "duplicate_level"), (8, "unparseable")]
    assert rows.timestamp.tolist() == [1000, 2000] and rows.bid_price_1.tolist() == [10.0, 10.5]
    assert np.isnan(rows.bid_price_2).all() and sum(c.stats.get("levels_beyond", 0) for c in chunks) == 1
    assert [int(x) for c in chunks for x in c.lines] == [2, 5]


def test_a_missing_column_is_one_message(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("ts,side,price,size\n1,bid,1,1\n")
    with pytest.raises(UserError, match=r"columns \['level', 'timestamp'\] not in the header"):
        list(LongTable(2).iter_chunks(str(path), 10, set()))


def test_a_wide_mapping_without_a_level_placeholder_names_the_long_table(tmp_path):
    """``bid_price: price`` (no ``{i}``) with 10 levels read one column into all ten: every row a 10-level
    book at one price, 400,000 ``crossed_book`` rejects and the hint "swapped columns". Now one message that
    names the key and the long-table reader."""
    path = tmp_path / "l.csv"
    path.write_text("timestamp,symbol,exchange,side,level,price,size\n1000,S,x,bid,1,10,1\n1000,S,x,ask,1,11,1\n")
    with pytest.raises(UserError, match=r"data.mapping.bid_price: 'price' has no \{i\}") as err:
        run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={path}",
                             f"workdir={tmp_path}", "data.mapping.bid_price=price", "data.mapping.ask_price=price",
                             "data.mapping.bid_size=size", "data.mapping.ask_size=size"]))
    assert "data=long_csv" in err.value.fix
