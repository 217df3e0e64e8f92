"""Binance depth-stream captures (spot, USD-M, COIN-M) rebuilt into canonical snapshots.

A capture is text (gzip or plain), one websocket message per line, behind a receive-time prefix
(``<ns> <json>`` here; other recorders write ``<float seconds>: <json>`` -- ``receive_time`` in
YAML). Depth updates carry ``U`` (first update id), ``u`` (last) and, on futures, ``pu`` (the
previous message's ``u``); a REST snapshot line carries ``lastUpdateId``. Field names and stream
names are YAML (``fields``, ``streams``); the *sequence rule* is the class (``_target_``):

* :class:`FuturesDepth` (USD-M, COIN-M): drop updates with ``u < lastUpdateId``; the first applied
  one has ``U <= lastUpdateId <= u``; then every ``pu`` equals the previous ``u``.
* :class:`SpotDepth`: drop ``u <= lastUpdateId``; first ``U <= lastUpdateId + 1 <= u``; then
  ``U`` = previous ``u`` + 1.

Updates that arrive before the snapshot line and are still needed by it (``u`` past
``lastUpdateId``) are applied after it, as Binance documents. A broken sequence marks the book
invalid: nothing is emitted, every update until the next snapshot is a reject with reason
``sequence_gap`` (line, expected vs got). The book carries across consecutive files of one source
(the second day of a capture has no snapshot): when a file is asked for before the file it
continues, that file is replayed first, silently.

**Several symbols, one capture.** ``symbol: "*"`` keeps one book per symbol -- its sequence state,
held updates and snapshot -- named by the message itself (the stream name ``btcusdt@depth`` or the
update's ``s`` field, upper-cased); a named ``symbol`` keeps that one book and rejects every other
symbol's update as ``symbol_mismatch`` (never relabelled).

**Snapshots in another file.** Recorders such as cryptofeed write the REST depth snapshots to a file
of their own (``<url> -> <float s>: <json>``, the URL naming the symbol). ``snapshots:`` in YAML
names those files and their line layout (a regex with ``time``, ``payload`` and ``symbol`` groups);
each snapshot is merged into the update stream at its receive time, applied to its symbol's book. A
snapshot whose symbol cannot be told is refused (``snapshot_symbol_unknown``), never guessed.

Checked against the venue's own top of book: a ``bookTicker`` whose ``u`` equals the ``u`` of an
applied depth message must show the rebuilt best bid/ask (``top_of_book_match``).

Why a hand-written line loop and not pyarrow's JSON reader: messages of different streams share a
file with different shapes (pyarrow infers one schema per block) and the sequence rule is stateful
per message; the loop keeps only the current chunk of messages in memory.
"""

from __future__ import annotations

import bisect
import gzip
import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

from l2exp.data.incremental.book import COUNTER_NAMES, BookState, build
from l2exp.data.readers import RawChunk, Reader
from l2exp.errors import UserError
from l2exp.schema import SIDE_FIELDS

DEFAULT_FIELDS = {"first_id": "U", "last_id": "u", "prev_id": "pu", "event_time": "E", "bids": "b", "asks": "a",
                  "snapshot_id": "lastUpdateId", "snapshot_bids": "bids", "snapshot_asks": "asks",
                  "ticker_id": "u", "ticker_bid": "b", "ticker_ask": "a"}
# updates held before a build (a message averages ~70 on USD-M): bounds memory whatever chunk_rows says
MAX_BATCH_DELTAS = 500_000
DEFAULT_STREAMS = {"depth": "@depth", "ticker": "@bookTicker", "trade": "@trade"}
# books are handed on at least this often (seconds), whatever chunk_rows says: a capture of 100 k messages
# per chunk showed "0 rows" for 37 s, then everything at once -- now the ingest's progress moves every second
FLUSH_EVERY_S = 1.0


def open_text(path: str) -> Any:
    return gzip.open(path, "rt", encoding="utf-8") if str(path).endswith(".gz") else open(path, encoding="utf-8")


@dataclass
class ReceiveTime:
    """The line prefix: ``<time><separator><json>``; ``unit`` of the time (``ns`` or ``s``)."""

    separator: str = " "
    unit: str = "ns"

    def split(self, line: str) -> tuple[int, str]:
        head, sep, payload = line.partition(self.separator)
        if not sep:
            raise ValueError("no receive-time prefix")
        return (int(head) if self.unit == "ns" else int(round(float(head) * 1e9))), payload


@dataclass
class _Sync:
    """Sequence state carried across chunks and consecutive files."""

    synced: bool = False
    last_u: int = -1
    snapshot_id: int | None = None  # set until the first update after a snapshot is applied
    gap_line: str = ""
    ever_synced: bool = False


class _Depth(NamedTuple):
    """One depth update: ids, event time (ms) and its levels as text (``p q p q ...`` or JSON pairs)."""

    U: int
    u: int
    pu: int | None
    E: int
    bids: str
    nb: int
    asks: str
    na: int


