"""Mappings: column patterns, nested arrays, timestamp recipes, scaling, sorting, errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from l2exp.data.mapping import LayoutMapping, _guess_pattern
from l2exp.data.readers import RawChunk, expand_columns
from l2exp.errors import UserError


def mapping(**kw) -> LayoutMapping:
    cfg = {"bid_price": "bp{i}", "bid_size": "bs{i}", "ask_price": "ap{i}", "ask_size": "as{i}",
           "timestamp": {"column": "t", "unit": "ms"}, "symbol": {"value": "S"}, "exchange": {"value": "E"}}
    cfg.update(kw)
    return LayoutMapping.from_config(cfg, source_levels=2, levels=2)


def raw(cols: dict) -> RawChunk:
    t = pa.table(cols)
    return RawChunk(t, "f.csv", np.arange(t.num_rows) + 1)


def test_expand_columns_blocks_and_interleaved():
    assert expand_columns(["t", "a{i}", "b{i}"], 2) == ["t", "a1", "a2", "b1", "b2"]
    assert expand_columns([["ap{i}", "as{i}"]], 2) == ["ap1", "as1", "ap2", "as2"]


def test_plain_mapping_and_units():
    m = mapping()
    chunk, bad, _ = m.apply(raw({"t": [1_700_000_000_000], "bp1": [10.0], "bp2": [9.0], "bs1": [1.0], "bs2": [2.0],
                                 "ap1": [11.0], "ap2": [12.0], "as1": [3.0], "as2": [4.0]}))
    assert chunk.timestamp[0] == 1_700_000_000_000 * 10**6
    assert chunk.bid_price.tolist() == [[10.0, 9.0]] and chunk.ask_size.tolist() == [[3.0, 4.0]]
    assert not bad.any() and list(chunk.symbol) == ["S"]


def test_nested_list_and_struct_arrays_with_ragged_rows():
    m = LayoutMapping.from_config({
        "bid_price": "bids[{i}][0]", "bid_size": "bids[{i}][1]",
        "ask_price": "asks[{i}].price", "ask_size": "asks[{i}].qty",
        "timestamp": {"column": "ts", "unit": "s", "precision": "ms"},
        "symbol": {"value": "S"}, "exchange": {"value": "E"}}, source_levels=3, levels=3)
    t = pa.table({"ts": [1673302660.926, 1673302661.177],
                  "bids": [[[10.0, 1.0], [9.0, 2.0]], [[10.5, 1.5]]],
                  "asks": [[{"price": 11.0, "qty": 3.0}], [{"price": 11.5, "qty": 1.0}, {"price": 12.0, "qty": 2.0}]]})
    chunk, bad, _ = m.apply(RawChunk(t, "f.jsonl", np.array([1, 2])))
    assert chunk.timestamp.tolist() == [1673302660926000000, 1673302661177000000]
    np.testing.assert_array_equal(chunk.bid_price, [[10.0, 9.0, np.nan], [10.5, np.nan, np.nan]])
    np.testing.assert_array_equal(chunk.ask_size, [[3.0, np.nan, np.nan], [1.0, 2.0, np.nan]])


def test_text_in_numeric_column_flags_the_row_only():
    m = mapping()
    chunk, bad, detail = m.apply(raw({"t": [1_700_000_000_000] * 2, "bp1": ["10", "abc"], "bp2": [9.0, 9.0],
                                      "bs1": [1.0, 1.0], "bs2": [1.0, 1.0], "ap1": [11.0, 11.0],
                                      "ap2": [12.0, 12.0], "as1": [1.0, 1.0], "as2": [1.0, 1.0]}))
    assert bad.tolist() == [False, True]
    assert "abc" in detail[1] and "bp1" in detail[1]


def test_implausible_unit_names_the_right_one():
    m = mapping(timestamp={"column": "t", "unit": "s"})
    cols = {c: [1.0] for c in ["bp1", "bp2", "bs1", "bs2", "ap1", "ap2", "as1", "as2"]}
    with pytest.raises(UserError, match="implausible") as err:
        m.apply(raw({"t": [1_700_000_000_000.0], **cols}))
    assert "unit=ms" in err.value.render()


def test_midnight_origin_in_exchange_time_zone():
    m = mapping(timestamp={"column": "t", "unit": "s", "origin": "midnight", "tz": "America/New_York",
                           "date_from_path": r"_(\d{4}-\d{2}-\d{2})_"})
    cols = {c: [1.0] for c in ["bp1", "bp2", "bs1", "bs2", "ap1", "ap2", "as1", "as2"]}
    t = pa.table({"t": [34200.004241176], **cols})
    chunk, _, _ = m.apply(RawChunk(t, "/x/AAPL_2012-06-21_34200000_orderbook_10.csv", np.array([1])))
    # 09:30:00.004241176 New York (EDT, UTC-4) = 13:30:00.004241176 UTC
    assert chunk.timestamp[0] == 1340285400004241176


def test_scale_sort_and_placeholder_levels():
    m = mapping(price_scale=0.01, sort_levels=True, empty_level_prices=[9999], empty_level_sizes=[0])
    chunk, _, _ = m.apply(raw({"t": [1_700_000_000_000], "bp1": [900.0], "bp2": [1000.0], "bs1": [1.0],
                               "bs2": [2.0], "ap1": [9999.0], "ap2": [1100.0], "as1": [5.0], "as2": [0.0]}))
    np.testing.assert_array_equal(chunk.bid_price, [[10.0, 9.0]])
    np.testing.assert_array_equal(chunk.bid_size, [[2.0, 1.0]])  # sizes move with their prices
    assert np.isnan(chunk.ask_price).all()  # 9999 placeholder price and size-0 slot are both empty


def test_missing_columns_error_lists_found_closest_and_yaml():
    m = mapping(bid_price="bid_{i}_px")
    with pytest.raises(UserError) as err:
        m.check_columns(["t", "bp1", "bp2", "bs1", "bs2", "ap1", "ap2", "as1", "as2"], "venue.csv")
    text = err.value.render()
    assert "bid_1_px" in text and "columns found" in text and 'bid_price: "bp{i}"' in text


@pytest.mark.parametrize("field,cols,expect", [
    ("bid_price", ["ts", "bid_px_1", "bid_qty_1", "ask_px_1"], "bid_px_{i}"),
    ("ask_size", ["ts", "bid_px_1", "bid_qty_1", "ask_px_1", "ask_qty_1"], "ask_qty_{i}"),
    ("bid_price", ["moment", "a1", "b1", "av1", "bv1"], "b{i}"),
    ("bid_size", ["moment", "a1", "b1", "av1", "bv1"], "bv{i}"),
    ("ask_price", ["Asks1Price", "Bids1Price"], "Asks{i}Price"),
    ("ask_price", ["time", "x1", "y1"], None),  # no confident guess: none offered
])
def test_guess_pattern(field, cols, expect):
    assert _guess_pattern(field, cols) == expect
