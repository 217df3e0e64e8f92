"""``mode=sim`` (paper trading) and ``mode=record`` on a live ccxt feed or a replay.

Loop per sample (default every 100 ms of feed time): the latest book -> schema check (the ingest
validator) -> stale guard -> streaming features (the same definitions as research) -> the model
loaded by registry alias -> the paper broker, which is the backtester's own fill/risk code. Decisions,
orders, fills and latencies (receipt -> decision, p50/p99) are kept in bounded buffers, flushed to
Parquet under the run directory and logged to MLflow periodically and at the end. Memory stays flat:
a ring of the last ``ring_capacity`` snapshots, decision buffers flushed every ``flush_every`` rows.
Ctrl-C / SIGTERM stop the loop cleanly (everything flushed); so do ``mode.max_snapshots`` and
``mode.duration_s``.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


class RingBuffer:
    """The last ``capacity`` snapshots (ts + (4, L) book) in preallocated arrays: bounded memory."""

    def __init__(self, capacity: int, levels: int) -> None:
        self.ts = np.zeros(capacity, dtype=np.int64)
        self.books = np.zeros((capacity, 4, levels))
        self.n = 0

    def push(self, ts: int, book: np.ndarray) -> None:
        k = self.n % len(self.ts)
        self.ts[k] = ts
        self.books[k] = book
        self.n += 1

    def __len__(self) -> int:
        return min(self.n, len(self.ts))


class ParquetSink:
    """Decision rows in preallocated NumPy columns up to ``flush_every``, then appended to one Parquet
    file. Arrays, not per-row dicts: no garbage for the collector, whose pauses were the live loop's
    p99 latency."""

    COLUMNS = {"ts": np.int64, "signal": np.float64, "position": np.float64, "equity": np.float64,
               "latency_us": np.float64}

    def __init__(self, path: Path, flush_every: int) -> None:
        self.path, self.flush_every = path, flush_every
        self.cols = {k: np.empty(flush_every, dtype=t) for k, t in self.COLUMNS.items()}
        self.n = 0
        self.writer: pq.ParquetWriter | None = None
        self.count = 0

    def add(self, ts: int, signal_: float, position: float, equity: float, latency_us: float) -> None:
        k = self.n
        c = self.cols
        c["ts"][k], c["signal"][k], c["position"][k], c["equity"][k], c["latency_us"][k] = (
            ts, signal_, position, equity, latency_us)
        self.n += 1
        if self.n >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.n:
            return
        table = pa.table({k: v[: self.n] for k, v in self.cols.items()})
        if self.writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)
        self.count += self.n
        self.n = 0

    def close(self) -> None:
        self.flush()
        if self.writer is not None:
            self.writer.close()


class StopFlag:
    """SIGINT/SIGTERM -> a flag the loop checks (graceful: flush, log, summarise)."""

    def __init__(self) -> None:
        self.stop = False
        self.reason = ""
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: no handler, the loop still stops
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: Any) -> None:
        self.stop = True
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc: Any) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

