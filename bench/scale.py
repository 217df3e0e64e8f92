"""Scale-out, measured in one run on one machine:

0. Ingest of ``--ingest-files`` CSV.gz files: read and mapped here vs by a 2-process pool
   (``compute=local``; validated and stored in file order either way), the stores compared.
1. ``mode=features``' work (one task per (symbol, UTC day) partition) over a Parquet store of
   ``--days`` day-partitions of ``--rows-per-day`` tiled real snapshots: wall time in this process
   (serial), on 2 threads of it, a local pool of 1 and of 2 processes, and 2 tasks at a time on a local
   Ray cluster; the
   speed-up of 2 workers over 1 (target >= 1.7x on 2 cores); every run's files equal (digests); the
   peak memory of each worker, on a quarter of the days and on all of them (flat = bounded by one
   partition, not by the data).
2. A ``--trials``-job sweep (``l2exp -m mode=train``) with Hydra's basic launcher (one job after
   another in one process) vs ``hydra/launcher=ray_cluster`` on a local 2-CPU Ray cluster, both
   against one ``mlflow server``.

    .venv/bin/python bench/scale.py [--days 16] [--rows-per-day 500000] [--trials 8] [--skip-sweep]

Data: the real BitMEX XBTUSD 2020-03-10 recording (``../shared/data``), tiled to ``--rows-per-day``
snapshots per day with its time deltas scaled into the day; the store is built once under
bench/_work (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from bench._tiles import WORK  # noqa: E402
from bench.features import real_xbt, tile  # noqa: E402
from l2exp.compute import LocalPool, LocalThreads, RayCluster, Serial  # noqa: E402
from l2exp.data.stores.parquet import ParquetStore  # noqa: E402
from l2exp.features.partitioned import build_partitioned  # noqa: E402
from l2exp.features.registry import FeatureSet  # noqa: E402
from l2exp.schema import arrow_schema  # noqa: E402
from l2exp.sessions import DAY_NS  # noqa: E402

FIRST_DAY = int(np.datetime64("2024-01-01", "D").astype(np.int64))


def build_store(days: int, rows_per_day: int) -> ParquetStore:
    """``days`` UTC days of ``rows_per_day`` XBTUSD snapshots each, written through the store's own
    writer (one committed source per day, as an ingest of one file per day would leave it)."""
    root = WORK / f"scale-store-{days}x{rows_per_day}"
    store = ParquetStore(str(root), levels=10)
    if store.count() == days * rows_per_day:
        return store
    shutil.rmtree(root, ignore_errors=True)
    store = ParquetStore(str(root), levels=10)
    book = tile(real_xbt(), rows_per_day)
    rel = book["timestamp"].to_numpy(np.int64) - int(book["timestamp"].iloc[0])
    rel = (rel * ((DAY_NS - 10**9) / max(int(rel[-1]), 1))).astype(np.int64)  # the tiles fit in one day
    schema = arrow_schema(10)
    for d in range(days):
        day = book.assign(timestamp=rel + (FIRST_DAY + d) * DAY_NS)
        table = pa.Table.from_pandas(day[schema.names], schema=schema, preserve_index=False)
        digest = f"bench-scale-day-{d:03d}"
        w = store.begin(digest, f"tiled://xbtusd/{d}")
        w.write(table, np.arange(rows_per_day, dtype=np.int64) + d * rows_per_day)
        w.commit({"path": f"tiled://xbtusd/{d}", "digest": digest})
    return store


def run_features(store: ParquetStore, fs: FeatureSet, compute, out: Path, days: int | None = None,  # noqa: ANN001
                 repeats: int = 2) -> dict:
    """``mode=features``' computation of the first ``days`` day-partitions (all: None) into ``out``, best of
    ``repeats``. Each try starts with no output of an earlier one on disk and the page cache flushed
    (``sync``): gigabytes of dirty pages from the previous run being written back slowed the next one."""
    parts = store.partitions()[:days]
    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        os.sync()
        t = time.perf_counter()
        table = build_partitioned(store, fs, 10, out, compute, parts)
        best = min(best, time.perf_counter() - t)
    wall = best
    return {"backend": compute.describe(), "partitions": len(table.parts), "rows": table.rows,
            "wall_s": round(wall, 2), "rows_per_s": round(table.rows / wall),
            "workers": len({p.worker for p in table.parts}), "table_digest": table.digest(),
            "peak_rss_mb_per_worker": max(p.peak_rss_mb for p in table.parts), "repeats": repeats}


def features_part(days: int, rows_per_day: int) -> dict:
    store = build_store(days, rows_per_day)
    fs = FeatureSet("full", params={"tick_size": 0.5})
    out = Path(tempfile.mkdtemp(prefix="l2exp-scale-"))
    run_features(store, fs, Serial(), out / "warm", days=1, repeats=1)  # Numba cache loaded / compiled
    runs = {}
    for key, compute in (("serial", Serial()), ("pool_1", LocalPool(workers=1)), ("pool_2", LocalPool(workers=2)),
                         ("threads_2", LocalThreads(workers=2))):
        runs[key] = run_features(store, fs, compute, out / key)
        shutil.rmtree(out / key, ignore_errors=True)
    quarter = max(1, days // 4)
    runs[f"pool_2_first_{quarter}_days"] = run_features(store, fs, LocalPool(workers=2), out / "pool2q", quarter)
    shutil.rmtree(out / "pool2q", ignore_errors=True)
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback cluster; no stale ~/.ray token in the way
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        runs["ray_2"] = run_features(store, fs, RayCluster(address="auto"), out / "ray")
        shutil.rmtree(out / "ray", ignore_errors=True)
    finally:
        ray.shutdown()
    shutil.rmtree(out, ignore_errors=True)
    full = [r for k, r in runs.items() if "first" not in k]
    return {
        "data": f"{days} days x {rows_per_day:,} tiled XBTUSD snapshots = {days * rows_per_day:,} rows, 67 features",
        "runs": runs,
        "speedup_pool_2_vs_pool_1": round(runs["pool_1"]["wall_s"] / runs["pool_2"]["wall_s"], 2),
        "speedup_pool_2_vs_serial": round(runs["serial"]["wall_s"] / runs["pool_2"]["wall_s"], 2),
        "speedup_ray_2_vs_pool_1": round(runs["pool_1"]["wall_s"] / runs["ray_2"]["wall_s"], 2),
        "speedup_threads_2_vs_serial": round(runs["serial"]["wall_s"] / runs["threads_2"]["wall_s"], 2),
        "same_table_everywhere": len({r["table_digest"] for r in full}) == 1,
        "peak_rss_mb_per_worker_quarter_vs_all": [runs[f"pool_2_first_{quarter}_days"]["peak_rss_mb_per_worker"],
                                                  runs["pool_2"]["peak_rss_mb_per_worker"]],
    }


def day_files(n_files: int, rows: int) -> list[Path]:
    """``n_files`` BitMEX orderbook10 CSV.gz files of ``rows`` rows each, file k shifted by k days (distinct
    content, so none is skipped as already ingested)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from bench._tiles import tiled_bitmex

    out = []
    base = None
    for k in range(n_files):
        f = WORK / f"bitmex_day{k}_{rows}.csv.gz"
        if not f.exists():
            if base is None:
                from bench._tiles import BITMEX_COLUMNS

                base = pacsv.read_csv(tiled_bitmex(rows, gz=True),
                                      read_options=pacsv.ReadOptions(column_names=BITMEX_COLUMNS)).slice(0, rows)
            moment = pc.add(base["moment"], pa.scalar(k * 86_400, pa.duration("s")))
            t = base.set_column(0, "moment", pc.strftime(moment, "%Y-%m-%d %H:%M:%S"))
            with pa.CompressedOutputStream(str(f) + ".tmp", "gzip") as sink:
                pacsv.write_csv(t, sink, write_options=pacsv.WriteOptions(include_header=False,
                                                                          quoting_style="needed"))
            os.replace(str(f) + ".tmp", f)
        out.append(f)
    return out


