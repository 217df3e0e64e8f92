"""Delta *tables* (one row per price-level update) rebuilt into canonical snapshots, mapped by YAML.

Tardis ``incremental_book_L2`` is the model: ``exchange,symbol,timestamp,local_timestamp,is_snapshot,
side,price,amount`` (µs; ``amount`` the level's new absolute size, 0 = delete). Which column is
which, the time unit, the side labels and the column that groups rows into one message are config
(``columns``, ``time_unit``, ``sides``, ``message``), so another vendor's delta table is a YAML
file too. Rules:

* a *message* is a run of consecutive rows with the same ``message`` value and snapshot flag; one
  canonical snapshot is emitted after it, stamped with its latest exchange time;
* a run of snapshot rows that follows update rows (or starts the file) *replaces* the whole book;
  the book is emitted once, after the last row of the run;
* update rows before the first snapshot cannot be placed on a book: rejects ``no_snapshot``;
* rows whose side is neither label, or whose numbers do not parse: rejects ``unparseable``;
* a table of several symbols keeps a book per symbol (its own snapshot runs, messages and state):
  rows are grouped by the ``symbol`` column, each group in file order.

The CSV is read with pyarrow in blocks; a message cut by a block boundary is carried into the next.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from l2exp.data.incremental.book import COUNTER_NAMES, BookState, build
from l2exp.data.readers import RawChunk, Reader, column_floats, column_ints, numbered_blocks
from l2exp.errors import UserError

TARDIS_COLUMNS = {"exchange_time": "timestamp", "receive_time": "local_timestamp", "side": "side", "price": "price",
                  "size": "amount", "snapshot": "is_snapshot", "symbol": "symbol", "exchange": "exchange"}
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


@dataclass
class _Carry:
    """One symbol's book state between blocks."""

    table: pa.Table | None = None  # rows of the message cut by the block boundary
    lines: np.ndarray | None = None  # their source lines
    started: bool = False  # a snapshot has been applied
    prev_snapshot: bool = False  # the previous message was part of a snapshot run


