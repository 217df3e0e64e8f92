"""SQLite store: table ``l2_training_data`` (the name existing tooling expects).

WAL journal, an index on (symbol, timestamp) and a UNIQUE 64-bit content key (``row_key``), so
``INSERT OR IGNORE`` makes re-ingest and a rerun after a crash add nothing twice. Each chunk is
one transaction. Rejects go to ``l2_rejects`` (unique on file, line, reason) and per-file
manifests to ``l2_ingest_files``: a row with no manifest yet is a file begun and not committed (a
killed ingest), and the data is refused until ingest finishes it (``check_before_use``).
``mode=verify`` adds SQLite's own ``PRAGMA quick_check``.

SQLite reads into pandas at ~85k rows/s: research reads should go through the Parquet store.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from l2exp.data.stores.base import REJECT_META, IngestWriter, Issue, L2Store
from l2exp.errors import UserError
from l2exp.schema import SIDE_TABLES, canonical_columns


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
        cols = [accepted.column(c).to_pylist() if c in ("symbol", "exchange")
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
        self.columns = canonical_columns(self.levels)
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
        if existing and [c for c in self.columns if c not in existing]:
            raise UserError(
                f"{self.path} table {self.table} has another layout ({len(existing)} columns) than levels="
                f"{self.levels} needs", where=str(self.path),
                fix="Use the levels it was created with, or another store path (store.path=...).")
        defs = ["timestamp INTEGER NOT NULL", "symbol TEXT NOT NULL", "exchange TEXT NOT NULL"]
        defs += [f"{c} REAL" for c in self.columns[3:]]
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
        return pd.read_sql_query(sql, self.con, params=args)

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

    def integrity_issues(self, deep: bool = False) -> list[Issue]:
        issues = [Issue("uncommitted", f"{self.path} ({path})", "ingest of this file began and did not commit: its "
                        "rows are partly in", digest)
                  for digest, path in self.con.execute(
                      "SELECT digest, path FROM l2_ingest_files WHERE manifest IS NULL ORDER BY path")]
        if deep:
            result = [r[0] for r in self.con.execute("PRAGMA quick_check")]
            if result != ["ok"]:
                issues.append(Issue("corrupt", str(self.path), "; ".join(map(str, result[:5]))))
        return issues
