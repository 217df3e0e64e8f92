"""The one store interface the rest of the code reads and writes through.

Ingest is organised per source file, identified by the digest of its content:

* ``done(digest)`` -> the manifest of a file already ingested (then it is skipped, and its
  validation end-state is restored so later files validate exactly as in a clean run);
* ``begin(digest, path)`` -> an :class:`IngestWriter` taking accepted rows and rejects chunk by
  chunk; ``commit(manifest)`` makes the file's rows visible atomically (Parquet) or records that
  all its chunks are in (SQLite, whose chunks are idempotent inserts on a content key).

A run killed at any point and started again therefore leaves exactly the rows of a clean run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import pandas as pd
import pyarrow as pa

REJECT_META = ("source_file", "line", "reason", "detail")


class IngestWriter(ABC):
    @abstractmethod
    def write(self, accepted: pa.Table, keys: Any) -> int:
        """Write accepted canonical rows (with their 64-bit content keys); return rows newly added."""

    @abstractmethod
    def write_rejects(self, rejects: pa.Table) -> None:
        """Write rejected rows: canonical columns (may be null) + source_file, line, reason, detail."""

    @abstractmethod
    def commit(self, manifest: dict[str, Any]) -> None: ...

    def abort(self) -> None:  # noqa: B027 - optional hook
        """Drop staged output (the next run redoes this file)."""


class L2Store(ABC):
    levels: int
    lock_wait_s: float = 0.0

    def lock_path(self) -> Any:
        """The file whose OS lock makes this process the store's only writer."""
        raise NotImplementedError

    def writer_lock(self) -> Any:
        """Hold for a whole ingest or recording: a second writer waits ``lock_wait_s`` then exits 2
        naming the holder (see :mod:`l2exp.data.stores.lock`)."""
        from l2exp.data.stores.lock import WriterLock

        return WriterLock(self.lock_path(), self.location(), self.lock_wait_s)

    def recover(self) -> None:  # noqa: B027 - optional hook
        """Called with the writer lock held: clear what a dead writer left half-done."""

    @abstractmethod
    def done(self, digest: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def begin(self, digest: str, path: str) -> IngestWriter: ...

    @abstractmethod
    def read(self, symbols: list[str] | None = None, start_ns: int | None = None, end_ns: int | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        """Canonical rows sorted by symbol, exchange, timestamp (file order within equal times)."""

    @abstractmethod
    def read_rejects(self) -> pd.DataFrame: ...

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def manifests(self) -> list[dict[str, Any]]: ...

    @abstractmethod
    def location(self) -> str: ...


def rejects_schema(levels: int) -> pa.Schema:
    from l2exp.schema import arrow_schema

    return pa.schema(list(arrow_schema(levels)) + [
        pa.field("source_file", pa.string()), pa.field("line", pa.int64()),
        pa.field("reason", pa.string()), pa.field("detail", pa.string()),
    ])
