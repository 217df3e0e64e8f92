"""Ingest throughput: CSV -> Parquet and CSV -> SQLite end to end (validation included), each
beside its bare ceiling measured in the same run on the same file, plus read-back speeds and
peak memory at two file sizes (memory must stay flat as the file grows).

The CSV ceiling is ``pyarrow.csv.read_csv`` of the same file, compared like for like (the >= 0.8x target):
in a fresh process, timed around the call, against an ingest in a fresh process (``parquet_ratio``); and
repeated in one process, its memory already faulted in, against the ingest repeated in one process
(``parquet_ratio_warm``). Page faults make the difference between the two conditions: on this VM up to
~2 s of a fresh 556 MB read. ``parquet_ratio_vs_warm_read`` crosses them -- a fresh ingest against the
warm read -- the strictest figure, printed so that nothing flatters the ingest.

    .venv/bin/python bench/ingest.py [--rows 2000000]

Data: the real BitMEX orderbook10 2020-03-10 recording (120k rows) tiled with shifted timestamps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow.csv as pacsv  # noqa: E402

from bench._tiles import BITMEX_COLUMNS, WORK, tiled_bitmex  # noqa: E402


def ingest(path: Path, store: str, workdir: Path, runs: int = 1) -> dict:
    """An end-to-end ingest in a fresh process, ``runs`` times in that process, each into a new workdir
    (the last into ``workdir``); the last is reported: ``runs=1`` is the fresh ingest, ``runs=2`` the warm
    one (the first run loaded the kernels and faulted memory in, as the warm read's first call did).
    Peak memory is VmHWM of that process (ru_maxrss would carry the parent's peak across fork+exec)."""
    dirs = [f"{workdir}-{k}" for k in range(runs - 1)] + [str(workdir)]
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    code = f"""
import contextlib, io, json, resource
from hydra import compose, initialize_config_dir
from l2exp.config import CONF_DIR
from l2exp.modes.ingest import run_ingest
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for wd in {dirs!r}:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["mode=ingest", "mode.progress=false", "data=bitmex_ob10",
                      "data.path={path}", "store={store}", "workdir=" + wd])
    c0 = cpu()
    with contextlib.redirect_stdout(io.StringIO()):
        s = run_ingest(cfg)
    cpu_s = cpu() - c0
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"rows": s["rows_in"], "seconds": s["seconds"], "accepted": s["accepted"],
      "rss_mb": int(hwm) / 1024, "cpu_s": cpu_s}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for d in dirs[:-1]:
        shutil.rmtree(d, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


REPEATS = 3  # this VM's throughput varies run to run: every figure is the best of REPEATS


def best_ingest(path: Path, store: str, workdir: Path) -> dict:
    runs = [ingest(path, store, workdir) for _ in range(REPEATS)]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["rss_mb"] = max(r["rss_mb"] for r in runs)
    return best


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def bare_read(path: Path) -> tuple[float, float, object]:
    """One bare ``pyarrow.csv.read_csv`` in this process: seconds, CPU seconds (both cores count), the
    table. After the first, Arrow's allocator (mimalloc) hands back memory this process has touched
    already: the warm figure."""
    t, c = time.perf_counter(), _cpu()
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=BITMEX_COLUMNS))
    return time.perf_counter() - t, _cpu() - c, table


BARE_READ = """
import json, resource, sys, time
import pyarrow.csv as pacsv
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
names = json.loads(sys.argv[2])
c, t = cpu(), time.perf_counter()
pacsv.read_csv(sys.argv[1], read_options=pacsv.ReadOptions(column_names=names))
print(json.dumps([time.perf_counter() - t, cpu() - c]))
"""


def bare_read_fresh(path: Path) -> tuple[float, float]:
    """One bare ``read_csv`` in a fresh process, timed around the call (the import excluded) -- as the
    ingest is measured: each ingest runs in a fresh process, whose every page of memory is touched
    for the first time (on this VM ~0.5-2 CPU-s of page faults per GB), which a warm process's
    second read no longer pays. Returns (seconds, CPU seconds)."""
    out = subprocess.run([sys.executable, "-c", BARE_READ, str(path), json.dumps(BITMEX_COLUMNS)],
                         capture_output=True, text=True, check=True)
    seconds, cpu_s = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, cpu_s


def ceiling_and_ingest(path: Path, store: str, workdir: Path) -> tuple[dict, object, dict, dict]:
    """The bare read and the ingest, each fresh and warm, alternated REPEATS times (this VM's speed
    drifts over minutes: every side sees the same spells); the best of each. Returns (the bare reads'
    best seconds and CPU seconds, the table, the best fresh ingest, the best warm ingest)."""
    fresh, warm, runs, warm_runs = [], [], [], []
    for _ in range(REPEATS):
        fresh.append(bare_read_fresh(path))
        warm.append(bare_read(path)[:2])
        runs.append(ingest(path, store, workdir))
        warm_runs.append(ingest(path, store, workdir.with_name(workdir.name + "_warm"), runs=2))
    table = bare_read(path)[2]
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["rss_mb"] = max(r["rss_mb"] for r in runs)
    reads = {"fresh_s": min(fresh)[0], "fresh_cpu_s": min(fresh)[1], "warm_s": min(warm)[0], "warm_cpu_s": min(warm)[1]}
    return reads, table, best, min(warm_runs, key=lambda r: r["seconds"])


def ceiling_sqlite(table, db: Path) -> float:
    """Bare executemany of the same rows (43 columns) into a fresh WAL SQLite table."""
    if db.exists():
        db.unlink()
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(table.num_columns))})")
    t = time.perf_counter()
    cols = [c.to_pylist() for c in table.columns]
    with con:
        con.executemany(f"INSERT INTO t VALUES ({','.join('?' * table.num_columns)})", zip(*cols, strict=True))
    rate = table.num_rows / (time.perf_counter() - t)
    con.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    args = ap.parse_args()
    results = {}
    for gz in (False, True):
        path = tiled_bitmex(args.rows, gz)
        label = "csv.gz" if gz else "csv"
        reads, table, pq_run, pq_warm = ceiling_and_ingest(path, "parquet", WORK / "pq")
        pq_rate, pq_warm_rate = pq_run["rows"] / pq_run["seconds"], pq_warm["rows"] / pq_warm["seconds"]
        read_rate, warm_rate = table.num_rows / reads["fresh_s"], table.num_rows / reads["warm_s"]
        row = {"rows": pq_run["rows"], "file_mb": round(path.stat().st_size / 2**20, 1),
               # the ceiling: read_csv in a fresh process, as each ingest runs (see bare_read_fresh)
               "ceiling_read_csv_rows_s": round(read_rate), "csv_to_parquet_rows_s": round(pq_rate),
               "parquet_ratio": round(pq_rate / read_rate, 2), "parquet_peak_rss_mb": round(pq_run["rss_mb"]),
               # read_csv repeated in this process (its allocator warm) against the ingest repeated in one process
               "warm_read_csv_rows_s": round(warm_rate), "warm_csv_to_parquet_rows_s": round(pq_warm_rate),
               "parquet_ratio_warm": round(pq_warm_rate / warm_rate, 2),
               # across conditions: a fresh ingest against the warm read (the strictest figure)
               "parquet_ratio_vs_warm_read": round(pq_rate / warm_rate, 2),
               # CPU seconds (all threads): on 2 cores the ratio of wall times cannot beat the ratio of these
               "ceiling_cpu_s": round(reads["fresh_cpu_s"], 2), "warm_read_cpu_s": round(reads["warm_cpu_s"], 2),
               "csv_to_parquet_cpu_s": round(pq_run["cpu_s"], 2),
               "warm_csv_to_parquet_cpu_s": round(pq_warm["cpu_s"], 2)}
        if gz:  # SQLite is insert-bound: measure once, on the gz file
            sub = table.slice(0, 500_000)
            sql_ceiling = max(ceiling_sqlite(sub, WORK / "ceiling.db") for _ in range(REPEATS))
            sql_run = best_ingest(path, "sqlite", WORK / "sq")
            sql_rate = sql_run["rows"] / sql_run["seconds"]
            row.update({"ceiling_sqlite_executemany_rows_s": round(sql_ceiling),
                        "csv_to_sqlite_rows_s": round(sql_rate), "sqlite_ratio": round(sql_rate / sql_ceiling, 2),
                        "sqlite_peak_rss_mb": round(sql_run["rss_mb"])})
            # read-back for research: Parquet store vs SQLite into pandas
            from l2exp.data.stores.parquet import ParquetStore
            from l2exp.data.stores.sqlite import SqliteStore

            pq_store = ParquetStore(str(WORK / "pq/store/parquet/bitmex_ob10"), 10)
            best = float("inf")
            for _ in range(REPEATS):
                t = time.perf_counter()
                n = len(pq_store.read())
                best = min(best, time.perf_counter() - t)
            row["read_parquet_rows_s"] = round(n / best)
            t = time.perf_counter()
            n = len(pq_store.read(columns=["bid_price_1", "bid_size_1", "ask_price_1", "ask_size_1"]))
            row["read_parquet_4_columns_rows_s"] = round(n / (time.perf_counter() - t))
            t = time.perf_counter()
            df = SqliteStore(str(WORK / "sq/store/sqlite/bitmex_ob10.db"), 10).read()
            row["read_sqlite_pandas_rows_s"] = round(len(df) / (time.perf_counter() - t))
        del table
        results[label] = row
    # memory flat as the file grows: the same ingest on a file of half the size
    half = tiled_bitmex(args.rows // 2, True)
    half_run = ingest(half, "parquet", WORK / "pq_half")
    full_rss = results["csv.gz"]["parquet_peak_rss_mb"]
    results["memory"] = {"rows_half": half_run["rows"], "rss_mb_half": round(half_run["rss_mb"]),
                         "rows_full": results["csv.gz"]["rows"], "rss_mb_full": full_rss,
                         "growth_ratio": round(full_rss / half_run["rss_mb"], 2)}
    results["machine"] = {"cores": os.cpu_count(), "python": sys.version.split()[0],
                          "bench_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
