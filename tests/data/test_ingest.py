"""Ingest end to end in-process: accounting (property test), idempotency, store parity, crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2exp.config import PROJECT_ROOT
from l2exp.data.ingest import ingest
from l2exp.errors import UserError
from l2exp.modes.ingest import run_ingest
from l2exp.schema import canonical_columns
from tests.conftest import make_cfg, needs_shared, run_cli

FAULTS = ["none", "crossed", "neg_size", "text", "unsorted", "duplicate", "time_back", "malformed", "empty_side"]
EXPECTED = {"crossed": "crossed_book", "neg_size": "non_positive_size", "text": "unparseable",
            "unsorted": "unsorted_levels", "duplicate": "duplicate", "time_back": "non_monotonic_time",
            "malformed": "unparseable", "empty_side": "empty_side"}


def write_book(path: Path, faults: list[str], levels: int = 3) -> None:
    """A canonical-header CSV, one row per fault ("none" = a clean row)."""
    cols = canonical_columns(levels)
    lines = [",".join(cols)]
    t = 1_700_000_000 * 10**9
    prev = None
    for k, fault in enumerate(faults):
        t += 1_000_000
        row = {"timestamp": str(t), "symbol": "S", "exchange": "E"}
        for i in range(1, levels + 1):
            row[f"bid_price_{i}"] = str(100.0 - i + 1 - (k % 3) * 0.5)
            row[f"ask_price_{i}"] = str(101.0 + i - 1 - (k % 3) * 0.5)
            row[f"bid_size_{i}"] = str(1.0 + k % 7)
            row[f"ask_size_{i}"] = str(2.0 + k % 5)
        if fault == "crossed":
            row["bid_price_1"] = "200.0"
        elif fault == "neg_size":
            row["ask_size_2"] = "-1"
        elif fault == "text":
            row["bid_size_1"] = "n/a"
        elif fault == "unsorted":
            row["ask_price_2"] = row["ask_price_1"]
        elif fault == "empty_side":
            row["bid_price_1"] = row["bid_size_1"] = ""
        elif fault == "time_back":
            row["timestamp"] = str(t - 10**9)
        elif fault == "duplicate" and prev is not None:
            row = dict(prev)
        elif fault == "duplicate":
            row["bid_price_1"] = "200.0"  # nothing to duplicate yet: make it a crossed row instead
        text = ",".join(row[c] for c in cols)
        if fault == "malformed":
            text = text.rsplit(",", 2)[0]
        lines.append(text)
        if fault not in ("malformed", "time_back", "text", "crossed", "neg_size", "unsorted", "empty_side") \
                and not (fault == "duplicate" and prev is None):
            prev = row
    path.write_text("\n".join(lines) + "\n")


def canonical_cfg(path: Path, store: str = "parquet", levels: int = 3, extra: list[str] | None = None):
    return make_cfg(["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={path}",
                     f"data.levels={levels}", f"store={store}", *(extra or [])])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(faults=st.lists(st.sampled_from(FAULTS), min_size=1, max_size=60))
def test_rows_in_equals_accepted_plus_rejected(faults, workdir):
    faults = ["none", *faults]  # a clean first row: every later fault has something to be late or a copy of
    path = workdir / f"book_{abs(hash(tuple(faults)))}.csv"
    write_book(path, faults)
    s = run_ingest(canonical_cfg(path), write=False)
    assert s["rows_in"] == len(faults) == s["accepted"] + s["rejected"]
    assert sum(s["rejected_by_reason"].values()) == s["rejected"]
    expected = pd.Series([EXPECTED[f] for f in faults if f != "none"], dtype=object).value_counts().to_dict()
    assert s["rejected_by_reason"] == expected


def test_ingest_twice_adds_nothing_and_stores_agree(workdir):
    path = workdir / "b.csv"
    write_book(path, ["none"] * 50 + ["crossed", "duplicate", "none", "malformed"] * 5)
    counts = {}
    frames = {}
    for store in ("parquet", "sqlite"):
        first = run_ingest(canonical_cfg(path, store))
        again = run_ingest(canonical_cfg(path, store))
        assert first["inserted"] == first["accepted"] == first["store_rows"]
        assert again["inserted"] == 0 and again["store_rows"] == first["store_rows"]
        assert again["rows_in"] == first["rows_in"] and again["accepted"] == first["accepted"]
        st_obj = hydra.utils.instantiate(canonical_cfg(path, store).store)
        frames[store] = st_obj.read()
        rejects = st_obj.read_rejects()
        counts[store] = len(rejects)
        assert set(rejects["reason"]) == {"crossed_book", "duplicate", "unparseable"}
        assert rejects["line"].notna().all() and (rejects["source_file"] == str(path)).all()
    assert counts["parquet"] == counts["sqlite"] == first["rejected"]
    pd.testing.assert_frame_equal(frames["parquet"], frames["sqlite"], check_dtype=False)


def _prefetch_threads() -> list:
    return [t for t in threading.enumerate() if t.name == "l2exp-prefetch"]


def _settled(threads_before: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(_prefetch_threads()) > threads_before:
        time.sleep(0.02)
    return len(_prefetch_threads()) <= threads_before


def test_the_first_file_is_read_ahead_of_the_digest_and_dropped_when_the_store_has_it(workdir, monkeypatch):
    """The first file's read starts before the digests are taken (a new file: its chunks are the ones
    ingested); a file whose content the store holds under another path is read ahead for nothing --
    that read is stopped and the manifest reused; a path the store lists is not read ahead at all."""
    from l2exp.data import ingest as ingest_mod

    path = workdir / "b.csv"
    write_book(path, ["none"] * 40)
    before = len(_prefetch_threads())
    started: list[str] = []
    real = ingest_mod._read_ahead

    def spy(source, files, listed, chunk_rows, compute):
        out = real(source, files, listed, chunk_rows, compute)
        started.extend(out)
        return out

    monkeypatch.setattr(ingest_mod, "_read_ahead", spy)
    first = run_ingest(canonical_cfg(path))
    assert started == [str(path)] and first["inserted"] == first["accepted"] == 40
    run_ingest(canonical_cfg(path))  # the store lists this path: no read ahead
    assert started == [str(path)]
    copy = workdir / "copy.csv"
    copy.write_bytes(path.read_bytes())
    again = run_ingest(canonical_cfg(copy, extra=["validation.chunk_rows=4"]))  # more chunks than it holds
    assert started == [str(path), str(copy)]
    assert again["inserted"] == 0 and again["files"][0]["reused"] and again["accepted"] == 40
    assert _settled(before), "the read ahead of a reused file still runs"


def test_a_prefetch_dropped_unread_stops_its_thread():
    """``prefetch`` starts reading at once; dropped before its first item (a generator's ``finally``
    would never run), its thread stops instead of waiting forever to hand over an item."""
    from l2exp.data.readers import prefetch

    before = len(_prefetch_threads())
    it = prefetch(iter(range(100)), depth=2)
    time.sleep(0.05)
    assert len(_prefetch_threads()) == before + 1
    del it
    assert _settled(before)
    it = prefetch(iter(range(5)), depth=2)
    assert list(it) == [0, 1, 2, 3, 4]


def test_a_closed_prefetch_has_stopped_reading_and_a_full_queue_never_holds_its_thread():
    """``close`` returns once the producer has stopped (nothing reads on behind the caller); a producer
    that finishes -- or fails -- with its queue full and nobody reading does not wait forever."""
    from l2exp.data.readers import prefetch

    before = len(_prefetch_threads())
    produced: list[int] = []

    def slow():
        for k in range(100):
            time.sleep(0.01)
            produced.append(k)
            yield k

    it = prefetch(slow(), depth=2)
    assert next(it) == 0
    it.close()
    assert len(_prefetch_threads()) == before
    n = len(produced)
    time.sleep(0.1)
    assert len(produced) == n <= 4
    def fails_after_one():
        yield 0
        raise ZeroDivisionError

    for items in (iter(range(1)), fails_after_one()):  # ends, or fails, with its one-item queue full
        it = prefetch(items, depth=1)
        time.sleep(0.05)
        it.close()
        assert len(_prefetch_threads()) == before


def test_stores_keyed_by_the_old_digest_are_found_by_it(workdir, monkeypatch):
    """A store written before XXH3 keyed its files by BLAKE2b (manifests without ``digest_algo``): the same
    file ingested again is recognised as ingested by that key, not stored a second time."""
    from l2exp.data import ingest as ingest_mod
    from l2exp.data.source import DataSource

    path = workdir / "old.csv"
    write_book(path, ["none"] * 30)
    for store in ("parquet", "sqlite"):
        with monkeypatch.context() as m:  # the store as the previous release wrote it
            m.setattr(DataSource, "digest", DataSource.legacy_digest)
            m.setattr(ingest_mod, "DIGEST_ALGO", None)
            old = run_ingest(canonical_cfg(path, store))
        again = run_ingest(canonical_cfg(path, store))
        assert old["inserted"] == 30
        assert again["inserted"] == 0 and again["files"][0]["reused"], store
        assert again["files"][0]["digest"] == old["files"][0]["digest"] != \
            DataSource("canonical_csv", str(path), None, None).digest(str(path))  # type: ignore[arg-type]


@pytest.mark.slow
@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz")
def test_killed_ingest_then_rerun_equals_clean_run(tmp_path):
    """SIGKILL a real ingest mid-file, run again: the store holds exactly a clean run's rows."""
    for store in ("sqlite", "parquet"):
        crashed, clean = tmp_path / f"crashed_{store}", tmp_path / f"clean_{store}"
        args = ["mode=ingest", "data=bitmex_ob10", f"store={store}", "validation.chunk_rows=2000",
                "mode.progress=false"]
        env = dict(os.environ, L2EXP_WORKDIR=str(crashed))
        proc = subprocess.Popen([sys.executable, "-m", "l2exp.cli", *args], cwd=PROJECT_ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # its own process: killed
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if _partial(crashed, store):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "ingest finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for workdir in (crashed, clean):  # the rerun, and a clean run to compare with
            done = run_cli(args, workdir)
            assert done.returncode == 0, done.stderr[-3000:]
        cfg_a = make_cfg([f"store={store}", "data=bitmex_ob10", f"workdir={crashed}"])
        cfg_b = make_cfg([f"store={store}", "data=bitmex_ob10", f"workdir={clean}"])
        a = hydra.utils.instantiate(cfg_a.store).read()
        b = hydra.utils.instantiate(cfg_b.store).read()
        assert len(a) == len(b) == 128_922
        pd.testing.assert_frame_equal(a, b)


def _partial(workdir: Path, store: str) -> bool:
    """True once the second (large) file is part-way in."""
    if store == "sqlite":
        db = workdir / "store/sqlite/bitmex_ob10.db"
        if not db.exists():
            return False
        try:
            with sqlite3.connect(db, timeout=0.1) as con:
                return con.execute("SELECT COUNT(*) FROM l2_training_data").fetchone()[0] > 20_000
        except sqlite3.Error:
            return False
    root = workdir / "store/parquet/bitmex_ob10"
    try:
        return any(root.glob("_manifest/*.json")) and any(root.glob("_staging/*/symbol=*/date=*/*.parquet"))
    except FileNotFoundError:  # the ingest committed (moved) a staging folder while glob walked it: look again
        return False


def test_fail_rule_stops_at_first_bad_row(workdir):
    path = workdir / "f.csv"
    write_book(path, ["none", "none", "crossed", "none"])
    from l2exp.errors import UserError

    try:
        run_ingest(canonical_cfg(path, extra=["validation.rules.crossed_book=fail"]), write=False)
    except UserError as err:
        assert "line 4" in err.render()  # header is line 1
    else:
        raise AssertionError("expected a UserError")


def test_fewer_source_levels_than_canonical_are_nan_and_counted(workdir):
    path = workdir / "l.csv"
    write_book(path, ["none"] * 5, levels=2)
    s = run_ingest(canonical_cfg(path, levels=2, extra=["levels=4"]))
    assert s["accepted"] == 5 and s["missing_level_rows"] == 5
    df = hydra.utils.instantiate(canonical_cfg(path, levels=2, extra=["levels=4"]).store).read()
    assert np.isnan(df["bid_price_3"]).all() and not np.isnan(df["bid_price_2"]).any()


def test_long_and_odd_symbols_round_trip_in_both_stores(workdir):
    """A 5,000-character symbol, one just over the folder-name limit, a multi-byte one and one that
    looks like a hashed folder name: every row stored and read back under its exact symbol."""
    symbols = ["X" * 5000, "é" * 120, "Ω/../" * 60, "A~h0123456789abcdef", "BTC-USD"]
    path = workdir / "odd.csv"
    write_book(path, ["none"] * 10)
    base = pd.read_csv(path)
    frames = [base.assign(symbol=s, timestamp=base.timestamp + k) for k, s in enumerate(symbols)]
    pd.concat(frames).to_csv(path, index=False)
    for store in ("parquet", "sqlite"):
        s = run_ingest(canonical_cfg(path, store))
        assert s["accepted"] == 50 and s["rejected"] == 0, s
        st_obj = hydra.utils.instantiate(canonical_cfg(path, store).store)
        got = st_obj.read()
        assert sorted(got["symbol"].unique()) == sorted(symbols)
        assert got.groupby("symbol").size().to_dict() == {s: 10 for s in symbols}
        one = st_obj.read(symbols=[symbols[0]])
        assert len(one) == 10 and (one["symbol"] == symbols[0]).all()
        assert run_ingest(canonical_cfg(path, store))["inserted"] == 0  # idempotent under the long names


def test_overlapping_files_store_each_row_once_in_both_stores(workdir):
    """Two source files sharing 20 rows: each row stored once in both stores (the repeats are rejected
    with their reason, every row accounted for), and the stores agree."""
    write_book(workdir / "all.csv", ["none"] * 50)
    rows = pd.read_csv(workdir / "all.csv")
    folder = workdir / "overlap"
    folder.mkdir()
    rows.iloc[:30].to_csv(folder / "a.csv", index=False)
    rows.iloc[10:].to_csv(folder / "b.csv", index=False)
    frames = {}
    for store in ("parquet", "sqlite"):
        s = run_ingest(canonical_cfg(folder / "*.csv", store))
        assert s["rows_in"] == 70 and s["accepted"] == s["store_rows"] == 50 and s["rejected"] == 20, s
        frames[store] = hydra.utils.instantiate(canonical_cfg(folder / "*.csv", store).store).read()
    pd.testing.assert_frame_equal(frames["parquet"], frames["sqlite"], check_dtype=False)


def test_files_mapped_in_parallel_leave_the_serial_store(workdir, tmp_path_factory):
    """``compute=local``: several files are read and mapped by a 2-process pool while one process validates
    and stores them in file order -- the store (every part file, byte for byte), the rejects and the
    summary's accounting equal a serial ingest's. The files overlap and go back in time across their
    boundaries, so the cross-file rules (duplicates, time order) matter."""
    import random

    from l2exp.compute import LocalPool
    from l2exp.modes.build import data_source, store
    from l2exp.modes.ingest import options, validator

    rng = random.Random(5)
    write_book(workdir / "all.csv", [rng.choice(FAULTS[:1] * 6 + FAULTS) for _ in range(600)])
    rows = (workdir / "all.csv").read_text().splitlines()
    folder = workdir / "many"
    folder.mkdir()
    for k, (a, b) in enumerate([(0, 180), (150, 330), (330, 470), (440, 601)]):  # overlaps: duplicates
        (folder / f"part-{k}.csv").write_text("\n".join([rows[0], *rows[1 + a:1 + b]]) + "\n")
    out = {}
    for name, compute in (("serial", None), ("pool", LocalPool(workers=2))):
        wd = tmp_path_factory.mktemp(name)
        cfg = make_cfg(["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={folder}/*.csv",
                        "data.levels=3", f"workdir={wd}", "validation.chunk_rows=64"])
        summary = ingest(data_source(cfg), store(cfg), validator(cfg), options(cfg), compute)
        st = store(cfg)
        parts = {k: v["xxh3"] for m in st.manifests() for k, v in m["files"].items()}
        out[name] = (summary, parts, st.read(), st.read_rejects())
    (s1, p1, b1, r1), (s2, p2, b2, r2) = out["serial"], out["pool"]
    for key in ("rows_in", "accepted", "rejected", "rejected_by_reason", "inserted", "store_rows"):
        assert s1[key] == s2[key], key
    assert s1["rejected_by_reason"].get("duplicate") and s1["rows_in"] == s1["accepted"] + s1["rejected"]
    assert p1 == p2 and len(p1) >= 4
    assert s1["read_on"] == "this process" and s2["read_on"].startswith("local pool")
    pd.testing.assert_frame_equal(b1, b2)
    pd.testing.assert_frame_equal(r1, r2)


def test_parts_with_optional_fields_read_with_required_ones(workdir, monkeypatch):
    """Parts written before the fields became required (optional: a definition level per value) and parts
    written now read as one store, pass the deep integrity check and keep every value."""
    import pyarrow as pa

    from l2exp.data.stores import parquet as pqs

    write_book(workdir / "all.csv", ["none"] * 40)
    rows = pd.read_csv(workdir / "all.csv")
    folder = workdir / "two"
    folder.mkdir()
    rows.iloc[:20].to_csv(folder / "a.csv", index=False)
    original_init = pqs._ParquetWriter.__init__

    def optional_fields(self, *a, **k):
        original_init(self, *a, **k)
        self.file_schema = pa.schema([f.with_nullable(True) for f in self.file_schema])

    with monkeypatch.context() as m:
        m.setattr(pqs._ParquetWriter, "__init__", optional_fields)
        run_ingest(canonical_cfg(folder / "*.csv", "parquet"))
    rows.iloc[20:].to_csv(folder / "b.csv", index=False)
    s = run_ingest(canonical_cfg(folder / "*.csv", "parquet"))
    assert s["store_rows"] == 40 and s["files"][0]["reused"] and not s["files"][1]["reused"]
    store = hydra.utils.instantiate(canonical_cfg(folder / "*.csv", "parquet").store)
    nullable = {pq_file.name: pqs.pq.read_schema(pq_file).field("bid_price_1").nullable
                for pq_file in store.root.glob("symbol=*/date=*/*.parquet")}
    assert sorted(nullable.values()) == [False, True], nullable
    got = store.read()
    assert len(got) == 40 and np.allclose(got["bid_price_1"].to_numpy(), rows["bid_price_1"].to_numpy())
    assert store.integrity_issues(deep=True) == []


def test_a_chunk_across_midnight_is_split_into_day_partitions(workdir):
    """Rows either side of midnight in one chunk land in their own day's part, in file order."""
    from l2exp.schema import canonical_columns as cols

    t0 = np.datetime64("2024-01-01T23:59:59", "ns").astype(np.int64)
    lines = [",".join(cols(1))]
    for k in range(10):
        lines.append(f"{t0 + k * 250_000_000},S,E,{100 - k * 0.5},1,{101 - k * 0.5},1")
    path = workdir / "midnight.csv"
    path.write_text("\n".join(lines) + "\n")
    s = run_ingest(canonical_cfg(path, "parquet", levels=1))
    assert s["store_rows"] == 10
    store = hydra.utils.instantiate(canonical_cfg(path, "parquet", levels=1).store)
    days = sorted(p.parent.name for p in store.root.glob("symbol=*/date=*/*.parquet"))
    assert days == ["date=2024-01-01", "date=2024-01-02"]
    got = store.read()
    assert got["timestamp"].tolist() == [t0 + k * 250_000_000 for k in range(10)]
    assert got["bid_price_1"].tolist() == [100 - k * 0.5 for k in range(10)]


@pytest.mark.parametrize("symbols", [2, 11])  # a pass per (symbol, day) group; past 8 groups, one stable sort
def test_interleaved_symbols_across_midnight_land_in_their_partitions_in_file_order(workdir, symbols):
    """Rows of several symbols interleaved in one chunk, crossing midnight: each (symbol, day) part holds
    exactly its rows, in file order."""
    from l2exp.schema import canonical_columns as cols

    t0 = np.datetime64("2024-01-01T23:59:58", "ns").astype(np.int64)
    lines, want = [",".join(cols(1))], {}
    for k in range(12 * symbols):
        sym, ts, price = f"S{k % symbols}", t0 + (k // symbols) * 250_000_000, 100 + k * 0.25
        lines.append(f"{ts},{sym},E,{price},1,{price + 1},1")
        want.setdefault(sym, []).append((ts, price))
    path = workdir / f"interleaved{symbols}.csv"
    path.write_text("\n".join(lines) + "\n")
    s = run_ingest(canonical_cfg(path, "parquet", levels=1))
    assert s["store_rows"] == 12 * symbols
    store = hydra.utils.instantiate(canonical_cfg(path, "parquet", levels=1).store)
    parts = sorted(str(p.parent.relative_to(store.root)) for p in store.root.glob("symbol=*/date=*/*.parquet"))
    assert parts == sorted(f"symbol=S{i}/date=2024-01-0{d}" for i in range(symbols) for d in (1, 2))
    for sym, rows in want.items():  # the part files themselves, in date order: their row order is the file's
        mine = pa.concat_tables([pq.read_table(f, columns=["timestamp", "bid_price_1"])
                                 for f in sorted(store.root.glob(f"symbol={sym}/date=*/*.parquet"))])
        assert list(zip(mine["timestamp"].to_pylist(), mine["bid_price_1"].to_pylist(), strict=True)) == rows, sym
    assert len(store.read()) == 12 * symbols


def _canonical_csv(path, n: int = 3001):
    """A canonical-layout CSV of ``n`` rows (one symbol, 10 levels) and its lines as bytes."""
    import pandas as pd

    ts = 1_704_153_600_000_000_000 + np.arange(n, dtype=np.int64) * 1_000_000
    df = pd.DataFrame({"timestamp": ts, "symbol": "X", "exchange": "E"})
    for i in range(1, 11):
        df[f"bid_price_{i}"], df[f"bid_size_{i}"] = 100.0 - i, 1.0
        df[f"ask_price_{i}"], df[f"ask_size_{i}"] = 100.0 + i, 1.0
    df.to_csv(path, index=False)
    return path.read_bytes().split(b"\n")


@pytest.mark.parametrize("store", ["parquet", "sqlite"])
@pytest.mark.parametrize("case", ["undecodable", "line_too_long"])
def test_one_bad_line_is_one_reject_and_the_rest_is_read(tmp_path, store, case):
    """Invalid UTF-8 on one line, or one 3 MB line (over data.reader.max_line_bytes): that line is a reject with its
    reason and every other row is stored -- it was a traceback (0 rows) or "truncated or corrupt" (0 rows stored,
    the 1,500 rows after the line never read)."""
    from l2exp.modes.build import store_with_data as open_store
    from l2exp.modes.ingest import run_ingest

    lines = _canonical_csv(tmp_path / "good.csv")
    if case == "undecodable":
        lines[1500] = lines[1500].replace(b",X,", b",X\xff\xfe,")
    else:
        lines[1500] = lines[1500] + b"," + b"9" * 3_000_000
    (tmp_path / "bad.csv").write_bytes(b"\n".join(lines))
    args = ["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={tmp_path / 'bad.csv'}",
            f"workdir={tmp_path}", f"store={store}"]
    s = run_ingest(make_cfg(args))
    assert s["rows_in"] == 3001 and s["accepted"] == 3000 and s["rejected_by_reason"] == {case: 1}
    st = open_store(make_cfg(args))
    assert st.count() == 3000
    rej = st.read_rejects()
    assert len(rej) == 1 and int(rej.line.iloc[0]) == 1501


def test_a_whole_file_in_another_encoding_is_one_message_and_reads_with_the_key(tmp_path):
    from l2exp.modes.ingest import run_ingest

    _canonical_csv(tmp_path / "good.csv", 500)
    (tmp_path / "u16.csv").write_bytes((tmp_path / "good.csv").read_text().encode("utf-16"))
    args = ["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={tmp_path / 'u16.csv'}",
            f"workdir={tmp_path}"]
    with pytest.raises(UserError, match="not UTF-8 text: it looks UTF-16") as err:
        run_ingest(make_cfg(args))
    assert "++data.reader.encoding=utf-16" in err.value.fix
    s = run_ingest(make_cfg([*args, "++data.reader.encoding=utf-16"]))
    assert s["accepted"] == 500 and s["rejected"] == 0


@pytest.mark.parametrize("store", ["parquet", "sqlite"])
def test_a_cut_gzip_keeps_and_commits_every_row_before_the_cut(tmp_path, store):
    """A .csv.gz cut at 2/3: the rows decoded before the cut are stored and committed, and the message gives
    exactly what is stored (it said "already stored" while the Parquet store held 0 rows and SQLite an
    uncommitted file); a rerun says it again; the fixed file adds only the missing rows."""
    import gzip

    from l2exp.modes.build import store_with_data as open_store

    lines = _canonical_csv(tmp_path / "one.csv", 5000)
    head, rows = lines[0], [r for r in lines[1:] if r]
    out = [head]
    for k in range(12):  # 60,000 rows, ~12 MB of text
        out += [str(int(r.split(b",", 1)[0]) + k * 10_000_000_000).encode() + b"," + r.split(b",", 1)[1]
                for r in rows]
    whole = gzip.compress(b"\n".join(out) + b"\n")
    path = tmp_path / "day.csv.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    args = ["mode=ingest", "mode.progress=false", "data=canonical_csv", f"data.path={path}", f"workdir={tmp_path}",
            f"store={store}"]
    with pytest.raises(UserError, match="could not be read to the end") as err:
        run_ingest(make_cfg(args))
    st = open_store(make_cfg(args))  # committed: nothing unfinished is refused
    kept = st.count()
    assert 30_000 < kept < 60_000 and f"{kept:,} rows before the damage are stored" in err.value.what
    with pytest.raises(UserError, match=f"{kept:,} rows before the damage are stored"):
        run_ingest(make_cfg(args))  # said again, nothing added twice
    assert open_store(make_cfg(args)).count() == kept
    path.write_bytes(whole)  # fixed
    s = run_ingest(make_cfg(args))
    assert s["accepted"] == 60_000 and open_store(make_cfg(args)).count() == 60_000


def _describe(pid: int) -> str:
    """A process's command line and state, for a failure message."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:90].decode()
        state = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("State"))
    except (OSError, StopIteration):
        return f"{pid} (gone)"
    return f"{pid} {cmd} {state}"


def _marked(mark: str) -> list[int]:
    """Live processes whose environment carries ``mark`` (the test's own children and their descendants)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if mark.encode() in (d / "environ").read_bytes() and b"State:\tZ" not in (d / "status").read_bytes():
                out.append(int(d.name))
        except OSError:
            continue
    return out


@pytest.mark.slow
@needs_shared("bitmex/orderbook10_2020-03-10.csv.gz")
def test_kill_9_of_a_pooled_ingest_leaves_no_process_and_the_next_run_cleans_its_spill(tmp_path):
    """``compute=local``: SIGKILL the ingest while its pool reads; its forkserver, workers and resource tracker
    go with it (they stayed with parent PID 1, ~660 MB), and the spill folder it left in the temp folder is
    removed by the next ingest."""
    import uuid

    mark = f"L2EXP_TEST_MARK={uuid.uuid4().hex}"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, L2EXP_WORKDIR=str(tmp_path / "w"), TMPDIR=str(tmp), **dict([mark.split("=")]))
    args = ["mode=ingest", "data=bitmex_ob10", "compute=local", "compute.workers=2", "validation.chunk_rows=2000",
            "mode.progress=false"]
    log = tmp_path / "ingest.log"  # a file, not a pipe: nobody reads a pipe while we wait
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "l2exp.cli", *args], cwd=PROJECT_ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(_marked(mark)) < 4:  # main, server, 2 workers
        time.sleep(0.05)
    assert proc.poll() is None and len(_marked(mark)) >= 4, (
        f"the pool never started (exit {proc.poll()}, {len(_marked(mark))} marked processes); the ingest printed:\n"
        + log.read_text(errors="replace")[-3000:])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline and _marked(mark):
        time.sleep(0.1)
    left = _marked(mark)
    what = [_describe(pid) for pid in left]
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} process(es) outlived the killed ingest: {what}"
    spill = list(tmp.glob("l2exp-premap-*"))
    assert spill, "the killed ingest left no spill folder to clean (nothing tested)"
    done = subprocess.run([sys.executable, "-m", "l2exp.cli", *args[:2], "mode.progress=false"], cwd=PROJECT_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not any(p.exists() for p in spill)
