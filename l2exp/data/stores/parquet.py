"""Parquet dataset partitioned ``symbol=<S>/date=<YYYY-MM-DD>/`` -- the fast path for research reads.

Crash safety: a source file's output is written under ``_staging/<digest>/`` and moved into the
dataset only when the whole file is done, then its manifest ``_manifest/<digest>.json`` is written.
Part files are named by the source digest, so a crash between the moves is repaired on the next
run by deleting that digest's parts and redoing the file. Folders starting with ``_`` are ignored
by pyarrow's dataset discovery.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from l2exp.data.stores.base import IngestWriter, L2Store, rejects_schema
from l2exp.schema import arrow_schema

_PARTITIONING = ds.partitioning(pa.schema([("symbol", pa.string()), ("date", pa.string())]), flavor="hive")


class _ParquetWriter(IngestWriter):
    def __init__(self, store: ParquetStore, digest: str, path: str) -> None:
        self.store, self.digest, self.path = store, digest, path
        self.stage = store.root / "_staging" / f"{digest}-{os.getpid()}"  # per writer: never another's files
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.rejects: pq.ParquetWriter | None = None
        self.file_schema = arrow_schema(store.levels).remove(1)  # symbol lives in the partition path
        self.file_schema = self.file_schema.append(pa.field("row_key", pa.int64()))

    def write(self, accepted: pa.Table, keys: Any) -> int:
        if accepted.num_rows == 0:
            return 0
        ts = accepted.column("timestamp").to_numpy()
        day = ts // 86_400_000_000_000
        sym = pc.dictionary_encode(accepted.column("symbol")).combine_chunks()
        sym_codes = sym.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        sym_names = sym.dictionary.to_pylist()
        table = accepted.drop_columns(["symbol"]).append_column("row_key", pa.array(keys, pa.int64()))
        part = (sym_codes << 32) + (day - day.min())
        uniq, inverse = np.unique(part, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        for u in range(len(uniq)):
            idx = order[bounds[u]:bounds[u + 1]]
            key = (sym_names[int(sym_codes[idx[0]])], str(np.datetime64(int(day[idx[0]]), "D")))
            w = self.writers.get(key)
            if w is None:
                d = self.stage / f"symbol={quote(key[0], safe='')}" / f"date={key[1]}"
                d.mkdir(parents=True, exist_ok=True)
                w = pq.ParquetWriter(d / f"part-{self.digest[:20]}.parquet", self.file_schema,
                                     compression="snappy",  # ~3x cheaper to write than zstd
                                     use_dictionary=["exchange"])  # dictionaries of unique floats: wasted work
                self.writers[key] = w
            part_table = table if len(uniq) == 1 else table.take(pa.array(idx))
            w.write_table(part_table.cast(self.file_schema))
        return accepted.num_rows

    def write_rejects(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        if self.rejects is None:
            (self.stage / "_rejects").mkdir(exist_ok=True)
            self.rejects = pq.ParquetWriter(self.stage / "_rejects" / f"{self.digest[:20]}.parquet",
                                            rejects_schema(self.store.levels))
        self.rejects.write_table(rejects.cast(rejects_schema(self.store.levels)))

    def commit(self, manifest: dict[str, Any]) -> None:
        for w in self.writers.values():
            w.close()
        if self.rejects is not None:
            self.rejects.close()
        root = self.store.root
        for f in sorted(self.stage.rglob("*.parquet")):
            rel = f.relative_to(self.stage)
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            f.replace(dest)  # atomic per file
        (root / "_manifest").mkdir(exist_ok=True)
        tmp = root / "_manifest" / f".{self.digest}.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=1))
        tmp.replace(root / "_manifest" / f"{self.digest}.json")
        shutil.rmtree(self.stage, ignore_errors=True)

    def abort(self) -> None:
        for w in self.writers.values():
            w.close()
        if self.rejects is not None:
            self.rejects.close()
        shutil.rmtree(self.stage, ignore_errors=True)


class ParquetStore(L2Store):
    def __init__(self, root: str, levels: int, lock_wait_s: float = 0.0) -> None:
        self.root = Path(root)
        self.levels = int(levels)
        self.lock_wait_s = float(lock_wait_s)

    def lock_path(self) -> Path:
        return self.root / ".writer.lock"

    def recover(self) -> None:
        """With the lock held no other writer is alive: any staging left is a dead writer's."""
        shutil.rmtree(self.root / "_staging", ignore_errors=True)

    def location(self) -> str:
        return str(self.root)

    def done(self, digest: str) -> dict[str, Any] | None:
        f = self.root / "_manifest" / f"{digest}.json"
        if f.exists():
            return json.loads(f.read_text())
        # a crash after some parts moved in but before the manifest: remove them, redo the file
        for part in self.root.glob(f"symbol=*/date=*/part-{digest[:20]}.parquet"):
            part.unlink()
        rej = self.root / "_rejects" / f"{digest[:20]}.parquet"
        if rej.exists():
            rej.unlink()
        return None

    def begin(self, digest: str, path: str) -> IngestWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        return _ParquetWriter(self, digest, path)

    def _dataset(self) -> ds.Dataset | None:
        if not any(self.root.glob("symbol=*/date=*/*.parquet")):
            return None
        return ds.dataset(self.root, format="parquet", partitioning=_PARTITIONING)

    def read(self, symbols: list[str] | None = None, start_ns: int | None = None, end_ns: int | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        data = self._dataset()
        schema = arrow_schema(self.levels)
        if data is None:
            return schema.empty_table().to_pandas()
        flt = None
        if symbols:
            flt = pc.field("symbol").isin(list(symbols))
        if start_ns is not None:
            f = pc.field("timestamp") >= start_ns
            flt = f if flt is None else flt & f
        if end_ns is not None:
            f = pc.field("timestamp") < end_ns
            flt = f if flt is None else flt & f
        cols = list(schema.names) if columns is None else list(dict.fromkeys(
            ["timestamp", "symbol", "exchange", *columns]))
        table = data.to_table(columns=cols, filter=flt)
        if not _sorted(table):  # partitions hold time-ordered parts: usually nothing to do
            table = table.sort_by([("symbol", "ascending"), ("exchange", "ascending"), ("timestamp", "ascending")])
        return table.to_pandas(split_blocks=True, self_destruct=True)

    def read_rejects(self) -> pd.DataFrame:
        files = sorted((self.root / "_rejects").glob("*.parquet"))
        if not files:
            return rejects_schema(self.levels).empty_table().to_pandas()
        return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()

    def count(self) -> int:
        data = self._dataset()
        return 0 if data is None else data.count_rows()

    def manifests(self) -> list[dict[str, Any]]:
        return [json.loads(f.read_text()) for f in sorted((self.root / "_manifest").glob("*.json"))]


def _sorted(table: pa.Table) -> bool:
    """True when rows are already ordered by (symbol, exchange, timestamp), checked on codes."""
    if table.num_rows < 2:
        return True
    keys = []
    for name in ("symbol", "exchange"):
        enc = pc.dictionary_encode(table.column(name)).combine_chunks()
        rank = np.argsort(np.argsort(np.asarray(enc.dictionary.to_pylist(), dtype=object)))
        keys.append(rank[enc.indices.to_numpy(zero_copy_only=False)])
    ts = table.column("timestamp").to_numpy()
    return _is_lex_sorted(keys[0], keys[1], ts)


def _is_lex_sorted(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> bool:
    da, db, dt = np.diff(a), np.diff(b), np.diff(t)
    return bool(np.all((da > 0) | ((da == 0) & ((db > 0) | ((db == 0) & (dt >= 0))))))
