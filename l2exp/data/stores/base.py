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
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from l2exp.sessions import DAY_NS

REJECT_META = ("source_file", "line", "reason", "detail")


@dataclass(frozen=True)
class Partition:
    """One symbol's rows of one UTC day (``day`` = days since 1970-01-01)."""

    symbol: str
    day: int
    rows: int = 0

    @property
    def start_ns(self) -> int:
        return self.day * DAY_NS

    @property
    def end_ns(self) -> int:
        return (self.day + 1) * DAY_NS

    @property
    def date(self) -> str:
        import numpy as np

        return str(np.datetime64(self.day, "D"))


@dataclass
class Issue:
    """Something wrong with the stored data: ``uncommitted`` (a source file begun but not committed: a
    killed writer), ``corrupt`` (content differs from what was written, or unreadable), ``missing``
    (a committed file is gone), ``unverifiable`` (no digest recorded: written by an older l2exp)."""

    kind: str
    where: str
    detail: str
    source: str | None = None  # the source digest the damaged data came from

    def line(self) -> str:
        return f"{self.kind}: {self.where} -- {self.detail}"


BLOCKING = ("uncommitted", "corrupt", "missing")


class IngestWriter(ABC):
    @abstractmethod
    def write(self, accepted: pa.Table, keys: Any) -> int:
        """Write accepted canonical rows (with their 64-bit content keys); return rows newly added."""

    @abstractmethod
    def write_rejects(self, rejects: pa.Table) -> None:
        """Write rejected rows: canonical columns (may be null) + source_file, line, reason, detail."""

    def write_side(self, kind: str, table: pa.Table) -> None:
        """Rows of a side table (``deltas`` / ``trades``, :data:`l2exp.schema.SIDE_TABLES`) from this
        source file, committed with it (and dropped with it)."""
        raise NotImplementedError(f"{type(self).__name__} stores no {kind}")

    def flush(self) -> int:
        """Finish queued writes; rows newly added by them (writers that write at once: 0)."""
        return 0

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

    allow_uncommitted: bool = False
    background_writes: bool = False  # its writer may run on another thread (BackgroundWriter)

    def integrity_issues(self, deep: bool = False) -> list[Issue]:
        """What is wrong with the stored data. Cheap by default (content digests re-computed only for
        files changed since they were last verified); ``deep``: everything re-read and re-hashed."""
        return []

    def content_digest(self) -> str:
        """A digest of what the store holds (not of the source files it came from): part of the feature
        cache key, so one damaged or different store never hands its features to another."""
        return ""

    def drop_sources(self, digests: set[str]) -> int:
        """Remove everything stored from these source digests (so that ingest redoes them); returns
        the number of files removed."""
        return 0

    def drop_uncommitted(self) -> int:
        """Remove data no committed source owns; returns the files removed. (SQLite keeps no such
        files: ingest finishes a begun source, its rows being idempotent inserts.)"""
        return 0

    def check_before_use(self) -> None:
        """Refuse to hand out data that is corrupt, missing or (unless ``allow_uncommitted``) from a
        source file a killed writer left half-written: exit 2 naming the files and the fix."""
        from l2exp.errors import UserError

        issues = [i for i in self.integrity_issues() if i.kind in BLOCKING
                  and not (i.kind == "uncommitted" and self.allow_uncommitted)]
        if issues:
            shown = "\n  ".join(i.line() for i in issues[:8]) + (f"\n  ... {len(issues) - 8} more"
                                                                  if len(issues) > 8 else "")
            raise UserError(f"the store {self.location()} holds damaged or unfinished data:\n  {shown}",
                            where=issues[0].where,
                            fix="l2exp mode=verify mode.repair=true data=<this data> (drops what is damaged and "
                                "re-ingests it from the source files); or, to use the data as it is: "
                                "store.allow_uncommitted=true (unfinished data only)")

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

    def read_side(self, kind: str, symbols: list[str] | None = None, start_ns: int | None = None,
                  end_ns: int | None = None) -> pd.DataFrame:
        """A side table's committed rows (time-ordered per symbol); empty when the source has none."""
        from l2exp.schema import SIDE_TABLES

        return SIDE_TABLES[kind].empty_table().to_pandas()

    def partitions(self) -> list[Partition]:
        """Every (symbol, UTC day) the store holds, in read order (symbol, then day), with its rows: the
        units of partition-parallel work (``compute=local|ray``). Read from the timestamp and symbol
        columns only."""
        keys = self.read(columns=[])
        if keys.empty:
            return []
        day = keys["timestamp"].to_numpy("int64") // DAY_NS
        counts = pd.DataFrame({"symbol": keys["symbol"].astype(str).to_numpy(), "day": day}).value_counts(sort=False)
        return [Partition(str(s), int(d), int(n)) for (s, d), n in sorted(counts.items())]

    @abstractmethod
    def count(self) -> int: ...

    def missing_parts(self, manifest: dict[str, Any]) -> list[str]:
        """Files a committed source's manifest lists that are not in the store (none for stores whose rows
        live in one file)."""
        return []

    @abstractmethod
    def manifests(self, skip_broken: bool = False) -> list[dict[str, Any]]:
        """Every committed source's manifest; an unreadable one is an error unless ``skip_broken``."""

    @abstractmethod
    def location(self) -> str: ...


def rejects_schema(levels: int) -> pa.Schema:
    from l2exp.schema import arrow_schema

    return pa.schema(list(arrow_schema(levels)) + [
        pa.field("source_file", pa.string()), pa.field("line", pa.int64()),
        pa.field("reason", pa.string()), pa.field("detail", pa.string()),
    ])