class DeltaTable(Reader):
    """A CSV of per-level updates (see the module docstring).

    Args:
        columns: canonical role -> column name (``exchange_time``, ``receive_time``, ``side``, ``price``,
            ``size``, ``snapshot``, ``symbol``, ``exchange``); Tardis's names by default.
        time_unit: unit of both times (``us`` for Tardis).
        sides: the labels of the two sides, ``{bid: bid, ask: ask}``.
        message: the role whose value groups rows into one message (``receive_time``).
        symbol / exchange: constants when the table has no such column.
        sample_ms, max_depth: as for the Binance decoders.
    """

    def __init__(self, levels: int, columns: dict[str, str] | None = None, time_unit: str = "us",
                 sides: dict[str, str] | None = None, message: str = "receive_time", symbol: str | None = None,
                 exchange: str | None = None, sample_ms: float = 0, max_depth: int = 5000, delimiter: str = ",",
                 block_bytes: int = 1 << 24, **_: Any) -> None:
        super().__init__(levels)
        self.cols = {**TARDIS_COLUMNS, **(columns or {})}
        if time_unit not in _UNIT_NS:
            raise UserError(f"time_unit {time_unit!r} is not one of {sorted(_UNIT_NS)}", where="data.reader.time_unit")
        self.unit_ns = _UNIT_NS[time_unit]
        self.sides = {"bid": "bid", "ask": "ask", **(sides or {})}
        self.message = message
        self.symbol, self.exchange = symbol, exchange
        self.emit_every_ns = int(round(float(sample_ms) * 1e6))
        self.max_depth = int(max_depth)
        self.delimiter = delimiter
        self.block_bytes = int(block_bytes)

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        state, carry = BookState(self.max_depth), _Carry()
        try:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=self.block_bytes),
                                    parse_options=pacsv.ParseOptions(delimiter=self.delimiter))
        except pa.ArrowInvalid as exc:
            raise self._layout_error(path, exc) from None
        names = reader.schema.names
        need = [self.cols[r] for r in ("exchange_time", "side", "price", "size", self.message)]
        missing = [c for c in need if c not in names]
        if missing:
            raise self._layout_error(path, f"columns {missing} not in the header {names}")
        if self.cols.get("snapshot") not in names:  # every row an update: no book could ever start
            raise self._layout_error(path, f"no snapshot column {self.cols.get('snapshot')!r} "
                                           f"(data.reader.columns.snapshot) in the header {names}: without rows "
                                           "that mark a book snapshot, no update can be placed on a book")
        books: dict[str | None, tuple[BookState, _Carry]] = {}
        by_symbol = self.symbol is None and self.cols.get("symbol") in names
        for table, lines in numbered_blocks(reader):
            for sym, part, part_lines in self._by_symbol(table, lines, by_symbol):
                state, carry = books.get(sym) or books.setdefault(sym, (BookState(self.max_depth), _Carry()))
                if carry.table is not None:
                    part = pa.concat_tables([carry.table, part.cast(carry.table.schema)])
                    part_lines = np.concatenate([carry.lines, part_lines])
                yield from self._messages(path, part, part_lines, state, carry, last=False)
        for state, carry in books.values():
            if carry.table is not None:
                yield from self._messages(path, carry.table, carry.lines, state, carry, last=True)

    def _by_symbol(self, t: pa.Table, lines: np.ndarray, by_symbol: bool) -> Iterator[tuple[Any, pa.Table, np.ndarray]]:
        """The block's rows of each symbol (in order of first appearance), each in file order."""
        if not by_symbol:
            yield None, t, lines
            return
        enc = pc.dictionary_encode(t.column(self.cols["symbol"]).cast(pa.string())).combine_chunks()
        codes = enc.indices.to_numpy(zero_copy_only=False)
        names = enc.dictionary.to_pylist()
        if len(names) == 1:
            yield names[0], t, lines
            return
        for code in range(len(names)):
            idx = np.flatnonzero(codes == code)
            if len(idx):
                yield names[code], t.take(pa.array(idx)), lines[idx]

    def _layout_error(self, path: str, why: Any) -> UserError:
        from l2exp.data.readers import check_delimiter

        with open(path, encoding="utf-8", errors="replace") as fh:
            header = fh.readline().strip()
        if self.delimiter not in header:
            check_delimiter(header, self.delimiter, path)  # raises when another delimiter splits it
        return UserError(f"{path} is not the delta table data.reader describes: {why}", where=f"{path}, line 1",
                         fix=f"Map the columns in data.reader.columns (roles {sorted(TARDIS_COLUMNS)}).")

    def _messages(self, path: str, t: pa.Table, lines: np.ndarray, state: BookState, carry: _Carry,
                  last: bool) -> Iterator[RawChunk]:
        n = t.num_rows
        if n == 0:
            return
        c = self.cols
        key = column_ints(t.column(c[self.message]))
        snap = _bool(t.column(c["snapshot"]))  # the column is there: iter_chunks refuses a file without it
        new = np.ones(n, bool)
        new[1:] = (key[1:] != key[:-1]) | (snap[1:] != snap[:-1])
        starts = np.flatnonzero(new)
        if not last:  # hold back the last message (and a trailing snapshot run): the next block may continue it
            cut = starts[-1]
            if snap[cut]:
                run = np.flatnonzero(~snap[:cut])
                cut = run[-1] + 1 if len(run) else 0
            if cut == 0:
                carry.table, carry.lines = t, lines
                return
            carry.table, t = t.slice(cut), t.slice(0, cut)
            carry.lines, lines = lines[cut:], lines[:cut]
            n, key, snap, new = cut, key[:cut], snap[:cut], new[:cut]
            starts = np.flatnonzero(new)
        else:
            carry.table, carry.lines = None, None
        msg = np.cumsum(new) - 1
        n_msg = len(starts)
        msg_snap = snap[starts]
        prev_snap = np.empty(n_msg, bool)
        prev_snap[0] = carry.prev_snapshot
        prev_snap[1:] = msg_snap[:-1]
        clear = msg_snap & ~prev_snap
        emit = ~msg_snap | np.append(~msg_snap[1:], True)  # a snapshot run emits once, after its last message
        carry.prev_snapshot = bool(msg_snap[-1])
        ts = np.maximum.reduceat(column_ints(t.column(c["exchange_time"])), starts) * self.unit_ns
        side_txt = pc.utf8_trim_whitespace(t.column(c["side"]).cast(pa.string())).to_numpy(zero_copy_only=False)
        side = np.where(side_txt == self.sides["bid"], 1, np.where(side_txt == self.sides["ask"], -1, 0))
        side = side.astype(np.int8)
        price = column_floats(t.column(c["price"]))
        size = column_floats(t.column(c["size"]))
        bad_row = (side == 0) | ~np.isfinite(price) | ~np.isfinite(size)
        stats: Counter = Counter(deltas_in=int(n))
        rejects: list[tuple[int, str, str]] = []
        for i in np.flatnonzero(bad_row):
            rejects.append((int(lines[i]), "unparseable", f"side {side_txt[i]!r}, price {price[i]}, size {size[i]}"))
        # updates before the first snapshot cannot be placed on a book
        apply = np.ones(n_msg, bool)
        if not carry.started:
            first = np.flatnonzero(msg_snap)
            before = first[0] if len(first) else n_msg
            apply[:before] = False
            for m in range(before):
                rejects.append((int(lines[starts[m]]), "no_snapshot",
                                "update before the first snapshot of the file: no book to apply it to"))
                stats["deltas_rejected"] += int((msg == m).sum())
            carry.started = len(first) > 0
        keep = ~bad_row
        counts = np.zeros(len(COUNTER_NAMES), np.int64)
        snaps, _best = build(state, msg[keep], side[keep], price[keep], size[keep], ts, clear, apply, emit & apply,
                             self.levels, self.emit_every_ns, counts)
        for name, v in zip(COUNTER_NAMES, counts, strict=True):
            stats[name] += int(v)
        stats["snapshots_in"] += int(clear.sum())
        used = keep & apply[msg]
        deltas = self._deltas(t, used, msg, starts, ts, msg_snap, clear, side, price, size)
        yield RawChunk(self._table(t, snaps, starts), path, lines[starts[snaps.msg]], rejects=rejects,
                       stats=dict(stats), sides={"deltas": deltas})

    def _deltas(self, t: pa.Table, used: np.ndarray, msg: np.ndarray, starts: np.ndarray, ts: np.ndarray,
                msg_snap: np.ndarray, clear: np.ndarray, side: np.ndarray, price: np.ndarray,
                size: np.ndarray) -> pa.Table:
        """The applied rows in the canonical delta schema (no sequence ids in a Tardis table: -1)."""
        from l2exp.schema import DELTA_CLEAR, DELTA_LAST, DELTA_SCHEMA, DELTA_SNAPSHOT

        n = len(msg)
        first = np.zeros(n, bool)
        first[starts] = True
        last = np.zeros(n, bool)
        last[np.append(starts[1:] - 1, n - 1)] = True
        m = msg
        flags = (msg_snap[m] * DELTA_SNAPSHOT + (clear[m] & first) * DELTA_CLEAR + last * DELTA_LAST).astype(np.uint8)
        c = self.cols
        exch = column_ints(t.column(c["exchange_time"])) * self.unit_ns
        recv = (column_ints(t.column(c["receive_time"])) * self.unit_ns if c.get("receive_time") in t.column_names
                else exch)
        idx = np.flatnonzero(used)
        strings = {}
        for role, const in (("symbol", self.symbol), ("exchange", self.exchange)):
            if const is not None or c.get(role) not in t.column_names:
                strings[role] = pa.repeat(pa.scalar(const or ""), len(idx))
            else:
                strings[role] = t.column(c[role]).cast(pa.string()).take(pa.array(idx))
        none = np.full(len(idx), -1, np.int64)
        return pa.table({"exch_ts": exch[idx], "recv_ts": recv[idx], "symbol": strings["symbol"],
                         "exchange": strings["exchange"], "side": side[idx], "price": price[idx], "size": size[idx],
                         "flags": flags[idx], "first_id": none, "last_id": none, "prev_id": none},
                        schema=DELTA_SCHEMA)

    def _table(self, t: pa.Table, snaps: Any, starts: np.ndarray) -> pa.Table:
        rows = starts[snaps.msg]
        cols: dict[str, Any] = {"timestamp": pa.array(snaps.ts, pa.int64())}
        for role, const in (("symbol", self.symbol), ("exchange", self.exchange)):
            if const is not None or self.cols.get(role) not in t.column_names:
                cols[role] = pa.repeat(pa.scalar(const or ""), len(rows))
            else:
                cols[role] = t.column(self.cols[role]).cast(pa.string()).take(pa.array(rows))
        for name, arr in (("bid_price", snaps.bid_px), ("bid_size", snaps.bid_sz), ("ask_price", snaps.ask_px),
                          ("ask_size", snaps.ask_sz)):
            for i in range(self.levels):
                cols[f"{name}_{i + 1}"] = pa.array(arr[:, i])
        if self.cols.get("receive_time") in t.column_names:  # the message's receive time (Tardis local_timestamp)
            recv = column_ints(t.column(self.cols["receive_time"]).take(pa.array(rows))) * self.unit_ns
            cols["recv_ts"] = pa.array(recv, pa.int64())
        return pa.table(cols)


def _bool(col: Any) -> np.ndarray:
    if pa.types.is_boolean(col.type):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=bool)
    txt = pc.utf8_lower(col.cast(pa.string())).to_numpy(zero_copy_only=False)
    return np.isin(txt, ["true", "1", "t", "yes"])
