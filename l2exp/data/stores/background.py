"""A store writer whose writes run on a thread of their own, in order, a bounded number behind.

Why: encoding Parquet (pyarrow, GIL released) is a third of an ingest's CPU time; on the calling
thread it waits for mapping and validation and they wait for it. Here the next chunk is mapped and
validated while the previous one is encoded. At most ``depth`` writes are queued (memory: ``depth``
chunks); an error in a write is raised on the caller's next call (or :meth:`flush`), and the ingest then
aborts the file: writes still queued are cancelled and everything staged for it is dropped.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pyarrow as pa

from l2exp.data.stores.base import IngestWriter


class BackgroundWriter(IngestWriter):
    def __init__(self, inner: IngestWriter, depth: int = 2) -> None:
        self.inner = inner
        self.depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="l2exp-store-write")
        self._pending: deque[Future] = deque()
        self._added = 0  # rows added by finished writes, not reported yet

    def _submit(self, fn: Any, *args: Any) -> None:
        self._pending.append(self._pool.submit(fn, *args))
        while len(self._pending) > self.depth:
            self._finish(self._pending.popleft())

    def _finish(self, fut: Future) -> None:
        out = fut.result()  # re-raises the write's error here, on the caller's thread
        self._added += out if isinstance(out, int) else 0

    def _report(self) -> int:
        """Rows added since the last report. Counted whichever call finished the write: a book write that
        finished while a side table (deltas, trades) was submitted used to be lost from "newly inserted"."""
        added, self._added = self._added, 0
        return added

    def write(self, accepted: pa.Table, keys: Any) -> int:
        """Rows newly added by the writes that finished so far (the rest: :meth:`flush`)."""
        self._submit(self.inner.write, accepted, keys)
        return self._report()

    def write_rejects(self, rejects: pa.Table) -> None:
        self._submit(self.inner.write_rejects, rejects)

    def write_side(self, kind: str, table: pa.Table) -> None:
        self._submit(self.inner.write_side, kind, table)

    def flush(self) -> int:
        while self._pending:
            self._finish(self._pending.popleft())
        return self._report()

    def commit(self, manifest: dict[str, Any]) -> None:
        self.flush()
        self._pool.shutdown()
        self.inner.commit(manifest)

    def abort(self) -> None:
        for fut in self._pending:
            fut.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()
        self.inner.abort()
