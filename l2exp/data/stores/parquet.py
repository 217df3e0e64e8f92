"""Parquet dataset partitioned ``symbol=<S>/date=<YYYY-MM-DD>/`` -- the fast path for research reads.

Crash safety: a source file's output is written under ``_staging/<digest>/`` and moved into the
dataset only when the whole file is done, then its manifest ``_manifest/<digest>.json`` is written.
Part files are named by the source digest, so a crash between the moves is repaired on the next
run by deleting that digest's parts and redoing the file. Folders starting with ``_`` are ignored
by pyarrow's dataset discovery.

Integrity: parts are written with Parquet page checksums (verified on every read) and each source's
manifest lists its files with their size and BLAKE2b digest. Before data is used
(:meth:`L2Store.check_before_use`) files changed since their last verification are re-hashed
(``_verified.json`` caches size + mtime + digest); ``mode=verify`` re-hashes everything and
``mode.repair=true`` drops what is damaged and re-ingests it.

Symbols: the partition folder is ``symbol=<URI-escaped symbol>``; a symbol whose escaped form is
longer than :data:`MAX_DIR_CHARS` (file systems cap a name at 255 bytes) gets
``symbol=<escaped prefix>~<hash>`` and the exact symbol is kept beside its parts in
``_symbol.txt`` (ignored by discovery), from which reads restore it -- no row is lost for its name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from l2exp.data.stores.base import IngestWriter, Issue, L2Store, Partition, rejects_schema
from l2exp.errors import UserError
from l2exp.files import hash_file
from l2exp.schema import RECV_TS, SIDE_TABLES, arrow_schema
from l2exp.sessions import DAY_NS

_PARTITIONING = ds.partitioning(pa.schema([("symbol", pa.string()), ("date", pa.string())]), flavor="hive")
MAX_DIR_CHARS = 200  # "symbol=" + this stays under the 255-byte name limit of common file systems
_ALIAS_MARK = "~h"


def _utc_day(ts_ns: int) -> str:
    """The ``date=`` folder of a time (its UTC day, ISO: compares as text)."""
    return str(np.datetime64(int(ts_ns), "ns").astype("datetime64[D]"))


def partition_value(symbol: str) -> str:
    """The symbol as it appears (URI-decoded) in its partition folder name: itself, or for names too
    long for a folder, an escaped-safe prefix + ``~h`` + a 64-bit hash of the exact symbol."""
    if len(quote(symbol, safe="")) <= MAX_DIR_CHARS and _ALIAS_MARK not in symbol:
        return symbol
    digest = hashlib.blake2b(symbol.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    prefix = ""
    for ch in symbol:  # a prefix whose escaped form fits, cut between characters
        if len(quote(prefix + ch, safe="")) > MAX_DIR_CHARS - 40:
            break
        prefix += ch
    return f"{prefix}{_ALIAS_MARK}{digest}"


def partition_dir(symbol: str) -> str:
    return f"symbol={quote(partition_value(symbol), safe='')}"



def _read_manifest(f: Path) -> dict[str, Any]:
    """One committed source's manifest; unreadable JSON (a truncated write, a bit flip) is a
    :class:`UserError` naming the file and the repair (``mode=verify`` reads past it)."""
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"the store's manifest {f.name} is damaged ({type(exc).__name__}): which rows it commits "
                        "cannot be told", where=str(f),
                        fix="l2exp mode=verify mode.repair=true (same data= and store=) drops that source and "
                            "ingests it again") from None

class _ParquetWriter(IngestWriter):
    def __init__(self, store: ParquetStore, digest: str, path: str) -> None:
        self.store, self.digest, self.path = store, digest, path
        self.stage = store.root / "_staging" / f"{digest}-{os.getpid()}"  # per writer: never another's files
        shutil.rmtree(self.stage, ignore_errors=True)
        self.stage.mkdir(parents=True)
        self.writers: dict[tuple[str, str], pq.ParquetWriter] = {}
        self.rejects: pq.ParquetWriter | None = None
        self.sides: dict[str, pq.ParquetWriter] = {}
        # symbol lives in the partition path; every field is required: accepted rows have no nulls (a missing
        # level is NaN), and optional fields cost Parquet a definition level per value -- 22 % of the
        # encoding. Parts written before (optional fields) read together with these (tested).
        schema = arrow_schema(store.levels).remove(1).append(pa.field("row_key", pa.int64()))
        self.file_schema = pa.schema([f.with_nullable(f.name == RECV_TS) for f in schema])  # null: one clock
        self.known_keys: dict[tuple[str, str], np.ndarray] = {}  # per partition: content keys already stored

    def _known(self, key: tuple[str, str]) -> np.ndarray:
        """Content keys of the committed rows in partition ``key`` (read once per writer): a row already
        stored -- by another source file, or by an earlier recording of the same feed -- is not
        stored again, as SQLite's UNIQUE row_key does."""
        if key not in self.known_keys:
            d = self.store.root / partition_dir(key[0]) / f"date={key[1]}"
            files = sorted(d.glob("*.parquet")) if d.is_dir() else []
            arrays = [pq.read_table(f, columns=["row_key"]).column(0).to_numpy() for f in files]
            self.known_keys[key] = np.sort(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)
        return self.known_keys[key]

    def write(self, accepted: pa.Table, keys: Any) -> int:
        """Rows newly added: accepted rows whose content key the store holds already are skipped."""
        if accepted.num_rows == 0:
            return 0
        keys = np.asarray(keys, dtype=np.int64)
        ts = accepted.column("timestamp").to_numpy()
        day = ts // DAY_NS
        sym = pc.dictionary_encode(accepted.column("symbol")).combine_chunks()
        sym_codes = sym.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        sym_names = sym.dictionary.to_pylist()
        table = accepted.drop_columns(["symbol"]).append_column("row_key", pa.array(keys, pa.int64()))
        days = day - day.min()
        part = sym_codes * (int(days.max()) + 1) + days  # (symbol, day) -> 0 .. symbols x days - 1
        step = np.diff(part)
        if not step.any():  # one (symbol, day): the usual chunk, no grouping
            groups = [np.arange(len(part))]
        elif (step >= 0).all():  # grouped already (one symbol crossing midnight): runs in file order
            bounds = np.concatenate([[0], np.flatnonzero(step) + 1, [len(part)]])
            groups = [np.arange(bounds[u], bounds[u + 1]) for u in range(len(bounds) - 1)]
        else:  # interleaved symbols: each (symbol, day)'s rows in file order
            # the (symbol, day) keys present: counted when their range is small (the usual few symbols), else sorted
            present = np.flatnonzero(np.bincount(part)) if int(part.max()) < 4 * len(part) else np.unique(part)
            if len(present) <= 8:  # a pass per group beats a stable sort of the chunk (7 vs 8.5 ms, 2 symbols)
                groups = [np.flatnonzero(part == u) for u in present]
            else:
                order = np.argsort(part, kind="stable")
                bounds = np.concatenate([[0], np.flatnonzero(np.diff(part[order])) + 1, [len(part)]])
                groups = [order[bounds[u]:bounds[u + 1]] for u in range(len(bounds) - 1)]
        n_parts = len(groups)
        added = 0
        for idx in groups:
            key = (sym_names[int(sym_codes[idx[0]])], str(np.datetime64(int(day[idx[0]]), "D")))
            known = self._known(key)
            if len(known):
                pos = np.minimum(np.searchsorted(known, keys[idx]), len(known) - 1)
                idx = idx[known[pos] != keys[idx]]
                if not len(idx):
                    continue
            added += len(idx)
            w = self.writers.get(key)
            if w is None:
                sym_dir = self.stage / partition_dir(key[0])
                d = sym_dir / f"date={key[1]}"
                d.mkdir(parents=True, exist_ok=True)
                if partition_value(key[0]) != key[0]:
                    (sym_dir / "_symbol.txt").write_text(key[0], encoding="utf-8", errors="surrogatepass")
                w = pq.ParquetWriter(d / f"part-{self.digest[:20]}.parquet", self.file_schema,
                                     compression="snappy",  # ~3x cheaper to write than zstd
                                     write_page_checksum=True,
                                     use_dictionary=["exchange"],  # dictionaries of unique floats: wasted work
                                     # time ranges are what reads filter on; min/max of 40 book columns
                                     # cost 13 % of the encoding and no read uses them
                                     write_statistics=["timestamp"])
                self.writers[key] = w
            if n_parts == 1 and len(idx) == table.num_rows:
                part_table = table
            elif idx[-1] - idx[0] + 1 == len(idx):  # one run of rows (time-ordered data, a day boundary): no copy
                part_table = table.slice(int(idx[0]), len(idx))
            else:
                part_table = pc.take(table, pa.array(idx), boundscheck=False)  # idx: positions in the table
            w.write_table(part_table.cast(self.file_schema))
        return added

    def write_rejects(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        if self.rejects is None:
            (self.stage / "_rejects").mkdir(exist_ok=True)
            self.rejects = pq.ParquetWriter(self.stage / "_rejects" / f"{self.digest[:20]}.parquet",
                                            rejects_schema(self.store.levels), write_page_checksum=True)
        self.rejects.write_table(rejects.cast(rejects_schema(self.store.levels)))

    def write_side(self, kind: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        schema = SIDE_TABLES[kind]
        if kind not in self.sides:
            (self.stage / f"_{kind}").mkdir(exist_ok=True)
            self.sides[kind] = pq.ParquetWriter(self.stage / f"_{kind}" / f"{self.digest[:20]}.parquet", schema,
                                                compression="zstd", write_page_checksum=True)
        self.sides[kind].write_table(table.select(schema.names).cast(schema))

    def _close(self) -> None:
        for w in [*self.writers.values(), *self.sides.values()]:
            w.close()
        if self.rejects is not None:
            self.rejects.close()

    def commit(self, manifest: dict[str, Any]) -> None:
        self._close()
        root = self.store.root
        staged = sorted([*self.stage.rglob("*.parquet"), *self.stage.glob("symbol=*/_symbol.txt")])
        manifest = {**manifest, "files": {str(f.relative_to(self.stage)): {"bytes": f.stat().st_size,
                                                                            "xxh3": file_digest(f)}
                                          for f in staged if f.suffix == ".parquet"}}
        for f in staged:
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
        self._close()
        shutil.rmtree(self.stage, ignore_errors=True)


class ParquetStore(L2Store):
    background_writes = True  # a writer is files of its own: any one thread may write them

    def __init__(self, root: str, levels: int, lock_wait_s: float = 0.0, allow_uncommitted: bool = False) -> None:
        self.root = Path(root)
        self.levels = int(levels)
        self.lock_wait_s = float(lock_wait_s)
        self.allow_uncommitted = bool(allow_uncommitted)

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
            return _read_manifest(f)
        # a crash after some parts moved in but before the manifest: remove them, redo the file
        self.drop_sources({digest})
        return None

    def begin(self, digest: str, path: str) -> IngestWriter:
        self.root.mkdir(parents=True, exist_ok=True)
        return _ParquetWriter(self, digest, path)

    def _dataset(self) -> ds.Dataset | None:
        if not any(self.root.glob("symbol=*/date=*/*.parquet")):
            return None
        fmt = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
            page_checksum_verification=True))
        with self._readable():
            return ds.dataset(self.root, format=fmt, partitioning=_PARTITIONING)

    @contextlib.contextmanager
    def _readable(self) -> Iterator[None]:
        """pyarrow's errors on a damaged file -> one message naming it, with the repair."""
        try:
            yield
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"the store {self.root} cannot be read: {str(exc)[:300]}", where=str(self.root),
                            fix="l2exp mode=verify mode.repair=true data=<this data> names the damaged files, "
                                "drops them and re-ingests them") from None

    def read(self, symbols: list[str] | None = None, start_ns: int | None = None, end_ns: int | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        data = self._dataset()
        schema = arrow_schema(self.levels)
        if data is None:
            return schema.empty_table().to_pandas()
        # prune by the folders (symbol, UTC date) only; the time bounds are applied to the rows themselves. A
        # filter on ``timestamp`` would be pushed to the footers' statistics, which no digest covers between
        # deep checks: an edited footer (size and mtime kept) made read(start_ns=...) return 11,283 of 74,498 rows
        flt = None
        if symbols:
            flt = pc.field("symbol").isin([partition_value(s) for s in symbols])
        if start_ns is not None:
            f = pc.field("date") >= _utc_day(start_ns)
            flt = f if flt is None else flt & f
        if end_ns is not None:
            f = pc.field("date") <= _utc_day(end_ns)
            flt = f if flt is None else flt & f
        cols = list(schema.names) if columns is None else list(dict.fromkeys(
            ["timestamp", "symbol", "exchange", *columns]))
        old = RECV_TS in cols and RECV_TS not in data.schema.names  # parts written before receive times
        with self._readable():
            table = data.to_table(columns=[c for c in cols if not (old and c == RECV_TS)], filter=flt)
        if old:
            table = table.append_column(RECV_TS, pa.nulls(table.num_rows, pa.int64()))
        if start_ns is not None or end_ns is not None:
            ts = table.column("timestamp")
            keep = None
            if start_ns is not None:
                keep = pc.greater_equal(ts, pa.scalar(start_ns, ts.type))
            if end_ns is not None:
                k = pc.less(ts, pa.scalar(end_ns, ts.type))
                keep = k if keep is None else pc.and_(keep, k)
            table = table.filter(keep)
        table = self._restore_symbols(table)
        if not _sorted(table):  # partitions hold time-ordered parts: usually nothing to do
            table = table.sort_by([("symbol", "ascending"), ("exchange", "ascending"), ("timestamp", "ascending")])
        return table.to_pandas(split_blocks=True, self_destruct=True)

    def partitions(self) -> list[Partition]:
        """From the folder layout and the files' footers (row counts): no data is read, so planning a
        partition-parallel run over a year of days costs milliseconds, not a scan of every timestamp."""
        from urllib.parse import unquote

        counts: dict[tuple[str, int], int] = {}
        with self._readable():
            for f in self.root.glob("symbol=*/date=*/*.parquet"):
                sym_dir, date_dir = f.parent.parent, f.parent
                alias = sym_dir / "_symbol.txt"
                symbol = (alias.read_text(encoding="utf-8", errors="surrogatepass") if alias.exists()
                          else unquote(sym_dir.name.removeprefix("symbol=")))
                day = int(np.datetime64(date_dir.name.removeprefix("date="), "D").astype(np.int64))
                counts[(symbol, day)] = counts.get((symbol, day), 0) + pq.ParquetFile(f).metadata.num_rows
        return [Partition(s, d, n) for (s, d), n in sorted(counts.items())]

    def _restore_symbols(self, table: pa.Table) -> pa.Table:
        """Folder values of hashed (too long) symbols -> the exact symbols from ``_symbol.txt``."""
        aliases = {}
        for f in self.root.glob(f"symbol=*{_ALIAS_MARK}*/_symbol.txt"):
            real = f.read_text(encoding="utf-8", errors="surrogatepass")
            aliases[partition_value(real)] = real
        if not aliases or table.num_rows == 0:
            return table
        enc = pc.dictionary_encode(table.column("symbol")).combine_chunks()
        names = [aliases.get(v, v) for v in enc.dictionary.to_pylist()]
        real = pa.DictionaryArray.from_arrays(enc.indices, pa.array(names, pa.string())).cast(pa.string())
        return table.set_column(table.schema.get_field_index("symbol"), "symbol", real)

    def read_rejects(self) -> pd.DataFrame:
        files = sorted((self.root / "_rejects").glob("*.parquet"))
        if not files:
            return rejects_schema(self.levels).empty_table().to_pandas()
        return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()

    def read_side(self, kind: str, symbols: list[str] | None = None, start_ns: int | None = None,
                  end_ns: int | None = None) -> pd.DataFrame:
        """Rows in the order they were applied: source files in path order (consecutive captures), each
        file's rows as written (a buffered update applied after its snapshot keeps that place, though
        its event time is earlier), per symbol."""
        schema = SIDE_TABLES[kind]
        by_prefix = {d[:20]: m.get("path", "") for d, m in self._committed().items()}
        found = [f for f in (self.root / f"_{kind}").glob("*.parquet") if f.stem in by_prefix]
        files = [str(f) for f in sorted(found, key=lambda f: (by_prefix[f.stem], f.stem))]
        if not files:
            return schema.empty_table().to_pandas()
        ts = schema.names[0]
        flt = None
        for f in ([pc.field("symbol").isin(symbols)] if symbols else []) + (
                [pc.field(ts) >= start_ns] if start_ns is not None else []) + (
                [pc.field(ts) < end_ns] if end_ns is not None else []):
            flt = f if flt is None else flt & f
        fmt = ds.ParquetFileFormat(default_fragment_scan_options=ds.ParquetFragmentScanOptions(
            page_checksum_verification=True))
        with self._readable():
            table = ds.dataset(files, schema=schema, format=fmt).to_table(filter=flt, use_threads=False)
        return table.to_pandas().sort_values("symbol", kind="stable").reset_index(drop=True)

    def count(self) -> int:
        data = self._dataset()
        with self._readable():
            return 0 if data is None else data.count_rows()

    def missing_parts(self, manifest: dict[str, Any]) -> list[str]:
        return [rel for rel in (manifest.get("files") or {}) if not (self.root / rel).exists()]

    def manifests(self, skip_broken: bool = False) -> list[dict[str, Any]]:
        """Every committed source's manifest. One that is not readable JSON (a truncated write, a bit
        flip) is a :class:`UserError` pointing at ``mode=verify mode.repair=true`` -- which reads them with
        ``skip_broken`` (the damaged source is dropped and re-ingested, ``integrity_issues`` names it)."""
        out = []
        for f in sorted((self.root / "_manifest").glob("*.json")):
            try:
                out.append(_read_manifest(f))
            except UserError:
                if not skip_broken:
                    raise
        return out

    # ---- integrity
    def _committed(self) -> dict[str, dict[str, Any]]:
        out = {}
        for f in sorted((self.root / "_manifest").glob("*.json")):
            try:
                out[f.stem] = _read_manifest(f)
            except UserError:
                out[f.stem] = {"path": "?", "files": None, "broken_manifest": str(f)}
        return out

    def content_digest(self) -> str:
        """The digests of every committed part, as their manifests recorded them (``integrity_issues`` checks
        the parts against them before use)."""
        parts = sorted(f"{rel}:{info.get('xxh3') or info.get('blake2b')}" for m in self._committed().values()
                       for rel, info in (m.get("files") or {}).items() if isinstance(info, dict))
        return hashlib.blake2b("\n".join(parts).encode(), digest_size=12).hexdigest()

    def integrity_issues(self, deep: bool = False) -> list[Issue]:
        committed = self._committed()
        by_prefix = {d[:20]: d for d in committed}
        issues: list[Issue] = []
        for d, m in committed.items():
            if m.get("broken_manifest"):
                issues.append(Issue("corrupt", m["broken_manifest"], "manifest is not readable JSON", d))
        listed: dict[str, tuple[str, dict[str, Any] | None]] = {}
        for d, m in committed.items():
            for rel, info in (m.get("files") or {}).items():
                listed[rel] = (d, info)
        for rel in (p.relative_to(self.root) for p in self._part_files()):
            prefix = _source_prefix(rel)
            if prefix not in by_prefix:
                issues.append(Issue("uncommitted", str(self.root / rel),
                                    "no manifest: a writer stopped between moving its parts in and committing", None))
            elif str(rel) not in listed:
                listed[str(rel)] = (by_prefix[prefix], None)  # an older manifest without digests
        cache_file = self.root / "_verified.json"
        try:
            cache = json.loads(cache_file.read_text()) if cache_file.exists() else {}
        except (OSError, ValueError):
            cache = {}
        changed = False
        for rel, (d, info) in sorted(listed.items()):
            path = self.root / rel
            src = committed[d].get("path", "?")
            if not path.exists():
                issues.append(Issue("missing", str(path), f"listed by the manifest of {src}, gone", d))
                continue
            st = path.stat()
            if info is None:
                if deep:
                    try:
                        pq.read_table(path, page_checksum_verification=True)
                    except (pa.ArrowException, OSError) as exc:
                        issues.append(Issue("corrupt", str(path), f"unreadable: {str(exc)[:200]} (from {src})", d))
                        continue
                issues.append(Issue("unverifiable", str(path), f"no digest recorded (from {src}): re-ingest it "
                                    "to protect it", d))
                continue
            algo = "xxh3" if "xxh3" in info else "blake2b"  # stores written before XXH3: BLAKE2b
            stamp = [st.st_size, st.st_mtime_ns, info[algo]]
            if not deep and cache.get(str(rel)) == stamp:
                continue
            if st.st_size != info["bytes"] or file_digest(path, algo) != info[algo]:
                issues.append(Issue("corrupt", str(path), f"content differs from what was written "
                                    f"({st.st_size:,} bytes, {info['bytes']:,} written; from {src})", d))
                continue
            cache[str(rel)] = stamp
            changed = True
        if changed:
            tmp = cache_file.with_name(f".verified.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(cache))
                tmp.replace(cache_file)
            except OSError:  # a read-only store: verified again next time
                tmp.unlink(missing_ok=True)
        return issues

    def drop_sources(self, digests: set[str]) -> int:
        n = 0
        for d in digests:
            for part in [*self.root.glob(f"symbol=*/date=*/part-{d[:20]}.parquet"),
                         *(self.root / f"_{kind}" / f"{d[:20]}.parquet" for kind in ("rejects", *SIDE_TABLES)),
                         self.root / "_manifest" / f"{d}.json"]:
                if part.exists():
                    part.unlink()
                    n += 1
        return n

    def drop_uncommitted(self) -> int:
        """Parts on disk that no manifest owns (what ``done`` would remove before redoing their file)."""
        committed = {d[:20] for d in self._committed()}
        orphans = [p for p in self._part_files() if _source_prefix(p) not in committed]
        for p in orphans:
            p.unlink()
        return len(orphans)

    def _part_files(self) -> list[Path]:
        """Every data and rejects part in the dataset (staging excluded)."""
        return [*self.root.glob("symbol=*/date=*/*.parquet"),
                *(f for kind in ("rejects", *SIDE_TABLES) for f in self.root.glob(f"_{kind}/*.parquet"))]


def _source_prefix(part: Path) -> str:
    """The source digest prefix a part is named by (``part-<p>.parquet``, ``_rejects/<p>.parquet``,
    ``_deltas/<p>.parquet``, ``_trades/<p>.parquet``)."""
    return part.stem.removeprefix("part-")


def file_digest(path: Path, algo: str = "xxh3") -> str:
    """XXH3-128 (or, for manifests written before it, BLAKE2b-128) of a file's bytes. XXH3 is ~10x
    faster; the digest guards against damage, not against an attacker."""
    import hashlib

    import xxhash

    return hash_file(xxhash.xxh3_128() if algo == "xxh3" else hashlib.blake2b(digest_size=16), path)


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
