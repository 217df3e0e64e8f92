"""Two clocks in the canonical snapshot (``recv_ts`` beside ``timestamp``, ``l2exp/schema.py``): the captures'
receive time stored per book row, the skew reported by the ingest, and one clock stays one clock."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd

from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest
from tests.conftest import SHARED, make_cfg, needs_shared


@needs_shared("binance_capture/usdm_btcusdt_20240808.gz")
def test_a_capture_keeps_its_receive_time_and_reports_the_skew(workdir):
    """Each book row's ``recv_ts`` is the line prefix of the depth message it was built after (its ``u``
    looked up independently in the raw file), in both stores; the ingest's skew quantiles equal those of
    (prefix - E) over the same messages: the recorder's clock ran ~1.27 s behind Binance's."""
    prefix_by_event: dict[int, list[int]] = {}
    with gzip.open(SHARED / "binance_capture/usdm_btcusdt_20240808.gz", "rt") as fh:
        for line in fh:
            recv, payload = line.split(" ", 1)
            if '@depth' in payload[:40]:
                d = json.loads(payload)["data"]
                prefix_by_event.setdefault(d["E"] * 1_000_000, []).append(int(recv))
    for store in ("parquet", "sqlite"):
        s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=binance_usdm_btcusdt",
                                 f"workdir={workdir}", f"store={store}"]))
        book = open_store(make_cfg(["data=binance_usdm_btcusdt", f"workdir={workdir}", f"store={store}"])).read()
        assert book.recv_ts.dtype == np.int64 and len(book) == s["accepted"] > 6000
        assert all(r in prefix_by_event[t] for t, r in zip(book.timestamp, book.recv_ts, strict=True))
        skew = (book.recv_ts - book.timestamp).to_numpy() / 1e6
        c = s["clock_skew"]
        assert c["rows"] == len(book) and c["recv_backwards"] == 0
        assert abs(c["p50_ms"] - np.percentile(skew, 50)) < 1e-3 and abs(c["p99_ms"] - np.percentile(skew, 99)) < 1e-3
        assert -1300 < c["p50_ms"] < -1200


@needs_shared("bitmex/orderbook10_2020-03-04.csv.gz")
def test_a_source_with_one_clock_has_no_receive_time(workdir):
    """BitMEX's recorder kept one time: ``recv_ts`` is null (unknown), never a copy of ``timestamp`` that would
    read as zero latency, and the ingest reports no skew."""
    s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=bitmex_ob10", f"workdir={workdir}",
                             "data.path=${shared_data:}/bitmex/orderbook10_2020-03-04.csv.gz"]))
    book = open_store(make_cfg(["data=bitmex_ob10", f"workdir={workdir}"])).read()
    assert "clock_skew" not in s and book.recv_ts.isna().all() and len(book) == 8_922


def test_receive_times_that_go_back_are_counted_not_rejected(workdir, tmp_path):
    """A CSV with both clocks where the receive time steps back once per symbol: every row accepted (the book is
    right), two reversals counted, the skew hand-computed: 5, 5, 5, -6, 5 ms (A) and 7, 7, -9 ms (B)."""
    rows = ["timestamp,recv,symbol,exchange,bid_price_1,bid_size_1,ask_price_1,ask_size_1"]
    ms = 1_700_000_000_000
    a = [(0, 5), (10, 15), (20, 25), (30, 24), (40, 45)]  # (exchange ms, receive ms): 24 after 25, one reversal
    b = [(0, 7), (10, 17), (20, 11)]  # 11 after 17: one reversal
    for sym, pairs in (("A", a), ("B", b)):
        for t, r in pairs:
            rows.append(f"{(ms + t) * 10**6},{(ms + r) * 10**6},{sym},x,10,1,11,1")
    path = tmp_path / "two_clocks.csv"
    path.write_text("\n".join(rows) + "\n")
    s = run_ingest(make_cfg(["mode=ingest", "mode.progress=false", "data=canonical_csv", "data.levels=1",
                             "levels=1", f"data.path={path}", f"workdir={workdir}",
                             "+data.mapping.receive_time={column: recv, unit: ns}"]))
    assert s["accepted"] == 8 and s["rejected"] == 0
    skew = [5, 5, 5, -6, 5, 7, 7, -9]
    c = s["clock_skew"]
    assert c["recv_backwards"] == 2 and c["rows"] == 8 and c["min_ms"] == -9 and c["max_ms"] == 7
    assert c["p50_ms"] == float(np.percentile(skew, 50)) == 5.0
    book = open_store(make_cfg(["data=canonical_csv", "data.levels=1", "levels=1", f"workdir={workdir}"])).read()
    assert pd.Series((book.recv_ts - book.timestamp) // 10**6).tolist() == [5, 5, 5, -6, 5, 7, 7, -9]
