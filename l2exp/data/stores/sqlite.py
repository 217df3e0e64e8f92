"""SQLite store: table ``l2_training_data`` (the name existing tooling expects).

WAL journal, an index on (symbol, timestamp) and a UNIQUE 64-bit content key (``row_key``), so
``INSERT OR IGNORE`` makes re-ingest and a rerun after a crash add nothing twice. Each chunk is
one transaction. Rejects go to ``l2_rejects`` (unique on file, line, reason) and per-file
manifests to ``l2_ingest_files``: a row with no manifest yet is a file begun and not committed (a
killed ingest), and the data is refused until ingest finishes it (``check_before_use``).

Content check: ``row_key`` *is* a hash of the row's content (``validate.row_keys``), so every row is
re-hashed and compared with its key -- a flipped bit in any value, time or key is found (SQLite's own
``quick_check`` / ``integrity_check`` see page structure, not values: a flipped mantissa bit passed
both). Before use the check runs when the database (or its WAL) changed since it last passed (size and
mtime in ``<db>.verified.json``, with the sum of the keys as the store's content digest); ``mode=verify``
re-checks everything and adds ``PRAGMA quick_check``. Repair rebuilds the table from the source files
(identical content and order); recorded live data has no source: only its damaged rows are dropped.

SQLite reads into pandas at ~85k rows/s: research reads should go through the Parquet store.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from l2exp.data.stores.base import REJECT_META, IngestWriter, Issue, L2Store
from l2exp.errors import UserError
from l2exp.schema import RECV_TS, SIDE_TABLES, canonical_columns

VERIFY_ROWS = 200_000  # rows re-hashed per block
DAMAGED_ROWS = "*rows*"  # the Issue source of rows whose content differs from their key (they carry no source)


class _SqliteWriter(IngestWriter):
    def __init__(self, store: SqliteStore, digest: str, path: str) -> None:
        self.store, self.digest, self.path = store, digest, path
        with store.con:  # begun: rows may arrive before the manifest does
            store.con.execute("INSERT OR REPLACE INTO l2_ingest_files (digest, path, manifest) VALUES (?,?,NULL)",
                              (digest, path))
            for kind in SIDE_TABLES:  # side rows carry their source: a redo starts from none
                store.con.execute(f"DELETE FROM l2_{kind} WHERE source=?", (digest,))

    def write(self, accepted: pa.Table, keys: Any) -> int:
        if accepted.num_rows == 0:
            return 0
        cols = [accepted.column(c).to_pylist() if c in ("symbol", "exchange", RECV_TS)
                else accepted.column(c).to_numpy(zero_copy_only=False).tolist() for c in self.store.columns]
        cols.append(np.asarray(keys, dtype=np.int64).tolist())
        rows = zip(*cols, strict=True)
        con = self.store.con
        before = con.total_changes
        with con:
            con.executemany(self.store.insert_sql, rows)
        return con.total_changes - before

    def write_rejects(self, rejects: pa.Table) -> None:
        if rejects.num_rows == 0:
            return
        names = [*REJECT_META, "timestamp", "symbol"]
        cols = [rejects.column(c).to_pylist() for c in names]
        payload = rejects.drop_columns(names).to_pylist()
        rows = zip(*cols, [json.dumps(p) for p in payload], strict=True)
        with self.store.con:
            self.store.con.executemany(
                "INSERT OR IGNORE INTO l2_rejects (source_file, line, reason, detail, timestamp, symbol, book) "
                "VALUES (?,?,?,?,?,?,?)", rows)

    def write_side(self, kind: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        names = SIDE_TABLES[kind].names
        cols = [table.column(c).to_pylist() for c in names]
        with self.store.con:
            self.store.con.executemany(f"INSERT INTO l2_{kind} ({','.join(names)}, source) VALUES "
                                       f"({','.join('?' * (len(names) + 1))})",
                                       zip(*cols, [self.digest] * table.num_rows, strict=True))

    def commit(self, manifest: dict[str, Any]) -> None:
        with self.store.con:
            self.store.con.execute("INSERT OR REPLACE INTO l2_ingest_files (digest, path, manifest) VALUES (?,?,?)",
                                   (self.digest, self.path, json.dumps(manifest)))


class SqliteStore(L2Store):
    def __init__(self, path: str, levels: int, table: str = "l2_training_data", lock_wait_s: float = 0.0,
                 allow_uncommitted: bool = False) -> None:
        self.allow_uncommitted = bool(allow_uncommitted)
        self.path = Path(path)
        self.levels = int(levels)
        self.lock_wait_s = float(lock_wait_s)
        self.table = table
        self.columns = [*canonical_columns(self.levels), RECV_TS]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        # random 64-bit row keys make unique-index inserts cache-hostile: keep the B-tree pages in RAM
        self.con.execute("PRAGMA cache_size=-262144")  # 256 MiB
        self.con.execute("PRAGMA temp_store=MEMORY")
        self._create()
        placeholders = ",".join("?" * (len(self.columns) + 1))
        self.insert_sql = (f"INSERT OR IGNORE INTO {self.table} ({','.join(self.columns)}, row_key) "
                           f"VALUES ({placeholders})")

    def __reduce__(self) -> tuple:
        """Pickled as its arguments (a connection cannot travel): a worker process opens its own."""
        return (type(self), (str(self.path), self.levels, self.table, self.lock_wait_s, self.allow_uncommitted))

    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".writer.lock")

    def _create(self) -> None:
        existing = [r[1] for r in self.con.execute(f"PRAGMA table_info({self.table})")]
        if existing and [c for c in self.columns[:-1] if c not in existing]:
            raise UserError(
                f"{self.path} table {self.table} has another layout ({len(existing)} columns) than levels="
                f"{self.levels} needs", where=str(self.path),
                fix="Use the levels it was created with, or another store path (store.path=...).")
        if existing and RECV_TS not in existing:  # (any other column missing was refused above)
            with self.con:  # a table written before receive times: the column added, null (one clock)
                self.con.execute(f"ALTER TABLE {self.table} ADD COLUMN {RECV_TS} INTEGER")
        defs = ["timestamp INTEGER NOT NULL", "symbol TEXT NOT NULL", "exchange TEXT NOT NULL"]
        defs += [f"{c} REAL" for c in self.columns[3:-1]] + [f"{RECV_TS} INTEGER"]
        with self.con:
            self.con.execute(f"CREATE TABLE IF NOT EXISTS {self.table} ({', '.join(defs)}, row_key INTEGER NOT NULL)")
            self.con.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {self.table}_row_key ON {self.table}(row_key)")
            self.con.execute(f"CREATE INDEX IF NOT EXISTS {self.table}_sym_ts ON {self.table}(symbol, timestamp)")
            self.con.execute("CREATE TABLE IF NOT EXISTS l2_rejects (source_file TEXT, line INTEGER, reason TEXT, "
                             "detail TEXT, timestamp INTEGER, symbol TEXT, book TEXT, "
                             "UNIQUE(source_file, line, reason))")
            self.con.execute("CREATE TABLE IF NOT EXISTS l2_ingest_files (digest TEXT PRIMARY KEY, path TEXT, "
                             "manifest TEXT)")
            for kind, schema in SIDE_TABLES.items():
                types = {pa.int64(): "INTEGER", pa.int8(): "INTEGER", pa.uint8(): "INTEGER", pa.float64(): "REAL"}
                defs = ", ".join(f"{f.name} {types.get(f.type, 'TEXT')}" for f in schema)
                self.con.execute(f"CREATE TABLE IF NOT EXISTS l2_{kind} ({defs}, source TEXT NOT NULL)")
                self.con.execute(f"CREATE INDEX IF NOT EXISTS l2_{kind}_sym_ts ON l2_{kind}(symbol, {schema.names[0]})")

    def drop_sources(self, digests: set[str]) -> int:
        """Damaged rows (``DAMAGED_ROWS``): rebuild from the source files -- everything is dropped and the
        manifests with it, so ingest re-reads every file (the same rows in the same order). A store holding
        recorded live data (no source file) keeps it: only the damaged rows are dropped (reported lost)."""
        if DAMAGED_ROWS not in digests:
            return 0
        live = self.con.execute("SELECT COUNT(*) FROM l2_ingest_files WHERE path LIKE 'live:%'").fetchone()[0]
        with self.con:
            if live:
                bad = getattr(self, "_damaged", None) or self._check_rows()[0]
                self.con.executemany(f"DELETE FROM {self.table} WHERE rowid=?", [(int(r),) for r in bad])
                self.con.execute("DELETE FROM l2_ingest_files WHERE path NOT LIKE 'live:%'")
            else:
                self.con.execute(f"DELETE FROM {self.table}")
                self.con.execute("DELETE FROM l2_ingest_files")
                self.con.execute("DELETE FROM l2_rejects")
                for kind in SIDE_TABLES:
                    self.con.execute(f"DELETE FROM l2_{kind}")
        self._verified_file().unlink(missing_ok=True)
        return 0

    def location(self) -> str:
        return f"{self.path} (table {self.table})"

    def done(self, digest: str) -> dict[str, Any] | None:
        row = self.con.execute("SELECT manifest FROM l2_ingest_files WHERE digest=? AND manifest IS NOT NULL",
                               (digest,)).fetchone()
        return json.loads(row[0]) if row else None

    def begin(self, digest: str, path: str) -> IngestWriter:
        return _SqliteWriter(self, digest, path)

    def read(self, symbols: list[str] | None = None, start_ns: int | None = None, end_ns: int | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        cols = self.columns if columns is None else list(dict.fromkeys(["timestamp", "symbol", "exchange", *columns]))
        where, args = [], []
        if symbols:
            where.append(f"symbol IN ({','.join('?' * len(symbols))})")
            args += list(symbols)
        if start_ns is not None:
            where.append("timestamp >= ?")
            args.append(start_ns)
        if end_ns is not None:
            where.append("timestamp < ?")
            args.append(end_ns)
        sql = f"SELECT {','.join(cols)} FROM {self.table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY symbol, exchange, timestamp, rowid"
        df = pd.read_sql_query(sql, self.con, params=args)
        if RECV_TS in df and df[RECV_TS].dtype == object:  # all null (one clock): NaN, as the Parquet store reads
            df[RECV_TS] = df[RECV_TS].astype(np.float64)
        return df

    def read_rejects(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM l2_rejects ORDER BY source_file, line", self.con)

    def read_side(self, kind: str, symbols: list[str] | None = None, start_ns: int | None = None,
                  end_ns: int | None = None) -> pd.DataFrame:
        """Only rows of committed sources (a begun file's rows wait for its manifest), in the order they
        were applied (see :meth:`ParquetStore.read_side`)."""
        schema = SIDE_TABLES[kind]
        ts = schema.names[0]
        where = ["source IN (SELECT digest FROM l2_ingest_files WHERE manifest IS NOT NULL)"]
        args: list[Any] = []
        if symbols:
            where.append(f"symbol IN ({','.join('?' * len(symbols))})")
            args += list(symbols)
        if start_ns is not None:
            where.append(f"{ts} >= ?")
            args.append(start_ns)
        if end_ns is not None:
            where.append(f"{ts} < ?")
            args.append(end_ns)
        df = pd.read_sql_query(f"SELECT {','.join(schema.names)} FROM l2_{kind} WHERE {' AND '.join(where)} "
                               "ORDER BY symbol, rowid", self.con, params=args)  # as applied
        return pa.Table.from_pandas(df, schema=schema, preserve_index=False).to_pandas()

    def count(self) -> int:
        return int(self.con.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])

    def manifests(self, skip_broken: bool = False) -> list[dict[str, Any]]:
        out = []
        rows = self.con.execute("SELECT manifest FROM l2_ingest_files WHERE manifest IS NOT NULL ORDER BY path")
        for (text,) in rows:
            try:
                out.append(json.loads(text))
            except ValueError:
                if not skip_broken:
                    raise UserError(f"a manifest in {self.path} is damaged", where=str(self.path),
                                    fix="l2exp mode=verify mode.repair=true (same data= and store=)") from None
        return out

    # ---- content
    def _stamp(self) -> list[int]:
        out: list[int] = []
        for p in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                st = p.stat()
                out += [st.st_size, st.st_mtime_ns]
            except FileNotFoundError:
                out += [0, 0]
        return out

    def _verified_file(self) -> Path:
        return self.path.with_name(self.path.name + ".verified.json")

    def _check_rows(self) -> tuple[list[int], str]:
        """Every row re-hashed against its ``row_key``: (rowids that differ, content digest = rows + the sum of
        the keys mod 2^64 -- order-free, so it is the same for any store holding the same rows)."""
        from l2exp.data.validate import row_keys
        from l2exp.schema import SIDE_FIELDS, BookChunk, level_columns

        bad: list[int] = []
        total = np.uint64(0)
        n = 0
        sql = f"SELECT rowid, {','.join(self.columns)}, row_key FROM {self.table}"
        for df in pd.read_sql_query(sql, self.con, chunksize=VERIFY_ROWS):
            mats = [np.asfortranarray(df[level_columns(f, self.levels)].to_numpy(np.float64)) for f in SIDE_FIELDS]
            chunk = BookChunk(df["timestamp"].to_numpy(np.int64), df["symbol"].to_numpy(object),
                              df["exchange"].to_numpy(object), *mats)
            keys = row_keys(chunk)
            differ = keys != df["row_key"].to_numpy(np.int64)
            bad += df["rowid"].to_numpy()[differ].tolist()
            total += keys.view(np.uint64).sum(dtype=np.uint64)
            n += len(df)
        return bad, f"{n}-{int(total):016x}"

    def _content(self, deep: bool) -> tuple[list[int], str]:
        """(damaged rowids, content digest), from the last passed check while the database is unchanged."""
        stamp, vf = self._stamp(), self._verified_file()
        if not deep:
            try:
                cached = json.loads(vf.read_text())
                if cached.get("stamp") == stamp:
                    return [], str(cached["digest"])
            except (OSError, ValueError, KeyError):
                pass
        bad, digest = self._check_rows()
        if not bad:
            tmp = vf.with_name(f".{vf.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps({"stamp": stamp, "digest": digest}))
                tmp.replace(vf)
            except OSError:  # a read-only folder: checked again next time
                tmp.unlink(missing_ok=True)
        return bad, digest

    def content_digest(self) -> str:
        return self._content(deep=False)[1]

    def integrity_issues(self, deep: bool = False) -> list[Issue]:
        issues = [Issue("uncommitted", f"{self.path} ({path})", "ingest of this file began and did not commit: its "
                        "rows are partly in", digest)
                  for digest, path in self.con.execute(
                      "SELECT digest, path FROM l2_ingest_files WHERE manifest IS NULL ORDER BY path")]
        bad, _ = self._content(deep)
        if bad:
            self._damaged = bad
            issues.append(Issue("corrupt", f"{self.path} (table {self.table})",
                                f"{len(bad):,} row(s) differ from what was written (their content no longer "
                                f"matches their row_key; first rowid {bad[0]})", DAMAGED_ROWS))
        if deep:
            result = [r[0] for r in self.con.execute("PRAGMA quick_check")]
            if result != ["ok"]:
                issues.append(Issue("corrupt", str(self.path), "; ".join(map(str, result[:5]))))
        return issues
