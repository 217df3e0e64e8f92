"""The feature table for a data source: store -> features (+ warm-up flag), cached as Parquet.

The cache key is the digest of the stored data (content digests of every ingested file, levels)
plus the feature set's fingerprint, so a sweep over models reuses the table and a change of data or
parameters recomputes it. The table is stored and computed per (symbol, UTC day) partition
(:mod:`l2exp.features.partitioned`) on the backend the cache was given (:mod:`l2exp.compute`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from l2exp.compute import Serial
from l2exp.data.stores.base import L2Store
from l2exp.errors import UserError
from l2exp.features.partitioned import (
    BOOK_COLUMNS,
    PartitionedTable,
    RowWindow,
    build_partitioned,
    read_partitioned,
)
from l2exp.features.registry import FeatureSet


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
    blob = json.dumps({"files": sorted(m["digest"] for m in manifests), "levels": levels,
                       "content": store.content_digest()})
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def choose_symbol(symbols: pd.Series, wanted: str | None, data_name: str, key: str) -> str:
    """The configured symbol (config key ``key``), or the most frequent one; unknown -> a clear error."""
    counts = symbols.value_counts()
    symbol = str(wanted) if wanted else str(counts.index[0])
    if symbol not in counts.index:
        raise UserError(f"symbol {symbol!r} is not in data={data_name}", where=key,
                        fix=f"Symbols: {list(counts.index)}")
    return symbol


@dataclass
class FeatureCache:
    """Feature tables of one data source under ``root`` (``<workdir>/cache/features``), computed on
    ``compute`` when missing."""

    root: Path
    data_name: str
    levels: int
    compute: Any = None  # l2exp.compute backend; None = Serial()

    def directory(self, digest: str, fs: FeatureSet) -> Path:
        """The cache key: data name, data digest, feature set name and fingerprint."""
        return Path(self.root) / f"{self.data_name}-{digest}-{fs.name}-{fs.fingerprint()}"

    def partitioned(self, store: L2Store, fs: FeatureSet) -> tuple[PartitionedTable, str]:
        """The partitioned table of ``store`` x ``fs`` (computed unless cached) and the data digest."""
        fs.check_levels(self.levels, f"data={self.data_name}")
        digest = data_digest(store, self.levels)
        table = build_partitioned(store, fs, self.levels, self.directory(digest, fs), self.compute or Serial())
        return table, digest

    def load(self, store: L2Store, fs: FeatureSet, window: RowWindow | None = None) -> FeatureTable:
        """The feature table in memory: every row, or those of ``window`` (a time range / row budget)."""
        t0 = time.perf_counter()
        pt, digest = self.partitioned(store, fs)
        t = read_partitioned(pt, fs.names, window)
        return FeatureTable(t[BOOK_COLUMNS], t[fs.names], t["ready"], digest, pt.directory, pt.cache_hit,
                            time.perf_counter() - t0)