def ingest_part(n_files: int, rows: int) -> dict:
    """Ingest of ``n_files`` files: read and mapped in this process vs by a 2-process pool (validated and
    stored here in file order either way); the stores must be equal."""
    import contextlib
    import io

    from hydra import compose, initialize_config_dir

    from l2exp.config import CONF_DIR
    from l2exp.data.ingest import ingest
    from l2exp.modes.build import data_source
    from l2exp.modes.build import store as store_of
    from l2exp.modes.ingest import options, validator

    files = day_files(n_files, rows)
    out: dict = {"data": f"{n_files} BitMEX orderbook10 CSV.gz files x {rows:,} rows"}
    digests = {}
    for name, compute in (("serial", None), ("pool_2", LocalPool(workers=2))):
        best = float("inf")
        for _ in range(2):
            work = Path(tempfile.mkdtemp(prefix="l2exp-ingest-"))
            with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
                cfg = compose("config", overrides=["mode=ingest", "mode.progress=false", "data=bitmex_ob10",
                                                   f"data.path={WORK}/bitmex_day*_{rows}.csv.gz", f"workdir={work}"])
            os.sync()
            t = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                s = ingest(data_source(cfg), store_of(cfg), validator(cfg), options(cfg), compute)
            best = min(best, time.perf_counter() - t)
            digests[name] = sorted(v.get("xxh3", v.get("blake2b"))  # stores before XXH3 keyed files by BLAKE2b
                                   for m in store_of(cfg).manifests() for v in m["files"].values())
            shutil.rmtree(work, ignore_errors=True)
        out[name] = {"wall_s": round(best, 2), "rows_per_s": round(s["rows_in"] / best), "rows": s["rows_in"]}
    out["speedup_pool_2_vs_serial"] = round(out["serial"]["wall_s"] / out["pool_2"]["wall_s"], 2)
    out["same_store"] = digests["serial"] == digests["pool_2"]
    assert len(files) == n_files
    return out


