"""Long tables -- one row per (snapshot, side, level) -- pivoted into canonical snapshots, mapped by YAML.

Many vendors and databases export books this way: ``timestamp, symbol, side, level, price, size``
(kdb+/SQL exports, some vendors' "L2 snapshot" files). Which column is which, the time unit, the
side labels and the columns that identify one snapshot are config (``columns``, ``time_unit``,
``sides``, ``key``), so another layout is a YAML file. Rules:

* a *snapshot* is a run of consecutive rows with the same ``key`` values (the time, or the time and
  a sequence number) and the same symbol; it becomes one canonical row stamped with that time;
* a row's level is its ``level`` column (``level_base``: the number of the best level, 1 or 0), or,
  when the table has no level column, its rank by price within its side (bids falling, asks rising);
* levels past ``levels`` are dropped (counted: ``levels_beyond``); a missing level stays NaN (the
  summary's ``rows with missing levels``), never filled;
* a row whose side is neither label, whose numbers do not parse, or whose (side, level) repeats one
  of the same snapshot is a reject (``unparseable`` / ``duplicate_level``, with its line), and the
  snapshot is built from the others -- the validator then judges the book as a whole.

Written here rather than as ``pivot`` in pandas: a snapshot cut by a read block must be carried to
the next block, and the pivot is one NumPy scatter into ``(snapshots, levels)`` arrays per side.
The CSV is read with pyarrow in blocks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from l2exp.data.readers import RawChunk, Reader, column_floats, column_ints, numbered_blocks
from l2exp.errors import UserError

LONG_COLUMNS = {"time": "timestamp", "side": "side", "level": "level", "price": "price", "size": "size",
                "symbol": "symbol", "exchange": "exchange"}
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


class LongTable(Reader):
    """A CSV with one row per price level (see the module docstring).

    Args:
        columns: role -> column name (``time``, ``side``, ``level``, ``price``, ``size``, ``symbol``,
            ``exchange``); ``level: null`` = rank by price; ``symbol``/``exchange`` may be absent.
        key: the roles or column names that identify one snapshot besides the symbol (``[time]``, or
            ``[time, seq]`` when several snapshots share a time stamp).
        time_unit: of the time column (``s``, ``ms``, ``us``, ``ns``).
        sides: the labels of the two sides, ``{bid: bid, ask: ask}`` (compared as text).
        level_base: the number of the best level in the ``level`` column (1, or 0).
        symbol / exchange: constants when the table has no such column.
        delimiter, block_bytes: the CSV's separator and pyarrow's read block.
    """

    def __init__(self, levels: int, columns: dict[str, str | None] | None = None, key: list[str] | None = None,
                 time_unit: str = "ns", sides: dict[str, str] | None = None, level_base: int = 1,
                 symbol: str | None = None, exchange: str | None = None, delimiter: str = ",",
                 block_bytes: int = 1 << 24, **unknown: Any) -> None:
        super().__init__(levels, **unknown)
        self.cols = {**LONG_COLUMNS, **(columns or {})}
        if time_unit not in _UNIT_NS:
            raise UserError(f"time_unit {time_unit!r} is not one of {sorted(_UNIT_NS)}", where="data.reader.time_unit")
        self.unit_ns = _UNIT_NS[time_unit]
        self.key = list(key or ["time"])
        self.sides = {"bid": "bid", "ask": "ask", **(sides or {})}
        self.level_base = int(level_base)
        self.symbol, self.exchange = symbol, exchange
        self.delimiter = delimiter
        self.block_bytes = int(block_bytes)

    def _col(self, role: str) -> str | None:
        return self.cols.get(role, role)  # a key entry may name a column that has no role

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        try:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=self.block_bytes),
                                    parse_options=pacsv.ParseOptions(delimiter=self.delimiter),
                                    convert_options=pacsv.ConvertOptions(
                                        column_types={c: pa.string() for c in (self.cols.get("side"),
                                                                               self.cols.get("symbol"),
                                                                               self.cols.get("exchange")) if c}))
        except pa.ArrowInvalid as exc:
            raise self._layout_error(path, exc) from None
        names = reader.schema.names
        need = [self._col(r) for r in ("time", "side", "price", "size", *self.key)]
        if self.cols.get("level"):
            need.append(self.cols["level"])
        missing = sorted({c for c in need if c not in names})
        if missing:
            raise self._layout_error(path, f"columns {missing} not in the header {names}")
        carry: tuple[pa.Table, np.ndarray] | None = None
        for t, lines in numbered_blocks(reader):
            if carry is not None:
                t = pa.concat_tables([carry[0], t.cast(carry[0].schema)])
                lines = np.concatenate([carry[1], lines])
            snap = self._snapshot_ids(t)
            cut = int(np.flatnonzero(snap == snap[-1])[0]) if len(snap) else 0  # the last snapshot may go on
            carry = (t.slice(cut), lines[cut:])
            if cut:
                yield self._pivot(path, t.slice(0, cut), lines[:cut], snap[:cut])
        if carry is not None and carry[0].num_rows:
            t, lines = carry
            yield self._pivot(path, t, lines, self._snapshot_ids(t))

    def _layout_error(self, path: str, why: Any) -> UserError:
        return UserError(f"{path} is not the long table data.reader describes: {why}", where=f"{path}, line 1",
                         fix=f"Map the columns in data.reader.columns (roles {sorted(LONG_COLUMNS)}) and the "
                             "snapshot key in data.reader.key.")

    def _snapshot_ids(self, t: pa.Table) -> np.ndarray:
        """0, 1, 2, ... per run of rows with the same key (and symbol)."""
        n = t.num_rows
        new = np.zeros(n, bool)
        if n:
            new[0] = True
        roles = [*self.key, *(["symbol"] if self.symbol is None and self.cols.get("symbol") in t.column_names
                              else [])]
        for role in roles:
            col = t.column(self._col(role))
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col = pc.dictionary_encode(col).combine_chunks().indices
            v = np.asarray(col.to_numpy(zero_copy_only=False))
            new[1:] |= v[1:] != v[:-1]
        return np.cumsum(new) - 1

    def _pivot(self, path: str, t: pa.Table, lines: np.ndarray, snap: np.ndarray) -> RawChunk:
        snap = snap - snap[0]
        n_snap = int(snap[-1]) + 1
        starts = np.flatnonzero(np.r_[True, snap[1:] != snap[:-1]])
        c = self.cols
        side_txt = pc.utf8_trim_whitespace(t.column(c["side"]).cast(pa.string())).to_numpy(zero_copy_only=False)
        side = np.where(side_txt == str(self.sides["bid"]), 0, np.where(side_txt == str(self.sides["ask"]), 1, -1))
        price = column_floats(t.column(c["price"]))
        size = column_floats(t.column(c["size"]))
        ok = (side >= 0) & np.isfinite(price) & np.isfinite(size)
        rejects: list[tuple[int, str, str]] = []
        stats: Counter = Counter(long_rows_in=int(t.num_rows))
        for i in np.flatnonzero(~ok):
            rejects.append((int(lines[i]), "unparseable", f"side {side_txt[i]!r}, price {price[i]}, size {size[i]}"))
        if c.get("level"):
            level = column_floats(t.column(c["level"])) - self.level_base
            bad_level = ~np.isfinite(level) | (level < 0) | (level != np.round(level))
            for i in np.flatnonzero(ok & bad_level):
                rejects.append((int(lines[i]), "unparseable", f"level {level[i] + self.level_base} is not a whole "
                                                              f"number >= {self.level_base} (data.reader.level_base)"))
            ok &= ~bad_level
            level = np.where(ok, level, 0).astype(np.int64)
        else:  # rank by price within (snapshot, side): bids falling, asks rising
            level = np.zeros(len(price), np.int64)
            idx = np.flatnonzero(ok)
            signed = np.where(side[idx] == 0, -price[idx], price[idx])
            order = idx[np.lexsort((signed, side[idx], snap[idx]))]
            grp = snap[order] * 2 + side[order]
            first = np.r_[True, grp[1:] != grp[:-1]]
            run_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
            level[order] = np.arange(len(order)) - run_start
        beyond = ok & (level >= self.levels)
        stats["levels_beyond"] += int(beyond.sum())
        use = np.flatnonzero(ok & ~beyond)
        cell = (snap[use] * 2 + side[use]) * self.levels + level[use]
        order = np.argsort(cell, kind="stable")
        dup = np.zeros(len(use), bool)
        dup[order[1:]] = cell[order[1:]] == cell[order[:-1]]
        for i in use[dup]:
            rejects.append((int(lines[i]), "duplicate_level", f"a second row for {side_txt[i]} level "
                                                              f"{level[i] + self.level_base} of the snapshot at line "
                                                              f"{int(lines[starts[snap[i]]])} (two snapshots with "
                                                              "one key? add their sequence column to "
                                                              "data.reader.key)"))
        use, cell = use[~dup], cell[~dup]
        px = np.full(n_snap * 2 * self.levels, np.nan)
        sz = np.full(n_snap * 2 * self.levels, np.nan)
        px[cell], sz[cell] = price[use], size[use]
        px, sz = px.reshape(n_snap, 2, self.levels), sz.reshape(n_snap, 2, self.levels)
        ts = column_ints(t.column(self._col("time"))).take(starts) * self.unit_ns
        cols: dict[str, Any] = {"timestamp": pa.array(ts, pa.int64())}
        for role, const in (("symbol", self.symbol), ("exchange", self.exchange)):
            if const is not None or c.get(role) not in t.column_names:
                cols[role] = pa.repeat(pa.scalar(const or ""), n_snap)
            else:
                cols[role] = t.column(c[role]).cast(pa.string()).take(pa.array(starts))
        for k, name in ((0, "bid"), (1, "ask")):
            for i in range(self.levels):
                cols[f"{name}_price_{i + 1}"] = pa.array(px[:, k, i])
                cols[f"{name}_size_{i + 1}"] = pa.array(sz[:, k, i])
        return RawChunk(pa.table(cols), path, lines[starts], rejects=rejects, stats=dict(stats))