_SYMBOL_FIELD = re.compile(r'"s":"([^"]+)"')  # an unwrapped update's own symbol
_NUMBERS = str.maketrans('[]",', "    ")  # JSON pairs of quoted numbers -> whitespace-separated numbers


def _list_text(payload: str, key: str) -> tuple[str | None, int]:
    """The text of the JSON list of [price, qty] pairs after ``key`` (e.g. ``"b":[``) and its length,
    without building Python objects per level; (None, 0) when the layout is not the expected one."""
    i = payload.find(key)
    if i < 0:
        return None, 0
    i += len(key)
    if payload.startswith("]", i):
        return "", 0
    j = payload.find("]]", i)
    if j < 0:
        return None, 0
    text = payload[i:j + 1]
    return text, text.count("[")


def _pairs_text(levels: list) -> str:
    return " ".join(f"{lv[0]} {lv[1]}" for lv in levels)


@dataclass
class _Batch:
    """Messages to apply, columnar: their levels stay text until one C-level parse at flush."""

    texts: list[str] = field(default_factory=list)  # per message: bids text, asks text
    nb: list[int] = field(default_factory=list)
    na: list[int] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    clear: list[bool] = field(default_factory=list)
    emit: list[bool] = field(default_factory=list)
    line: list[int] = field(default_factory=list)
    last_u: list[int] = field(default_factory=list)
    first_u: list[int] = field(default_factory=list)
    prev_u: list[int] = field(default_factory=list)
    recv: list[int] = field(default_factory=list)
    trades: list[tuple[int, int, str, str, int, int]] = field(default_factory=list)

    def add(self, ts: int, line: int, ids: tuple[int, int, int], recv: int, d: _Depth, clear: bool,
            emit: bool) -> None:
        self.ts.append(ts)
        self.line.append(line)
        self.first_u.append(ids[0])
        self.last_u.append(ids[1])
        self.prev_u.append(ids[2])
        self.recv.append(recv)
        self.clear.append(clear)
        self.emit.append(emit)
        self.texts.append(d.bids)
        self.texts.append(d.asks)
        self.nb.append(d.nb)
        self.na.append(d.na)

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(msg, side, price, size) of every level update, in message order (bids then asks)."""
        m = len(self.ts)
        nb, na = np.asarray(self.nb, np.int64), np.asarray(self.na, np.int64)
        per = np.empty(2 * m, np.int64)
        per[0::2], per[1::2] = nb, na
        side = np.repeat(np.tile(np.array([1, -1], np.int8), m), per)
        msg = np.repeat(np.arange(m, dtype=np.int64), nb + na)
        text = " ".join(self.texts).translate(_NUMBERS)
        values = np.fromstring(text, dtype=np.float64, sep=" ") if len(msg) else np.zeros(0)
        if values.size != 2 * len(msg):
            raise ValueError(f"{values.size} numbers for {len(msg)} levels")
        return msg, side, values[0::2], values[1::2]


@dataclass
class _Book:
    """One symbol's book while a file is read: its state, sequence, held updates and pending batch."""

    symbol: str
    state: BookState
    sync: _Sync
    pending: list = field(default_factory=list)  # (line, recv, update) while not synced
    batch: _Batch = field(default_factory=_Batch)
    tickers: list = field(default_factory=list)  # (u, best bid, best ask) of the venue's bookTicker


@dataclass
class SnapshotFiles:
    """REST depth snapshots kept in files of their own (YAML ``data.reader.snapshots``).

    Args:
        path: a file or a glob (several files are merged by receive time).
        pattern: a regex over one line with the groups ``time`` (receive time), ``payload`` (the JSON)
            and, optionally, ``symbol`` (cryptofeed: from the URL's ``symbol=`` parameter).
        unit: of ``time``: ``s`` (float seconds) or ``ns``.
        skip: a regex; lines it matches are counted and skipped (a recorder's header or connect lines).
    """

    path: str
    pattern: str = r"^(?P<url>\S*?[?&]symbol=(?P<symbol>[A-Za-z0-9_\-]+)\S*) -> (?P<time>[0-9.]+): (?P<payload>.*)$"
    unit: str = "s"
    skip: str = ""

    def load(self) -> tuple[list[tuple[int, str | None, str, str]], list[tuple[str, int, str]]]:
        """Every snapshot, sorted by receive time: (recv ns, symbol or None, payload, where); and the lines
        that did not match (file, line, text) -- said, never dropped silently."""
        import glob

        files = sorted(glob.glob(self.path)) if any(c in self.path for c in "*?[") else [self.path]
        if not files or not all(os.path.isfile(f) for f in files):
            raise UserError(f"no snapshot file matches {self.path!r}", where="data.reader.snapshots.path",
                            fix="Point it at the recorder's REST snapshot file(s) (a file or a glob).")
        rx, skip = re.compile(self.pattern), re.compile(self.skip) if self.skip else None
        out, bad = [], []
        for f in files:
            with open_text(f) as fh:
                for lineno, line in enumerate(fh, 1):
                    line = line.rstrip("\n")
                    if not line.strip() or (skip is not None and skip.search(line)):
                        continue
                    m = rx.match(line)
                    if m is None:
                        bad.append((f, lineno, line[:120]))
                        continue
                    t = m.group("time")
                    recv = int(t) if self.unit == "ns" else int(round(float(t) * 1e9))
                    sym = m.groupdict().get("symbol")
                    out.append((recv, sym.upper() if sym else None, m.group("payload"), f"{f}, line {lineno}"))
        out.sort(key=lambda r: r[0])
        return out, bad