def sweep_part(trials: int) -> dict:
    from tests.mlflow_server import start_server, stop_server
    from tests.ray_cluster import local_cluster

    grid = ["model.n_estimators=40,80", "features=minimal,full", "model.learning_rate=0.05,0.1",
            "model.num_leaves=15,31"]
    grid = grid[: max(1, int(np.log2(trials)))]
    work = Path(tempfile.mkdtemp(prefix="l2exp-sweep-"))
    proc, uri = start_server(work)
    env = dict(os.environ, L2EXP_WORKDIR=str(work), MLFLOW_TRACKING_URI=uri, RAY_USAGE_STATS_ENABLED="0",
               RAY_AUTH_MODE="disabled")
    base = [sys.executable, "-m", "l2exp.cli", "-m", "mode=train", "tracking=server", "data.reader.n_snapshots=60000",
            "mode.progress=false", *grid]
    out = {"grid": grid, "trials": 2 ** len(grid)}
    try:
        # features cached first, so neither launcher pays for them inside its timing
        subprocess.run([sys.executable, "-m", "l2exp.cli", "mode=features", "data.reader.n_snapshots=60000",
                        "mode.progress=false"], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "l2exp.cli", "mode=features", "data.reader.n_snapshots=60000",
                        "features=minimal", "mode.progress=false"], env=env, check=True, capture_output=True)
        t = time.perf_counter()
        subprocess.run(base, env=env, check=True, capture_output=True)
        out["basic_launcher_s"] = round(time.perf_counter() - t, 1)
        with local_cluster(2) as address:
            t = time.perf_counter()
            subprocess.run([*base, "hydra/launcher=ray_cluster"], env={**env, "RAY_ADDRESS": address},
                           check=True, capture_output=True)
            out["ray_launcher_s"] = round(time.perf_counter() - t, 1)
        out["speedup_ray_vs_basic"] = round(out["basic_launcher_s"] / out["ray_launcher_s"], 2)
    finally:
        stop_server(proc)
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=16)
    ap.add_argument("--rows-per-day", type=int, default=500_000)
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--only-ingest", action="store_true")
    ap.add_argument("--ingest-files", type=int, default=4)
    ap.add_argument("--ingest-rows", type=int, default=250_000)
    args = ap.parse_args()
    res = {"machine": f"{os.cpu_count()} CPUs", "ingest": ingest_part(args.ingest_files, args.ingest_rows)}
    if args.only_ingest:
        print(json.dumps(res, indent=2))
        return
    res["features"] = features_part(args.days, args.rows_per_day)
    if not args.skip_sweep:
        res["sweep"] = sweep_part(args.trials)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
