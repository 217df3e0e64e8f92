"""The feature table per (symbol, UTC day) partition: the same files, byte for byte, whether the tasks
run in this process, on threads, in a local process pool or on a Ray cluster; days are independent (the flow state
restarts at midnight, in batch and streaming alike); a run reads only the rows it asks for."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2exp.compute import LocalPool, LocalThreads, Serial
from l2exp.config import instantiate
from l2exp.features.partitioned import RowWindow, build_partitioned, read_partitioned
from l2exp.features.table import data_digest
from l2exp.modes.build import feature_cache
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest
from l2exp.schema import SIDE_FIELDS, level_columns
from l2exp.sessions import DAY_NS
from tests.conftest import make_cfg, run_cli

# two symbols, each ~1.6 days of snapshots ~3.5 s apart, crossing midnight mid-stream
SYMBOLS = {"AAA-USD": "2024-01-02T20:00:00Z", "BBB-USD": "2024-01-03T07:30:00Z"}


def _cfg(workdir: Path, symbol: str = "AAA-USD", *extra: str):
    return make_cfg(["mode=features", f"workdir={workdir}", "data.reader.n_snapshots=40000",
                     "+data.reader.mean_dt_ms=5000", f"+data.reader.start={SYMBOLS[symbol]}",
                     f"data.reader.symbol={symbol}", "+data.instruments.BBB-USD={contract: linear}", *extra])


@pytest.fixture(scope="module")
def two_symbol_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic store holding two symbols over three UTC days (5 partitions)."""
    workdir = tmp_path_factory.mktemp("partitioned")
    for symbol in SYMBOLS:
        cfg = _cfg(workdir, symbol)
        cfg.mode.progress = False
        run_ingest(cfg)
    return workdir


def _build(workdir: Path, compute, out: Path):  # noqa: ANN001, ANN202
    cfg = _cfg(workdir)
    fs = instantiate(cfg.features)
    store = open_store(cfg)
    return build_partitioned(store, fs, int(cfg.levels), out, compute), store, fs


def test_partitions_are_symbol_days_in_read_order(two_symbol_store):
    store = open_store(_cfg(two_symbol_store))
    parts = store.partitions()
    assert [(p.symbol, p.date) for p in parts] == sorted((p.symbol, p.date) for p in parts)
    assert {p.symbol for p in parts} == set(SYMBOLS) and len(parts) >= 5
    assert sum(p.rows for p in parts) == store.count() == 80_000
    # the Parquet store plans from folder names and footers; the generic plan scans every timestamp
    from l2exp.data.stores.base import L2Store

    assert parts == L2Store.partitions(store)


def test_serial_and_a_two_process_pool_write_the_same_files(two_symbol_store, tmp_path):
    serial, store, fs = _build(two_symbol_store, Serial(), tmp_path / "serial")
    pooled, _, _ = _build(two_symbol_store, LocalPool(workers=2), tmp_path / "pool")
    threaded, _, _ = _build(two_symbol_store, LocalThreads(workers=2), tmp_path / "threads")
    assert [(p.file, p.digest) for p in serial.parts] == [(p.file, p.digest) for p in pooled.parts]
    assert [(p.file, p.digest) for p in serial.parts] == [(p.file, p.digest) for p in threaded.parts]
    assert len({p.worker for p in threaded.parts}) == 2  # two threads of this process (pid/thread name)
    assert serial.digest() == pooled.digest() and len(serial.parts) == len(store.partitions())
    assert len({p.worker for p in pooled.parts}) == 2 and {p.worker for p in serial.parts} != {
        p.worker for p in pooled.parts}
    a, b = read_partitioned(serial), read_partitioned(pooled)
    pd.testing.assert_frame_equal(a, b)
    # the assembled table is the store's rows in the store's order
    book = store.read()
    np.testing.assert_array_equal(a["timestamp"].to_numpy(), book["timestamp"].to_numpy())
    assert (a["symbol"].to_numpy() == book["symbol"].to_numpy()).all()
    # one warm-up (the long window, 200 snapshots) per partition: days are independent
    assert (~a["ready"]).sum() == 200 * len(serial.parts) == sum(p.rows - p.ready_rows for p in serial.parts)
    assert all(p.peak_rss_mb > 0 for p in pooled.parts)