class BinanceDepth(Reader):
    """Base of the two sequence rules (see the module docstring); ``levels`` canonical levels out.

    Args:
        symbol: the symbol of every row; ``"*"`` = every symbol of the capture, one book each (named by
            the message: stream name or ``s`` field, upper-cased).
        exchange: the canonical ``exchange`` of every row.
        snapshots: REST snapshots in separate files (:class:`SnapshotFiles` as a mapping), or None.
        skip_lines: a regex; capture lines it matches (a recorder's header, connect or subscribe lines)
            are counted (``lines_skipped``) and not read.
        fields / streams: JSON field names and stream-name markers (Binance's by default).
        receive_time: ``{separator, unit}`` of the line prefix.
        sample_ms: 0 = one snapshot per depth message (exchange event time); else one per boundary.
        max_depth: levels kept per side (memory bound; the REST snapshot has 1,000).
    """

    rule = ""

    def __init__(self, levels: int, symbol: str, exchange: str, fields: dict[str, str] | None = None,
                 streams: dict[str, str] | None = None, receive_time: dict[str, Any] | None = None,
                 sample_ms: float = 0, max_depth: int = 5000, snapshots: dict[str, Any] | None = None,
                 skip_lines: str = "", inline_snapshots_of: str | None = None, **_: Any) -> None:
        super().__init__(levels)
        self.symbol, self.exchange = str(symbol), exchange
        self.every_symbol = self.symbol in ("*", "")
        self._own = self.symbol.upper()
        self.snapshot_files = SnapshotFiles(**snapshots) if snapshots else None
        self._snapshots: list[tuple[int, str | None, str, str]] | None = None
        self._snapshot_bad: list[tuple[str, int, str]] = []  # snapshot-file lines the pattern did not match
        self._skip = re.compile(skip_lines) if skip_lines else None
        # a capture of several symbols whose inline REST snapshots name none: whose book they are is declared
        # here (the one symbol they were all taken for), or the file is refused -- never guessed
        self.inline_snapshots_of = str(inline_snapshots_of).upper() if inline_snapshots_of else None
        # of the file being read: this symbol's updates, inline snapshots, the other symbols seen
        self._own_updates = self._inline_snapshots = 0
        self._other_symbols: set[str] = set()
        self._held = self._held_deltas = 0  # messages and levels added to the books' batches since the last flush
        self.f = {**DEFAULT_FIELDS, **(fields or {})}
        self.streams = {**DEFAULT_STREAMS, **(streams or {})}
        self.receive = ReceiveTime(**(receive_time or {}))
        self.emit_every_ns = int(round(float(sample_ms) * 1e6))
        self.max_depth = int(max_depth)
        self.files: list[str] = []  # the source's files in order (set by DataSource): continuation
        self._ids = {k: re.compile(rf'"{re.escape(self.f[k])}":(-?\d+)')
                     for k in ("first_id", "last_id", "prev_id", "event_time")}
        self._keys = (f'"{self.f["bids"]}":[', f'"{self.f["asks"]}":[')
        # end state of each file read: every symbol's (book, sequence), and the last receive time read
        self._carried: dict[str, tuple[dict[str, tuple[BookState, _Sync]], int]] = {}

    # -- the rule --------------------------------------------------------------------------------
    def first_ok(self, U: int, u: int, snap: int) -> bool:
        raise NotImplementedError

    def stale(self, u: int, snap: int) -> bool:
        raise NotImplementedError

    def follows(self, d: _Depth, last_u: int) -> tuple[bool, str]:
        raise NotImplementedError

    def check_venue(self, d: _Depth) -> None:
        """Refuse another venue's messages (their ids follow another rule) before judging their sequence."""

    # -- reading -----------------------------------------------------------------------------------
    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        books, last_recv = self._start(path)
        yield from self._read(path, chunk_rows, books, last_recv, emit=True)

    def _new_book(self, symbol: str) -> _Book:
        return _Book(symbol, BookState(self.max_depth), _Sync())

    def _start(self, path: str) -> tuple[dict[str, _Book], int]:
        """The books this file starts from: the previous file's end state when the source has one."""
        idx = self.files.index(path) if path in self.files else -1
        if idx > 0:
            prev = self.files[idx - 1]
            if prev not in self._carried:  # not read in this run (already in the store): replay it
                books, last = self._start(prev)
                for _ in self._read(prev, 1 << 16, books, last, emit=False):
                    pass
            carried, last = self._carried[prev]
            return {k: _Book(k, _copy_state(st), _Sync(**vars(sy))) for k, (st, sy) in carried.items()}, last
        return ({} if self.every_symbol else {self.symbol: self._new_book(self.symbol)}), -1

    def _book_in(self, books: dict[str, _Book], key: str) -> _Book:
        """The book ``key`` of this read, begun empty at the first message of a symbol."""
        bk = books.get(key)
        if bk is None:
            bk = books[key] = self._new_book(key)
        return bk

    def _book(self, symbol: str) -> str | None:
        """The book a message of ``symbol`` (as the capture spells it) goes to; None: another symbol's."""
        up = symbol.upper()
        if self.every_symbol:
            return up
        return self.symbol if up == self._own else None

    def _snapshot_source(self) -> list[tuple[int, str | None, str, str]]:
        if self._snapshots is None:
            if self.snapshot_files is None:
                self._snapshots = []
            else:
                self._snapshots, self._snapshot_bad = self.snapshot_files.load()
        return self._snapshots

    def _read(self, path: str, chunk_rows: int, books: dict[str, _Book], last_recv: int,
              emit: bool) -> Iterator[RawChunk]:
        streams = self.streams
        rejects: list = []
        stats: Counter = Counter()
        self._own_updates = self._inline_snapshots = self._held = self._held_deltas = 0
        self._other_symbols = set()
        snaps = self._snapshot_source()
        at = bisect.bisect_right([r[0] for r in snaps], last_recv) if snaps else 0
        if snaps and self.files and path == self.files[0]:
            for f, ln, text in self._snapshot_bad:  # said once, with the first file
                rejects.append((0, "unparseable", f"snapshot file {f}, line {ln}: does not match "
                                                  f"data.reader.snapshots.pattern: {text!r}"))
        lineno = 0
        recv = last_recv
        flushed = time.perf_counter()
        try:
            fh = open_text(path)
            with fh:
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    if self._skip is not None and self._skip.search(line):
                        stats["lines_skipped"] += 1
                        continue
                    try:
                        recv, payload = self.receive.split(line)
                    except ValueError as exc:
                        rejects.append((lineno, "unparseable", f"{exc}: {line[:120]!r}"))
                        continue
                    while at < len(snaps) and snaps[at][0] <= recv:  # snapshots received before this line
                        self._file_snapshot(snaps[at], lineno, books, rejects, stats)
                        at += 1
                    head = payload[:80]
                    if streams["depth"] in head:  # the hot path: no JSON objects per level
                        name = None
                        if head.startswith('{"stream":"'):
                            cut = head.find("@", 11)
                            name = head[11:cut] if cut > 11 else None
                        d = self._depth(payload)
                        if d is None:
                            rejects.append((lineno, "unparseable", f"depth message: {line[:120]!r}"))
                            continue
                        if name is None:
                            name = self._symbol_field(payload)
                        key = self._book(name) if name else (None if self.every_symbol else self.symbol)
                        if key is None:
                            # another symbol's update (its stream name or own field) is a reject with its reason,
                            # never relabelled as the configured symbol
                            self._other_symbol(name or "?", lineno, rejects, stats)
                            continue
                        bk = self._book_in(books, key)
                        self._arrived(d, lineno, recv, bk, rejects, stats)
                    else:
                        self._other(payload, recv, lineno, books, rejects, stats)
                    if (self._held >= chunk_rows or self._held_deltas >= MAX_BATCH_DELTAS
                            or (not lineno & 4095 and time.perf_counter() - flushed >= FLUSH_EVERY_S)):
                        yield self._flush(path, books, rejects, stats, emit)
                        rejects, stats = [], Counter()
                        flushed = time.perf_counter()
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            from l2exp.data.readers import _corrupt

            raise _corrupt(path, exc, lineno) from None
        self._check_inline_snapshots(path)
        for bk in books.values():
            sync = bk.sync
            for line_, _recv, d in bk.pending:  # never brought in sync in this file
                why = "sequence_gap" if sync.ever_synced or sync.gap_line else "no_snapshot"
                detail = (f"{bk.symbol}: waiting for a snapshot after the gap at {sync.gap_line}"
                          if why == "sequence_gap" else
                          f"{bk.symbol}: no depth snapshot before this update (in this file or the file it "
                          "continues" + (", or in data.reader.snapshots" if self.snapshot_files else "") + ")")
                rejects.append((line_, why, detail))
                stats["deltas_rejected"] += d.nb + d.na
            bk.pending = []
        yield self._flush(path, books, rejects, stats, emit)
        self._carried[path] = ({k: (_copy_state(b.state), _Sync(**vars(b.sync))) for k, b in books.items()}, recv)
        while len(self._carried) > 2:  # only the file just read can be continued: memory flat in files
            self._carried.pop(next(iter(self._carried)))

    def _check_inline_snapshots(self, path: str) -> None:
        """Inline REST snapshots name no symbol; in a capture that also carries other symbols' updates they may be
        any symbol's, and applied to this book they are silently wrong (their ids share one sequence space, so no
        gap fires: 246 books crossed, blamed on "swapped columns"). Such a file is refused unless
        ``inline_snapshots_of`` declares whose they are; the ingest then stores nothing of it."""
        others, inline = sorted(self._other_symbols), self._inline_snapshots
        if not inline or not others or not self._own_updates or self.inline_snapshots_of == self._own:
            return  # (a file of only another symbol's updates stores nothing: its symbol_mismatch rejects say why)
        raise UserError(f"{path} holds depth updates of several symbols ({', '.join([self._own, *others][:6])}) and "
                        f"{inline} inline REST snapshot(s) that name no symbol: which book each belongs to cannot be "
                        "told", where=f"{path} (data.reader.symbol={self.symbol})",
                        fix="Keep the snapshots in a file whose lines name the symbol (data.reader.snapshots, the "
                            "URL's symbol=) and set data.reader.symbol='*'; or, if every inline snapshot is "
                            f"{self.symbol}'s, say so: data.reader.inline_snapshots_of={self.symbol}")

    def _symbol_field(self, payload: str) -> str | None:
        m = _SYMBOL_FIELD.search(payload[:200])
        return m.group(1) if m else None

    def _other_symbol(self, name: str, lineno: int, rejects: list, stats: Counter) -> None:
        up = name.upper()
        stats[f"other_symbol:{up}"] += 1
        self._other_symbols.add(up)
        rejects.append((lineno, "symbol_mismatch", f"a {up} message; this source is configured as {self.symbol} "
                                                   "(data.reader.symbol; \"*\" keeps every symbol, a book each)"))

    def _file_snapshot(self, snap: tuple[int, str | None, str, str], lineno: int, books: dict[str, _Book],
                       rejects: list, stats: Counter) -> None:
        """A snapshot from :attr:`snapshot_files`, applied to its symbol's book at its receive time."""
        recv, sym, payload, where = snap
        if sym is None and self.every_symbol:
            rejects.append((lineno, "snapshot_symbol_unknown", f"snapshot at {where}: its line names no symbol "
                            "(data.reader.snapshots.pattern has no 'symbol' group) and data.reader.symbol is \"*\""))
            return
        key = self._book(sym) if sym else self.symbol
        if key is None:
            stats[f"other_symbol_snapshots:{sym}"] += 1
            return  # another symbol's snapshot: its updates are rejected as symbol_mismatch
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as exc:
            rejects.append((lineno, "unparseable", f"snapshot at {where}: {exc}"))
            return
        data = data.get("data", data) if isinstance(data, dict) else data
        if not isinstance(data, dict) or self.f["snapshot_id"] not in data:
            rejects.append((lineno, "unparseable", f"snapshot at {where}: no {self.f['snapshot_id']!r} field"))
            return
        bk = self._book_in(books, key)
        stats["snapshots_in"] += 1
        stats["snapshots_from_file"] += 1
        stats["deltas_in"] += len(data[self.f["snapshot_bids"]]) + len(data[self.f["snapshot_asks"]])
        self._snapshot(data, recv, lineno, bk, rejects, stats)

    def _other(self, payload: str, recv: int, lineno: int, books: dict[str, _Book], rejects: list,
               stats: Counter) -> None:
        """A line that is not a wrapped depth update: the REST snapshot, an unwrapped update, a ticker,
        a trade (JSON-parsed: few, or small)."""
        f, streams = self.f, self.streams
        try:
            obj = json.loads(payload)
        except json.JSONDecodeError as exc:
            rejects.append((lineno, "unparseable", f"{exc}: {payload[:120]!r}"))
            return
        stream = obj.get("stream", "") if isinstance(obj, dict) else ""
        data = obj.get("data", obj) if isinstance(obj, dict) else obj
        if not isinstance(data, dict):
            rejects.append((lineno, "unparseable", f"not a JSON object: {payload[:120]!r}"))
            return
        name = stream.split("@", 1)[0] if stream else data.get("s")
        if f["snapshot_id"] in data:  # an inline REST snapshot: no symbol of its own
            if self.every_symbol:
                rejects.append((lineno, "snapshot_symbol_unknown", "an inline REST snapshot names no symbol and "
                                "data.reader.symbol is \"*\": keep snapshots in data.reader.snapshots (the URL names "
                                "the symbol), or set data.reader.symbol"))
                return
            stats["snapshots_in"] += 1
            stats["deltas_in"] += len(data[f["snapshot_bids"]]) + len(data[f["snapshot_asks"]])
            self._inline_snapshots += 1
            self._snapshot(data, recv, lineno, books[self.symbol], rejects, stats)
            return
        key = self._book(str(name)) if name else (None if self.every_symbol else self.symbol)
        is_update = not stream and f["first_id"] in data and f["bids"] in data
        if key is None and (is_update or streams["ticker"] in stream or streams["trade"] in stream):
            if is_update:
                self._other_symbol(str(name or "?"), lineno, rejects, stats)
            else:
                stats[f"other_symbol_messages:{str(name).upper()}"] += 1  # a ticker or print: no book row
            return
        if is_update:  # an unwrapped depth update
            bk = self._book_in(books, key)
            self._arrived(self._depth_of(data), lineno, recv, bk, rejects, stats)
        elif streams["ticker"] in stream:
            bk = self._book_in(books, key)
            bk.tickers.append((int(data[f["ticker_id"]]), float(data[f["ticker_bid"]]), float(data[f["ticker_ask"]])))
        elif streams["trade"] in stream:
            bk = self._book_in(books, key)
            stats["trades_in"] += 1
            bk.batch.trades.append((int(data["T"]) * 1_000_000, recv, data["p"], data["q"],
                                    -1 if data["m"] else 1, int(data.get("t", -1))))
        else:
            stats["other_messages"] += 1

    def _arrived(self, d: _Depth, lineno: int, recv: int, bk: _Book, rejects: list, stats: Counter) -> None:
        """A depth update as read: counted, then applied, or held until a snapshot (:meth:`_update`)."""
        stats["depth_messages"] += 1
        stats["deltas_in"] += d.nb + d.na
        self._own_updates += 1
        self._update(d, lineno, bk, rejects, stats, recv=recv)

    def _snapshot(self, data: dict[str, Any], recv: int, line: int, bk: _Book, rejects: list,
                  stats: Counter) -> None:
        f, sync = self.f, bk.sync
        snap = int(data[f["snapshot_id"]])
        ts = int(data[f["event_time"]]) * 1_000_000 if f["event_time"] in data else recv
        bids, asks = data[f["snapshot_bids"]], data[f["snapshot_asks"]]
        self._add(bk, ts, line, (-1, snap, -1), recv, _Depth(-1, snap, None, 0, _pairs_text(bids), len(bids),
                                                             _pairs_text(asks), len(asks)), clear=True, emit=False)
        # updates held while there was no valid book: after a gap they were skipped because of it
        stale_reason = "sequence_gap" if sync.gap_line else "before_snapshot"
        sync.synced, sync.last_u, sync.snapshot_id, sync.ever_synced = True, snap, snap, True
        waiting, bk.pending = list(bk.pending), []
        for line_, recv_, d in waiting:
            self._update(d, line_, bk, rejects, stats, stale_reason, recv_)
        sync.gap_line = ""

    def _depth(self, payload: str) -> _Depth | None:
        """A depth message read by string search (ids by regex, levels as text); JSON as the fallback."""
        found = [r.search(payload) for r in self._ids.values()]
        bids, nb = _list_text(payload, self._keys[0])
        asks, na = _list_text(payload, self._keys[1])
        if found[0] is None or found[1] is None or found[3] is None or bids is None or asks is None:
            try:
                obj = json.loads(payload)
                data = obj.get("data", obj)
                return self._depth_of(data)
            except (ValueError, KeyError, TypeError, AttributeError):
                return None
        pu = int(found[2].group(1)) if found[2] is not None else None
        return _Depth(int(found[0].group(1)), int(found[1].group(1)), pu, int(found[3].group(1)), bids, nb, asks, na)

    def _depth_of(self, data: dict[str, Any]) -> _Depth:
        f = self.f
        bids, asks = data[f["bids"]], data[f["asks"]]
        pu = int(data[f["prev_id"]]) if f["prev_id"] in data else None
        return _Depth(int(data[f["first_id"]]), int(data[f["last_id"]]), pu, int(data[f["event_time"]]),
                      _pairs_text(bids), len(bids), _pairs_text(asks), len(asks))

    def _update(self, d: _Depth, line: int, bk: _Book, rejects: list, stats: Counter,
                stale_reason: str = "before_snapshot", recv: int = 0) -> None:
        sync = bk.sync
        if not sync.synced:
            bk.pending.append((line, recv, d))
            return
        self.check_venue(d)
        U, u = d.U, d.u
        n = d.nb + d.na
        if sync.snapshot_id is not None:
            snap = sync.snapshot_id
            if self.stale(u, snap):
                why = f"u={u} is older than the snapshot's lastUpdateId={snap}"
                if stale_reason == "sequence_gap":
                    why = f"skipped: no valid book since the gap at {sync.gap_line} ({why})"
                    stats["deltas_rejected"] += n
                else:
                    stats["deltas_before_snapshot"] += n
                rejects.append((line, stale_reason, why))
                return
            if not self.first_ok(U, u, snap):
                self._gap(line, f"first update after the snapshot (lastUpdateId={snap}) must bracket it; got "
                                f"U={U}, u={u}", sync, rejects, stats, n)
                return
            sync.snapshot_id = None
        else:
            ok, why = self.follows(d, sync.last_u)
            if not ok:
                self._gap(line, why, sync, rejects, stats, n)
                return
        sync.last_u = u
        self._add(bk, d.E * 1_000_000, line, (U, u, -1 if d.pu is None else d.pu), recv, d, clear=False, emit=True)

    def _add(self, bk: _Book, ts: int, line: int, ids: tuple[int, int, int], recv: int, d: _Depth, clear: bool,
             emit: bool) -> None:
        """A message into its book's batch, counted for the flush rule (held messages and levels of all books:
        no pass over the books per line)."""
        bk.batch.add(ts, line, ids, recv, d, clear, emit)
        self._held += 1
        self._held_deltas += d.nb + d.na

    def _gap(self, line: int, why: str, sync: _Sync, rejects: list, stats: Counter, n: int) -> None:
        rejects.append((line, "sequence_gap", why))
        stats["sequence_gaps"] += 1
        stats["deltas_rejected"] += n
        sync.synced, sync.snapshot_id, sync.gap_line = False, None, f"line {line}"

    def _flush(self, path: str, books: dict[str, _Book], rejects: list, stats: Counter, emit: bool) -> RawChunk:
        """Every symbol's pending updates applied to its book; the rows of all symbols in line order."""
        tables, lines, deltas, trades = [], [], [], []
        self._held = self._held_deltas = 0
        for bk in books.values():
            out = self._flush_book(path, bk, stats, emit)
            bk.batch, bk.tickers = _Batch(), []
            if out is not None:
                tables.append(out[0])
                lines.append(out[1])
                deltas.append(out[2])
                trades.append(out[3])
        if not emit:
            return RawChunk(pa.table({}), path, np.zeros(0, np.int64))
        if not tables:
            none, empty = np.zeros(0, np.int64), np.zeros((0, self.levels))
            tables, lines = [self._rows(self.symbol, none, (empty,) * 4, none)], [none]
            deltas, trades = [self._deltas(_Batch(), self.symbol, *[np.zeros(0)] * 4)], [self._trades([], self.symbol)]
        table, line = pa.concat_tables(tables), np.concatenate(lines)
        if len(tables) > 1:  # several symbols: in the order the capture received them
            order = np.argsort(line, kind="stable")
            table, line = table.take(pa.array(order)), line[order]
        return RawChunk(table, path, line, rejects=rejects, stats=dict(stats),
                        sides={"deltas": pa.concat_tables(deltas), "trades": pa.concat_tables(trades)})

    def _flush_book(self, path: str, bk: _Book, stats: Counter, emit: bool) -> tuple | None:
        b, state, tickers = bk.batch, bk.state, bk.tickers
        counts = np.zeros(len(COUNTER_NAMES), np.int64)
        m = len(b.ts)
        if m == 0 and not b.trades and not tickers:
            return None
        try:
            msg, side, price, size = b.columns()
        except ValueError as exc:
            raise UserError(f"{path}: depth levels that are not [price, quantity] pairs of numbers ({exc})",
                            where=f"{path}, lines {b.line[0] if b.line else '?'}..{b.line[-1] if b.line else '?'}",
                            fix="Check that the file is a Binance depth capture (data.reader.fields names "
                                "its bids/asks).") from None
        snaps, best = build(state, msg, side, price, size, np.asarray(b.ts, np.int64), np.asarray(b.clear, bool),
                            np.ones(m, bool), np.asarray(b.emit, bool), self.levels, self.emit_every_ns, counts)
        for name, c in zip(COUNTER_NAMES, counts, strict=True):
            stats[name] += int(c)
        if tickers:
            t = np.asarray(tickers, dtype=np.float64)
            last_u = np.asarray(b.last_u, np.int64)
            order = np.argsort(last_u, kind="stable")
            tu = t[:, 0].astype(np.int64)
            pos = np.searchsorted(last_u[order], tu)
            hit = (pos < m) & (last_u[order][np.minimum(pos, m - 1)] == tu) if m else np.zeros(len(tu), bool)
            rows = order[pos[hit]]
            stats["ticker_checks"] += int(hit.sum())
            stats["ticker_matches"] += int(((best[rows, 0] == t[hit, 1]) & (best[rows, 1] == t[hit, 2])).sum())
        if not emit:
            return None
        lines = np.asarray(b.line, np.int64)[snaps.msg]
        recv = np.asarray(b.recv, np.int64)[snaps.msg]  # the line prefix of the message each row came after
        rows = self._rows(bk.symbol, snaps.ts, (snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz), recv)
        return rows, lines, self._deltas(b, bk.symbol, msg, side, price, size), self._trades(b.trades, bk.symbol)

    def _rows(self, symbol: str, ts: np.ndarray, mats: tuple[np.ndarray, ...], recv: np.ndarray) -> pa.Table:
        """Canonical rows: times, the four (rows, levels) matrices in SIDE_FIELDS order, receive times."""
        n = len(ts)
        cols: dict[str, Any] = {"timestamp": pa.array(ts, pa.int64()), "symbol": pa.repeat(pa.scalar(symbol), n),
                                "exchange": pa.repeat(pa.scalar(self.exchange), n)}
        for name, arr in zip(SIDE_FIELDS, mats, strict=True):
            for i in range(self.levels):
                cols[f"{name}_{i + 1}"] = pa.array(arr[:, i], pa.float64())
        cols["recv_ts"] = pa.array(recv, pa.int64())
        return pa.table(cols)

    def _deltas(self, b: _Batch, symbol: str, msg: np.ndarray, side: np.ndarray, price: np.ndarray,
                size: np.ndarray) -> pa.Table:
        """The applied updates in the canonical delta schema (``l2exp.schema.DELTA_SCHEMA``)."""
        from l2exp.schema import DELTA_CLEAR, DELTA_LAST, DELTA_SCHEMA, DELTA_SNAPSHOT

        msg = np.asarray(msg, np.int64)
        n = len(msg)
        clear = np.asarray(b.clear, bool)[msg] if n else np.zeros(0, bool)
        first = np.ones(n, bool)
        first[1:] = msg[1:] != msg[:-1]
        last = np.ones(n, bool)
        last[:-1] = msg[1:] != msg[:-1]
        flags = (clear * DELTA_SNAPSHOT + (clear & first) * DELTA_CLEAR + last * DELTA_LAST).astype(np.uint8)
        per_msg = {k: np.asarray(v, np.int64) for k, v in (("exch_ts", b.ts), ("recv_ts", b.recv),
                                                           ("first_id", b.first_u), ("last_id", b.last_u),
                                                           ("prev_id", b.prev_u))}
        cols = {k: v[msg] if n else v[:0] for k, v in per_msg.items()}
        return pa.table({"exch_ts": cols["exch_ts"], "recv_ts": cols["recv_ts"],
                         "symbol": pa.repeat(pa.scalar(symbol), n),
                         "exchange": pa.repeat(pa.scalar(self.exchange), n),
                         "side": np.asarray(side, np.int8), "price": price, "size": size, "flags": flags,
                         "first_id": cols["first_id"], "last_id": cols["last_id"], "prev_id": cols["prev_id"]},
                        schema=DELTA_SCHEMA)

    def _trades(self, t: list, symbol: str) -> pa.Table:
        from l2exp.schema import TRADE_SCHEMA

        n = len(t)
        return pa.table({"ts": np.asarray([r[0] for r in t], np.int64),
                         "recv_ts": np.asarray([r[1] for r in t], np.int64),
                         "symbol": pa.repeat(pa.scalar(symbol), n),
                         "exchange": pa.repeat(pa.scalar(self.exchange), n),
                         "price": np.asarray([r[2] for r in t], dtype=np.float64),
                         "size": np.asarray([r[3] for r in t], dtype=np.float64),
                         "side": np.asarray([r[4] for r in t], np.int8),
                         "trade_id": np.asarray([r[5] for r in t], np.int64)}, schema=TRADE_SCHEMA)


