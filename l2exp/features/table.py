"""The feature table for a data source: store -> features (+ warm-up flag), cached as Parquet.

The cache key is the digest of the stored data (content digests of every ingested file, levels)
plus the feature set's fingerprint, so a sweep over models reuses the table and a change of data or
parameters recomputes it. If the store is empty the source is ingested first (said on screen).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig

from l2exp.config import instantiate
from l2exp.data.stores.base import L2Store
from l2exp.errors import UserError
from l2exp.features.registry import FeatureSet
from l2exp.summary import console


@dataclass
class FeatureTable:
    book: pd.DataFrame  # canonical columns used downstream (timestamp, symbol, exchange, level-1 book)
    features: pd.DataFrame
    ready: pd.Series  # False on warm-up rows
    data_digest: str
    cache_path: Path
    cache_hit: bool
    seconds: float


def data_digest(store: L2Store, levels: int) -> str:
    manifests = store.manifests()
    blob = json.dumps({"files": sorted(m["digest"] for m in manifests), "levels": levels})
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def open_store(cfg: DictConfig) -> L2Store:
    """The store of ``cfg.data``; ingests the source first when it holds nothing yet. Damaged or
    half-written data is refused before anything uses it (:meth:`L2Store.check_before_use`)."""
    store: L2Store = instantiate(cfg.store)
    store.check_before_use()
    if store.count() == 0:
        console.print(f"[bold]store {store.location()} is empty: ingesting data={cfg.data.name} first[/]")
        from l2exp.data.ingest import run_ingest

        run_ingest(cfg)
        store = instantiate(cfg.store)
        if store.count() == 0:
            raise UserError(f"data={cfg.data.name} produced no accepted rows", where=str(cfg.data.path),
                            fix="Run l2exp mode=validate data=... to see why every row was rejected.")
    return store


def choose_symbol(symbols: pd.Series, wanted: str | None, data_name: str, key: str) -> str:
    """The configured symbol (config key ``key``), or the most frequent one; unknown -> a clear error."""
    counts = symbols.value_counts()
    symbol = str(wanted) if wanted else str(counts.index[0])
    if symbol not in counts.index:
        raise UserError(f"symbol {symbol!r} is not in data={data_name}", where=key,
                        fix=f"Symbols: {list(counts.index)}")
    return symbol


BOOK_COLUMNS = ["timestamp", "symbol", "exchange", "bid_price_1", "bid_size_1", "ask_price_1", "ask_size_1"]


def build_feature_table(cfg: DictConfig, fs: FeatureSet | None = None, store: L2Store | None = None) -> FeatureTable:
    t0 = time.perf_counter()
    levels = int(cfg.levels)
    fs = fs or instantiate(cfg.features)
    fs.check_levels(levels, f"data={cfg.data.name}")
    store = store or open_store(cfg)
    digest = data_digest(store, levels)
    key = f"{cfg.data.name}-{digest}-{fs.name}-{fs.fingerprint()}"
    path = Path(str(cfg.workdir)) / "cache" / "features" / f"{key}.parquet"
    if path.exists():
        t = pq.read_table(path).to_pandas()
        book = t[BOOK_COLUMNS]
        return FeatureTable(book, t[fs.names], t["ready"], digest, path, True, time.perf_counter() - t0)
    book = store.read()
    res = fs.compute(book, levels)
    head = book[BOOK_COLUMNS].reset_index(drop=True)
    features = res.features.reset_index(drop=True)
    ready = pd.Series(res.ready, name="ready")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    _write_cache(head, features, ready, tmp)
    tmp.replace(path)
    return FeatureTable(head, features, ready, digest, path, False, time.perf_counter() - t0)


def _write_cache(head: pd.DataFrame, features: pd.DataFrame, ready: pd.Series, path: Path) -> None:
    """One Parquet file: the book columns, every feature, ``ready``. Built column by column from the
    arrays (no concatenated frame in between) and written without dictionary encoding of the float
    columns -- a cache is read back whole, and Parquet's dictionary attempt on 67 float columns of
    distinct values cost more than the compression (2 M rows: 3.2 s -> see bench/features.py)."""
    table = pa.Table.from_pandas(head, preserve_index=False)
    # the engine's matrix is column-major, so each feature's values are contiguous and Arrow wraps them
    # without a copy (a row-major frame would be transposed once here; 67 strided copies took 1.7 s)
    by_column = np.ascontiguousarray(features.to_numpy(np.float64).T)
    arrays = [*table.columns, *(pa.array(col) for col in by_column), pa.array(ready.to_numpy())]
    table = pa.Table.from_arrays(arrays, names=[*table.column_names, *features.columns, "ready"])
    pq.write_table(table, path, use_dictionary=["symbol", "exchange"], write_statistics=["timestamp"])


def run_features(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.summary import print_table, print_where, write_summary

    ft = build_feature_table(cfg)
    feats = ft.features
    ready = ft.ready.to_numpy()
    nan_counts = feats[ready].isna().sum()
    summary = {
        "mode": "features", "data": str(cfg.data.name), "feature_set": str(cfg.features.name),
        "n_features": feats.shape[1], "rows_in": len(feats), "rows_out": int(ready.sum()),
        "warmup_rows": int((~ready).sum()), "feature_names": list(feats.columns),
        "undefined_values_after_warmup": {k: int(v) for k, v in nan_counts.items() if v},
        "cache": str(ft.cache_path), "cache_hit": ft.cache_hit, "seconds": round(ft.seconds, 3),
        "data_digest": ft.data_digest,
    }
    assert summary["rows_in"] == summary["rows_out"] + summary["warmup_rows"]
    undefined = summary["undefined_values_after_warmup"]
    print_table("features: rows_in = rows_out + warmup_rows", [
        ("data / set", f"{summary['data']} / {summary['feature_set']}"), ("features", summary["n_features"]),
        ("rows_in", f"{summary['rows_in']:,}"), ("rows_out (history complete)", f"{summary['rows_out']:,}"),
        ("warm-up rows (marked, kept out of training)", f"{summary['warmup_rows']:,}"),
        ("undefined values after warm-up", ", ".join(f"{k}: {v}" for k, v in undefined.items()) or "none"),
        ("cache", f"{'hit' if ft.cache_hit else 'written'}: {ft.cache_path}"), ("seconds", summary["seconds"]),
    ])
    if summary["rows_out"] == 0:
        console.print("[bold red]warning: no row has complete history: shorten the windows or use more data[/]")
    print_where([("feature table", ft.cache_path)])
    write_summary(summary)
    return summary