def test_streaming_restarts_at_midnight_as_the_batch_does(two_symbol_store, tmp_path):
    """The live engine over the whole stream (crossing midnight) equals the partitioned table."""
    table, store, fs = _build(two_symbol_store, Serial(), tmp_path / "t")
    book = store.read(symbols=["AAA-USD"])
    want = read_partitioned(table)
    want = want[want["symbol"] == "AAA-USD"].reset_index(drop=True)
    eng = fs.streaming(10)
    mats = [book[level_columns(f, 10)].to_numpy(float) for f in SIDE_FIELDS]
    ts = book["timestamp"].to_numpy(np.int64)
    got = np.empty((len(book), len(fs.names)))
    ready = np.empty(len(book), dtype=bool)
    snap = np.empty((4, 10))
    for i in range(len(book)):
        for k in range(4):
            snap[k] = mats[k][i]
        out, ready[i] = eng.update_book(int(ts[i]), snap)
        got[i] = out
    np.testing.assert_array_equal(ready, want["ready"].to_numpy())
    np.testing.assert_allclose(got, want[fs.names].to_numpy(), rtol=1e-9, atol=1e-9, equal_nan=True)
    first_after_midnight = np.flatnonzero(np.diff(ts // DAY_NS))[0] + 1
    assert not ready[first_after_midnight] and ready[first_after_midnight - 1]


def test_a_row_window_reads_only_what_it_asks_for(two_symbol_store, tmp_path):
    table, store, _ = _build(two_symbol_store, Serial(), tmp_path / "t")
    full = read_partitioned(table)
    start, end = pd.Timestamp("2024-01-03T12:00Z").value, pd.Timestamp("2024-01-04T06:00Z").value
    ranged = read_partitioned(table, window=RowWindow(start, end))
    expect = full[(full.timestamp >= start) & (full.timestamp < end)].reset_index(drop=True)
    pd.testing.assert_frame_equal(ranged, expect)
    newest = read_partitioned(table, window=RowWindow(max_rows=10_000))
    cut = np.sort(full["timestamp"].to_numpy())[-10_000]
    pd.testing.assert_frame_equal(newest, full[full.timestamp >= cut].reset_index(drop=True))
    assert RowWindow.parse("2024-01-03T12:00", None, None).start_ns == start


def test_mode_features_on_a_pool_reports_from_the_partitions(two_symbol_store):
    """``l2exp mode=features compute=local``: the summary's counts add up over partitions, the cache
    holds the serial run's table (same digest), and a second run is a cache hit."""
    args = ["mode=features", "data.reader.n_snapshots=40000", "+data.reader.mean_dt_ms=5000",
            f"+data.reader.start={SYMBOLS['AAA-USD']}", "mode.progress=false"]
    proc = run_cli([*args, "compute=local"], two_symbol_store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = _cfg(two_symbol_store)
    store = open_store(cfg)
    pt, digest = feature_cache(cfg).partitioned(store, instantiate(cfg.features))
    assert pt.cache_hit and digest == data_digest(store, 10)
    assert pt.directory.parent == two_symbol_store / "cache" / "features"
    from tests.conftest import last_summary

    s = last_summary(two_symbol_store)
    assert s["rows_in"] == 80_000 == s["rows_out"] + s["warmup_rows"] and s["partitions"] == len(pt.parts)
    assert len(s["workers"]) == 2 and s["table_digest"] == pt.digest()
    serial, _, _ = _build(two_symbol_store, Serial(), two_symbol_store / "serial-copy")
    assert serial.digest() == s["table_digest"]


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_ray_tasks_on_a_local_cluster_write_the_same_files(two_symbol_store, ray_cluster, tmp_path):
    import ray

    from l2exp.compute import RayCluster

    serial, _, _ = _build(two_symbol_store, Serial(), tmp_path / "serial")
    try:
        on_ray, _, _ = _build(two_symbol_store, RayCluster(address=ray_cluster), tmp_path / "ray")
    finally:
        ray.shutdown()
    assert [(p.file, p.digest) for p in serial.parts] == [(p.file, p.digest) for p in on_ray.parts]
    assert os.getpid() not in {int(p.worker.split(":")[1]) for p in on_ray.parts}  # ran in Ray workers


def test_a_task_loads_the_kernels_while_it_reads_and_they_are_the_ones_its_book_uses(two_symbol_store, tmp_path):
    """A fresh process: the first partition task starts the kernel load on its own thread before it reads;
    the kernel loaded is the one a real book calls -- no second compilation (signature) after it. (Which
    thread reaches the kernel first is the scheduler's choice: on a loaded machine the read can win.)"""
    root = open_store(_cfg(two_symbol_store)).root
    code = f"""
import threading
from pathlib import Path
from l2exp.compute import Serial
from l2exp.data.stores.parquet import ParquetStore
from l2exp.features import engine
from l2exp.features.partitioned import build_partitioned
from l2exp.features.registry import FeatureSet
seen = []
real = engine._batch
def spy(ts, *args):
    seen.append((threading.current_thread().name, len(ts)))
    return real(ts, *args)
engine._batch = spy
loading_when_read = []
read = ParquetStore.read
def read_spy(self, *a, **k):
    loading_when_read.append(engine._warm_thread is not None)
    return read(self, *a, **k)
ParquetStore.read = read_spy
store = ParquetStore({str(root)!r}, 10)
build_partitioned(store, FeatureSet("full", params={{"tick_size": 0.5}}), 10, Path({str(tmp_path / "t")!r}), Serial())
assert loading_when_read and all(loading_when_read), loading_when_read
assert [s for s in seen if s[0] != "MainThread"] == [("l2exp-feature-load", 2)], seen
assert sum(name == "MainThread" for name, _ in seen) >= 2, seen
assert len(real.signatures) == 1, real.signatures
print("ok")
"""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_the_feature_kernel_load_pauses_the_collector_and_restores_it(monkeypatch):
    import gc

    from l2exp.features import engine

    seen = []
    monkeypatch.setattr(engine, "compute_batch", lambda book, params, levels: seen.append((gc.isenabled(), len(book))))
    engine._warm(10)
    assert seen == [(False, 2)] and gc.isenabled()