def _copy_state(s: BookState) -> BookState:
    out = BookState(s.max_depth)
    for name in ("bid_px", "bid_sz", "ask_px", "ask_sz", "n", "next_emit_ns"):
        getattr(out, name)[:] = getattr(s, name)
    return out


class FuturesDepth(BinanceDepth):
    """USD-M and COIN-M futures: ``pu`` chains messages."""

    rule = "futures"

    def first_ok(self, U: int, u: int, snap: int) -> bool:
        return U <= snap <= u

    def stale(self, u: int, snap: int) -> bool:
        return u < snap

    def check_venue(self, d: _Depth) -> None:
        key = self.f["prev_id"]
        if d.pu is None:
            raise UserError(f"depth updates have no {key!r} (previous update id): this is not a futures capture",
                            where=f"data.reader ({type(self).__name__})",
                            fix="Spot captures (U/u only) need the spot rule: data=binance_spot_btcusdt or "
                                "data.reader._target_=l2exp.data.incremental.binance.SpotDepth")

    def follows(self, d: _Depth, last_u: int) -> tuple[bool, str]:
        key = self.f["prev_id"]
        pu = d.pu
        return pu == last_u, f"expected {key}={last_u} (the previous update's u), got {key}={pu}"


class SpotDepth(BinanceDepth):
    """Spot: ``U`` = previous ``u`` + 1."""

    rule = "spot"

    def first_ok(self, U: int, u: int, snap: int) -> bool:
        return U <= snap + 1 <= u

    def stale(self, u: int, snap: int) -> bool:
        return u <= snap

    def check_venue(self, d: _Depth) -> None:
        if d.pu is not None:
            raise UserError(f"depth updates carry {self.f.get('prev_id', 'pu')!r}: this is a futures capture read with "
                            "the spot rule", where=f"data.reader ({type(self).__name__})",
                            fix="Use data=binance_usdm_btcusdt / binance_cm_btcusd_perp or "
                                "data.reader._target_=l2exp.data.incremental.binance.FuturesDepth")

    def follows(self, d: _Depth, last_u: int) -> tuple[bool, str]:
        U = d.U
        return last_u + 1 == U, f"expected U={last_u + 1} (the previous update's u + 1), got U={U}"
