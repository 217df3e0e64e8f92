"""The canonical L2 snapshot, defined once.

| column | dtype | meaning |
|---|---|---|
| ``timestamp`` | int64 | nanoseconds since the Unix epoch, UTC (exchange time when the source has it) |
| ``symbol`` / ``exchange`` | string | instrument and venue |
| ``bid_price_i`` / ``bid_size_i`` | float64 | level i of the bid side; level 1 is the best; prices strictly fall |
| ``ask_price_i`` / ``ask_size_i`` | float64 | level i of the ask side; level 1 is the best; prices strictly rise |
| ``recv_ts`` | int64, nullable | receive time (ns UTC, the recorder's clock); null: the source has one clock |

**Two clocks, one rule.** ``timestamp`` is the venue's time when the source has it (Binance ``E``,
Tardis ``timestamp``), else the only time there is (BitMEX's recorder, LOBSTER); ``recv_ts`` is the
recorder's receive time where the source records it (the captures' line prefix, Tardis
``local_timestamp``, a mapping's ``receive_time``) and null otherwise -- never copied from
``timestamp``, so "unknown" is never mistaken for "zero latency". The ingest reports the skew
``recv_ts - timestamp`` (p50/p99: network latency plus the two clocks' offset) and receive times
that go backwards; neither rejects a row (clocks differ; the book is still right).

Every source reaches this schema through a YAML mapping (``conf/data``); every later stage
(features, labels, backtest, sim) reads only these names. A level the source does not have is NaN.

In memory a chunk of snapshots is a :class:`BookChunk`: one int64 time vector and four
``(n, N)`` float64 matrices in Fortran (column-major) order, so that ``bid_price[:, 0]`` is
contiguous -- per-level vector maths is ~4x faster than on row-major matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SIDE_FIELDS: tuple[str, ...] = ("bid_price", "bid_size", "ask_price", "ask_size")
META_COLUMNS: tuple[str, ...] = ("timestamp", "symbol", "exchange")

# Plausible timestamp range (ns): 1990-01-01 .. 2100-01-01. Anything outside is a unit mistake.
TS_MIN_NS = 631_152_000 * 10**9
TS_MAX_NS = 4_102_444_800 * 10**9


def level_columns(field: str, levels: int) -> list[str]:
    """``level_columns("bid_price", 3) == ["bid_price_1", "bid_price_2", "bid_price_3"]``."""
    return [f"{field}_{i}" for i in range(1, levels + 1)]


def canonical_columns(levels: int) -> list[str]:
    cols = list(META_COLUMNS)
    for field in SIDE_FIELDS:
        cols.extend(level_columns(field, levels))
    return cols


RECV_TS = "recv_ts"  # the receive time (see the module docstring): the last column, nullable


def arrow_schema(levels: int) -> pa.Schema:
    fields = [pa.field("timestamp", pa.int64()), pa.field("symbol", pa.string()),
              pa.field("exchange", pa.string())]
    fields += [pa.field(c, pa.float64()) for f in SIDE_FIELDS for c in level_columns(f, levels)]
    fields.append(pa.field(RECV_TS, pa.int64(), nullable=True))
    return pa.schema(fields)


@dataclass
class BookChunk:
    """A block of canonical snapshots as typed arrays (no per-row Python objects)."""

    timestamp: np.ndarray  # int64 (n,)
    symbol: np.ndarray  # object/str (n,)
    exchange: np.ndarray  # object/str (n,)
    bid_price: np.ndarray  # float64 (n, N), Fortran order
    bid_size: np.ndarray
    ask_price: np.ndarray
    ask_size: np.ndarray
    recv_ts: np.ndarray | None = None  # int64 (n,), -1 = unknown (null when stored); None = the source has one clock

    @property
    def n(self) -> int:
        return int(self.timestamp.shape[0])

    @property
    def levels(self) -> int:
        return int(self.bid_price.shape[1])

    def side(self, field: str) -> np.ndarray:
        return getattr(self, field)

    def take(self, idx: np.ndarray) -> BookChunk:
        """Rows ``idx`` (sorted indices); the chunk itself when idx is every row (the common case)."""
        if len(idx) == self.n:
            return self
        mats = []
        for f in SIDE_FIELDS:
            src = getattr(self, f)
            out = np.empty((len(idx), src.shape[1]), order="F")
            for j in range(src.shape[1]):
                out[:, j] = src[idx, j]
            mats.append(out)
        return BookChunk(self.timestamp[idx], self.symbol[idx], self.exchange[idx], *mats,
                         recv_ts=None if self.recv_ts is None else self.recv_ts[idx])

    def to_arrow(self) -> pa.Table:
        arrays = [pa.array(self.timestamp, pa.int64()), _strings_to_arrow(self.symbol),
                  _strings_to_arrow(self.exchange)]
        names = list(META_COLUMNS)
        for field in SIDE_FIELDS:
            mat = getattr(self, field)
            for i in range(mat.shape[1]):
                arrays.append(pa.array(mat[:, i], pa.float64()))
                names.append(f"{field}_{i + 1}")
        if self.recv_ts is None:
            arrays.append(pa.nulls(self.n, pa.int64()))
        else:
            arrays.append(pa.array(self.recv_ts, pa.int64(), mask=self.recv_ts < 0))
        names.append(RECV_TS)
        return pa.Table.from_arrays(arrays, names=names)

    @classmethod
    def from_frame(cls, df: pd.DataFrame | pa.Table, levels: int) -> BookChunk:
        """Build from a canonical table; missing level columns become NaN."""
        if isinstance(df, pa.Table):
            df = df.to_pandas()
        n = len(df)
        mats = []
        for field in SIDE_FIELDS:
            mat = np.full((n, levels), np.nan, order="F")
            for i, col in enumerate(level_columns(field, levels)):
                if col in df:
                    mat[:, i] = df[col].to_numpy(dtype=np.float64, na_value=np.nan)
            mats.append(mat)
        recv = None
        if RECV_TS in df and df[RECV_TS].notna().any():
            col = df[RECV_TS]  # int64 when every row has one (one source: all or none), else float with NaN
            recv = (col.to_numpy(np.int64) if col.notna().all() and col.dtype.kind in "iu"
                    else col.astype("Int64").fillna(-1).to_numpy(np.int64))
        return cls(df["timestamp"].to_numpy(np.int64), df["symbol"].to_numpy(object),
                   df["exchange"].to_numpy(object), *mats, recv_ts=recv)


def _strings_to_arrow(values: pd.Categorical | np.ndarray) -> pa.Array:
    """Categorical -> Arrow string array via its codes (no per-row Python strings)."""
    if isinstance(values, pd.Categorical):
        codes = pa.array(np.asarray(values.codes, dtype=np.int32))
        cats = pa.array([str(c) for c in values.categories], pa.string())
        return pa.DictionaryArray.from_arrays(codes, cats).cast(pa.string())
    return pa.array(values, pa.string())


# -- incremental data: the updates a book was rebuilt from, and the trades of the same capture ----------
# Stored beside the snapshots by the same ingest (``store.read_side("deltas" | "trades")``).
# flags: bit 0 snapshot row, bit 1 clears the book first (the first row of a snapshot), bit 2 last row of
# its message. Sequence ids are the venue's (Binance U / u / pu), -1 where the venue has none.
DELTA_SNAPSHOT, DELTA_CLEAR, DELTA_LAST = 1, 2, 4
DELTA_SCHEMA = pa.schema([
    ("exch_ts", pa.int64()), ("recv_ts", pa.int64()), ("symbol", pa.string()), ("exchange", pa.string()),
    ("side", pa.int8()), ("price", pa.float64()), ("size", pa.float64()), ("flags", pa.uint8()),
    ("first_id", pa.int64()), ("last_id", pa.int64()), ("prev_id", pa.int64()),
])
# side: +1 buyer-initiated (the aggressor bought: lifts the ask), -1 seller-initiated
TRADE_SCHEMA = pa.schema([
    ("ts", pa.int64()), ("recv_ts", pa.int64()), ("symbol", pa.string()), ("exchange", pa.string()),
    ("price", pa.float64()), ("size", pa.float64()), ("side", pa.int8()), ("trade_id", pa.int64()),
])
SIDE_TABLES = {"deltas": DELTA_SCHEMA, "trades": TRADE_SCHEMA}
