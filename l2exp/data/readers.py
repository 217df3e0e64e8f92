"""Chunked readers: CSV/CSV.gz, JSON lines (nested bids/asks arrays) and Parquet.

Each reader yields :class:`RawChunk` s of at most ``chunk_rows`` rows, so memory is bounded by the
chunk size, not the file size. Parsing is pyarrow's (multi-threaded C++), not Python.

Readers know only about files and raw columns; turning raw columns into canonical snapshots is
:mod:`l2exp.data.mapping`'s job. Column layouts of headerless files are written in config with
a compact pattern language (see :func:`expand_columns`).
"""

from __future__ import annotations

import gzip
import itertools
import json
import mmap
import os
import queue
import re
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq
from isal import igzip_threaded, isal_zlib

from l2exp.data import warm
from l2exp.data.csv_fast import FastCsvParser
from l2exp.errors import UserError
from l2exp.files import MAP_POPULATE


@dataclass
class RawChunk:
    """Raw rows of one file as read, before mapping.

    ``lines`` gives the 1-based source line of every row in ``table``; ``bad_rows`` are rows that
    could not be split into columns at all (wrong field count, broken JSON) as ``(line, text)``.
    Readers that rebuild books from updates add ``rejects`` (``(line, reason, detail)`` of messages
    that produced no row: ``sequence_gap``, ``no_snapshot``...) and ``stats`` (counters such as
    ``deltas_in``, summed over the file).
    """

    table: pa.Table
    path: str
    lines: np.ndarray
    bad_rows: list[tuple[int, str]] = field(default_factory=list)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    sides: dict[str, pa.Table] = field(default_factory=dict)  # "deltas" / "trades" rows to store beside
    # the compiled parser's float columns as one (rows, k) column-major matrix (column j of it is
    # ``float_columns``' column j; the table's float columns are views of it): the mapping takes a
    # side's levels as a slice of it when they are adjacent, instead of copying them
    floats: np.ndarray | None = None
    float_columns: dict[str, int] = field(default_factory=dict)


def expand_columns(spec: list[Any] | None, levels: int) -> list[str] | None:
    """Expand a headerless column layout.

    * ``"name"``        -> one column;
    * ``"a{i}"``        -> a block ``a1, a2, ..., aN`` (all levels of one field);
    * ``["ap{i}", "as{i}"]`` -> interleaved per level: ``ap1, as1, ap2, as2, ...``.

    BitMEX orderbook10 is ``[moment, millis, symbol, "a{i}", "av{i}", "b{i}", "bv{i}"]``; LOBSTER is
    ``[["ap{i}", "as{i}", "bp{i}", "bs{i}"]]``.
    """
    if spec is None:
        return None
    out: list[str] = []
    for item in spec:
        if isinstance(item, str):
            if "{i}" in item:
                out.extend(item.format(i=i) for i in range(1, levels + 1))
            else:
                out.append(item)
        else:
            group = list(item)
            for i in range(1, levels + 1):
                out.extend(g.format(i=i) for g in group)
    return out


def _corrupt(path: str, exc: Exception, rows: int) -> UserError:
    from l2exp.errors import DamagedFile

    return DamagedFile(
        f"could not read {Path(path).name}: the file is truncated or corrupt ({exc})",
        where=f"{path}, after {rows} rows",
        fix="Re-download or re-copy the file (for .gz: `gzip -t FILE` checks it). The rows before the "
            "damage are stored; a rerun after fixing the file adds only what is missing.",
        rows=rows,
    )


def check_delimiter(header: str, delimiter: str, path: str) -> None:
    """A header that is one column under ``delimiter`` but several under another: the wrong delimiter."""
    counts = {d: header.count(d) for d in (",", ";", "\t", "|") if d != delimiter}
    best = max(counts, key=lambda d: counts[d])
    if counts[best] >= 1:
        raise UserError(f"the header of {Path(path).name} is one column when split on {delimiter!r}, "
                        f"{counts[best] + 1} when split on {best!r}", where=f"{path}, line 1",
                        fix=f"Set the delimiter the header suggests: data.reader.delimiter={best!r}")


class Reader:
    """Base class: ``iter_chunks(path, chunk_rows)``; ``numeric`` names columns expected numeric."""

    def __init__(self, levels: int, **unknown: Any) -> None:
        """``unknown``: keys of ``data.reader`` no reader of this kind takes -- a typo
        (``+data.reader.delimeter=;``) is refused naming the closest key, never ignored."""
        if unknown:
            import difflib
            import inspect

            known = [p for c in type(self).__mro__ if c is not object
                     for p in inspect.signature(c.__init__).parameters if p not in ("self", "kw", "unknown", "_")]
            key = sorted(unknown)[0]
            close = difflib.get_close_matches(key, known, n=1)
            raise UserError(f"unknown key data.reader.{key} for {type(self).__name__}", where=f"data.reader.{key}",
                            fix=(f"Did you mean data.reader.{close[0]}? " if close else "") +
                                f"({type(self).__name__} takes: {', '.join(sorted(set(known)))})")
        self.levels = levels

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        raise NotImplementedError


# (valid rows, their source lines, malformed (line, text) rows, lines consumed, keep-mask or None)
_Batch = tuple[pa.Table, np.ndarray, list[tuple[int, str]], int, "np.ndarray | None"]


def numbered_blocks(reader: Any) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Each block of a pyarrow CSV stream with the source line of every row (the header is line 1): the
    readers that regroup rows (per symbol, per snapshot) still name a reject's line."""
    next_line = 2
    for batch in reader:
        table = pa.Table.from_batches([batch])
        yield table, np.arange(next_line, next_line + table.num_rows, dtype=np.int64)
        next_line += table.num_rows


def column_ints(col: Any) -> np.ndarray:
    """An Arrow column as int64 (cast; text and floats included)."""
    return np.asarray(col.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def column_floats(col: Any) -> np.ndarray:
    """An Arrow column as float64 (text parsed as numbers, integers converted)."""
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.cast(col, pa.float64(), safe=False)
    elif not pa.types.is_floating(col.type):
        col = col.cast(pa.float64())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


class CsvReader(Reader):
    """CSV / CSV.gz (decompressed by pyarrow from the file ending), with or without a header.

    Args:
        columns: headerless layout (see :func:`expand_columns`); ``None`` = the file has a header.
        delimiter: field separator.
        companion: an optional second file read row-for-row beside the main one (LOBSTER's
            message file holds the times of the order-book file). ``{path_sub: [regex, repl],
            columns: [...]}``: its path is the main path with ``regex`` replaced by ``repl``.
        fast: parse with the compiled parser where it can decide (``false``: pyarrow parses every
            block; the same tables, slower).
        encoding: the file's text encoding (a Python codec name; default UTF-8). A file in another one is
            one message naming it (a UTF-16 byte-order mark, or NUL bytes), not a rejected row per line.
        max_line_bytes: a longer line is rejected (``line_too_long``) and the rest of the file read.

    Fast path: numeric columns are parsed straight to float64, by :mod:`l2exp.data.csv_fast` where
    it can decide exactly, else by pyarrow. pyarrow cannot say on which
    line a malformed row sits, so at the first malformed row or unparseable number the file is
    re-read in *line mode* -- every line one string, split by ``pyarrow.compute`` -- which knows
    each row's line; rows already delivered are skipped, and the mapping flags bad cells row by row.
    """

    def __init__(self, levels: int, columns: list[Any] | None = None, delimiter: str = ",",
                 companion: dict[str, Any] | None = None, fast: bool = True, encoding: str = "utf-8",
                 max_line_bytes: int = 1 << 20, **kw: Any) -> None:
        super().__init__(levels, **kw)
        import codecs

        try:
            self.encoding = codecs.lookup(encoding).name  # "utf8", "UTF-8" -> "utf-8"
        except LookupError:
            raise UserError(f"unknown text encoding data.reader.encoding={encoding!r}", where="data.reader.encoding",
                            fix="A Python codec name: utf-8 (default), utf-16, latin-1, cp1252, ...") from None
        self.max_line_bytes = int(max_line_bytes)
        self.fast = fast and self.encoding == "utf-8"  # the compiled parser reads UTF-8 bytes
        self.columns = expand_columns(list(columns) if columns is not None else None, levels)
        self.delimiter = delimiter
        self.companion = dict(companion) if companion else None

    # -- opening -----------------------------------------------------------------------------
    def _open(self, path: str, read: pacsv.ReadOptions, parse: pacsv.ParseOptions,
              convert: pacsv.ConvertOptions) -> pacsv.CSVStreamingReader:
        try:
            return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)
        except FileNotFoundError as exc:
            raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
        except pa.ArrowInvalid as exc:
            msg = str(exc)
            if "Empty CSV file" in msg:
                raise UserError(f"the file is empty: {path}", where=path,
                                fix="Point data.path at a file with rows, or remove the empty file.") from exc
            if _is_conversion(msg) or "expected" in msg.lower() and "columns" in msg.lower():
                raise _Fallback(msg) from exc
            raise _corrupt(path, exc, 0) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise _corrupt(path, exc, 0) from exc

    def _names(self, path: str) -> tuple[list[str], int]:
        """Column names: from config for headerless files, else the first line (decompressed)."""
        if self.columns is not None:
            return self.columns, 0
        head = _first_bytes(path)
        if self.encoding == "utf-8":
            _refuse_other_encoding(head, path)
        self._open(path, pacsv.ReadOptions(block_size=1 << 16, column_names=["line"], encoding=self.encoding),
                   pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
                   pacsv.ConvertOptions(column_types={"line": pa.string()}))  # existence/emptiness/corruption
        if self.encoding != "utf-8":
            head = head.decode(self.encoding, errors="replace").encode("utf-8")
        first = head.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip().lstrip("\ufeff")
        names = [c.strip().strip('"') for c in first.split(self.delimiter)]
        if len(names) == 1:
            check_delimiter(first, self.delimiter, path)
        return names, 1

    # -- the parsing modes -----------------------------------------------------------------------
    def _fast(self, path: str, names: list[str], header: int, numeric: set[str],
              state: dict[str, Any]) -> Iterator[_Batch]:
        """Whole-line blocks through the compiled parser (:mod:`l2exp.data.csv_fast`), each block it
        cannot decide exactly through pyarrow; without a single-byte ASCII delimiter, pyarrow's
        streaming reader. Either way the same tables: numeric columns float64, the others of the
        types pyarrow infers from the first block (a later block that does not fit them is a
        conversion error, as in pyarrow's streaming reader: line mode)."""
        if self.encoding != "utf-8":  # transcoded by pyarrow's reader
            yield from self._arrow_stream(path, names, header, numeric, state)
            return
        parser = FastCsvParser(names, numeric, self.delimiter, threads=os.cpu_count() or 1)
        if not parser.usable:
            parser.close()
            yield from self._arrow_stream(path, names, header, numeric, state)
            return
        if self.fast:
            warm.start()  # begun by an ingest already, beside its digest
        try:
            head = _head(path, header)
            types = self._infer(head, names, numeric)
            # blocks of a little more than a chunk (bytes per line from the head): a chunk is one
            # block, its columns one contiguous array each (read by NumPy without a copy)
            lines_in_head = head.count(b"\n")
            size = [_BLOCK_BYTES]
            if lines_in_head and state.get("chunk_rows") and len(head) > 1 << 16:
                want = len(head) / lines_in_head * state["chunk_rows"] * 1.05
                size[0] = int(min(max(want, 1 << 20), 1 << 28))
            blocks = _line_blocks(path, size, header, lambda: state["rows"])
            first = next(blocks, None)  # read (decompressed, mapped) while the compiled parser loads
            if self.fast:
                warm.start(wait=True)
            for block in itertools.chain([first] if first is not None else [], blocks):
                parsed = parser.parse_block(block) if self.fast else None
                table = _cast_inferred(parsed[0], types) if parsed is not None else None
                if table is not None:
                    state["floats"] = parsed[1]
                else:  # a block only pyarrow decides, or that pyarrow's conversion must judge
                    table = self._arrow_block(block, names, numeric, types)
                _check_text(table, numeric)
                n = table.num_rows
                lines = np.arange(state["rows"], state["rows"] + n) + 1 + header
                state["rows"] += n
                yield table, lines, [], n, None
        finally:
            parser.close()

    def _infer(self, block: bytes, names: list[str], numeric: set[str]) -> dict[str, pa.DataType]:
        """The types pyarrow's streaming reader would give the non-numeric columns: inferred from the
        first block (at most its block size), as that reader does."""
        others = [c for c in names if c not in numeric]
        if not others:
            return {}
        try:
            t = pacsv.read_csv(pa.BufferReader(pa.py_buffer(block)),
                               read_options=pacsv.ReadOptions(column_names=names),
                               parse_options=pacsv.ParseOptions(delimiter=self.delimiter,
                                                                invalid_row_handler=lambda _row: "skip"),
                               convert_options=pacsv.ConvertOptions(
                                   column_types={c: pa.float64() for c in numeric}, include_columns=others,
                                   null_values=[""], strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            raise _Fallback(str(exc)) from exc
        return {c: t.schema.field(c).type for c in others}

    def _arrow_block(self, block: np.ndarray, names: list[str], numeric: set[str],
                     types: dict[str, pa.DataType]) -> pa.Table:
        """One block the compiled parser handed back, parsed by pyarrow with the same column types."""
        invalid: list[str] = []

        def on_invalid(row: Any) -> str:
            invalid.append(str(row.text))
            return "skip"

        try:
            # a copy: the block is a view of a reused buffer or a memory map, the table must outlive it
            t = pacsv.read_csv(pa.BufferReader(pa.py_buffer(block.tobytes())),
                               # blocks of 1/4 of the text: both cores parse, and each column is 4
                               # arrays (not one per MiB) for the mapping to read
                               read_options=pacsv.ReadOptions(column_names=names,
                                                              block_size=max(1 << 20, len(block) // 4 + 1)),
                               parse_options=pacsv.ParseOptions(delimiter=self.delimiter,
                                                                invalid_row_handler=on_invalid),
                               convert_options=pacsv.ConvertOptions(
                                   column_types={**{c: pa.float64() for c in numeric}, **types},
                                   null_values=[""], strings_can_be_null=False))
        except pa.ArrowInvalid as exc:
            raise _Fallback(str(exc)) from exc
        if invalid:
            raise _Fallback("malformed row")
        return t

    def _arrow_stream(self, path: str, names: list[str], header: int, numeric: set[str],
                      state: dict[str, Any]) -> Iterator[_Batch]:
        invalid: list[str] = []

        def on_invalid(row: Any) -> str:
            invalid.append(str(row.text))
            return "skip"

        reader = self._open(
            path,
            pacsv.ReadOptions(column_names=names if header == 0 else None, block_size=1 << 22,
                              encoding=self.encoding),
            pacsv.ParseOptions(delimiter=self.delimiter, invalid_row_handler=on_invalid),
            # only an empty cell is missing: "n/a", "null", "-" in a numeric column are text, flagged
            # row by row in line mode, never silently read as NaN (pyarrow's default null markers)
            pacsv.ConvertOptions(column_types={c: pa.float64() for c in names if c in numeric},
                                 null_values=[""], strings_can_be_null=False),
        )
        for batch in _batches(reader, path, lambda: state["rows"]):
            if invalid:
                raise _Fallback("malformed row")
            n = batch.num_rows
            lines = np.arange(state["rows"], state["rows"] + n) + 1 + header
            state["rows"] += n
            yield pa.Table.from_batches([batch]), lines, [], n, None
        if invalid:  # malformed rows after the last batch (or in a file of nothing else)
            raise _Fallback("malformed row")

    def _line_mode(self, path: str, names: list[str], header: int, skip: int,
                   state: dict[str, Any]) -> Iterator[_Batch]:
        """Every line one row, with its line number: a line that is not valid text (``undecodable``) or longer
        than ``max_line_bytes`` (``line_too_long``) is one reject with its reason, and the rest of the file is
        read (pyarrow's reader refused the whole file for either). ``skip``: rows delivered before."""
        to_skip = skip
        for raw, lines_all, rejects in _raw_lines(path, header, self.max_line_bytes, self.encoding,
                                                  lambda: state["rows"]):
            state.setdefault("rejects", []).extend(rejects)
            if not len(raw):
                continue
            text = raw
            if to_skip:
                k = min(to_skip, len(text))
                text, lines_all, to_skip = text.slice(k), lines_all[k:], to_skip - k
                if not len(text):
                    continue
            parts = pc.split_pattern(text, self.delimiter)
            ok = np.asarray(pc.equal(pc.list_value_length(parts), len(names)))
            bad = [(int(lines_all[i]), text[int(i)].as_py()[:500]) for i in np.flatnonzero(~ok)]
            good = parts.filter(pa.array(ok))
            flat = pc.list_flatten(good)
            width = len(names)
            cols = [pc.utf8_trim(flat.take(pa.array(np.arange(j, len(flat), width))), '"')
                    for j in range(width)]
            table = pa.Table.from_arrays(cols, names=names)
            state["rows"] += table.num_rows
            yield table, lines_all[ok], bad, len(text), ok

    # -- public ------------------------------------------------------------------------------
    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        names, header = self._names(path)
        if header == 0 and self.encoding == "utf-8":
            _refuse_other_encoding(_first_bytes(path), path)
        numeric = {c for c in numeric if c in names}
        companion = _Lockstep(self._companion_iter(path, chunk_rows), path) if self.companion else None
        state: dict[str, Any] = {"rows": 0, "chunk_rows": chunk_rows}
        float_columns = {c: j for j, c in enumerate(c for c in names if c in numeric)}  # the parser's order
        pending: list[RawChunk] = []
        pending_rows = 0

        def batches() -> Iterator[_Batch]:
            try:
                yield from self._fast(path, names, header, numeric, state)
            except _Fallback:
                delivered = state["rows"]
                yield from self._line_mode(path, names, header, delivered, state)

        from l2exp.errors import DamagedFile

        try:
            for table, lines, bad, consumed, keep in batches():
                if companion is not None:
                    extra = companion.take(consumed)
                    if keep is not None:
                        extra = extra.filter(pa.array(keep))
                    for name in extra.column_names:
                        table = table.append_column(name, extra.column(name))
                if pending and pending[0].table.schema != table.schema:  # fast rows, then line mode: own chunk
                    yield _merge(pending)
                    pending, pending_rows = [], 0
                floats = state.pop("floats", None)
                pending.append(RawChunk(table, path, lines, bad, rejects=state.pop("rejects", []), floats=floats,
                                        float_columns=float_columns if floats is not None else {}))
                pending_rows += table.num_rows
                if pending_rows >= chunk_rows:
                    yield _merge(pending)
                    pending, pending_rows = [], 0
        except DamagedFile:  # the rows read before the damage first: ingest stores them, then meets the error
            if pending:
                yield _merge(pending)
            raise
        left = state.pop("rejects", [])  # lines rejected after the last row
        if left:
            empty = pending[-1].table.slice(0, 0) if pending else \
                pa.table({n: pa.array([], pa.string()) for n in names})
            pending.append(RawChunk(empty, path, np.zeros(0, dtype=np.int64), [], rejects=left))
        if pending:
            yield _merge(pending)

    def _companion_iter(self, path: str, chunk_rows: int) -> Iterator[pa.Table]:
        assert self.companion is not None
        pattern, repl = self.companion["path_sub"]
        other = re.sub(pattern, repl, path)
        if other == path:
            raise UserError(f"data.reader.companion.path_sub {pattern!r} does not match {path}",
                            where="data.reader.companion.path_sub",
                            fix="Make the regex match the main file name so the companion path differs.")
        if not Path(other).exists():
            raise UserError(f"companion file not found: {other}", where=f"derived from {path}",
                            fix="Put the message file beside the order-book file or fix companion.path_sub.")
        sub = CsvReader(self.levels, columns=self.companion["columns"], delimiter=self.delimiter)
        for chunk in sub.iter_chunks(other, chunk_rows, set()):
            yield chunk.table


def prefetch(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run an iterator in a background thread, ``depth`` items ahead -- from this call on, not from the
    first ``next``: a caller may start a read before it knows it wants it (see ``ingest``). Closing the
    returned iterator stops the thread and waits for it (at most the item it is producing), so nothing
    reads on behind the caller's back; dropping it stops the thread too.

    pyarrow parses CSV with the GIL released, so reading chunk k+1 overlaps mapping and validating
    chunk k on the second core. Exceptions reach the consumer unchanged; memory stays bounded by
    ``depth`` chunks. Hand-written because the stdlib has no bounded generator prefetch.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: Any) -> bool:
        """Hand ``item`` over, waiting for room -- unless the consumer has gone (every put, the last
        one and an exception too: a full queue nobody reads would hold the thread forever)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            put(exc)
            return
        put(done)

    thread = _forwarding_thread(produce, q, "l2exp-prefetch")
    return _Started(_received(q, done), stop, thread)


class _Started(Iterator[Any]):
    """The consumer side of :func:`prefetch`. Closed, dropped or never iterated, it stops the producer
    (a generator's ``finally`` would not run for a generator never started)."""

    def __init__(self, items: Iterator[Any], stop: threading.Event, thread: threading.Thread) -> None:
        self._items, self._stop, self._thread = items, stop, thread

    def __next__(self) -> Any:
        return next(self._items)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        self._stop.set()


def _forwarding_thread(target: Any, q: Any, name: str) -> threading.Thread:
    """``target`` started on a daemon thread; an exception it raises is put on ``q`` for the consumer."""
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - forwarded to the consumer
            q.put(exc)

    thread = threading.Thread(target=run, daemon=True, name=name)
    thread.start()
    return thread


def _received(q: Any, done: object, error: Any = None) -> Iterator[Any]:
    """The items a :func:`_forwarding_thread` puts on ``q`` until ``done``; an exception it forwarded is
    raised here, in the consumer (``error`` may turn it into another first)."""
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item if error is None else error(item)
        yield item


def _merge(parts: list[RawChunk]) -> RawChunk:
    if len(parts) == 1:
        return parts[0]
    tables = [p.table for p in parts if p.table.num_rows]
    table = pa.concat_tables(tables, promote_options="permissive") if tables else parts[0].table
    return RawChunk(table, parts[0].path, np.concatenate([p.lines for p in parts]),
                    [b for p in parts for b in p.bad_rows], rejects=[r for p in parts for r in p.rejects])


def _is_conversion(msg: str) -> bool:
    low = msg.lower()
    return "conversion error" in low or "invalid value" in low


class _Fallback(Exception):
    """Raised by the fast CSV path when the file needs line mode."""


def _first_bytes(path: str, n: int = 1 << 16) -> bytes:
    """The first ``n`` bytes of the file's text (decompressed); a missing or unreadable file as a message."""
    try:
        with pa.input_stream(path, compression="detect") as fh:
            return bytes(fh.read(n))
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc, 0) from exc


def _refuse_other_encoding(head: bytes, path: str) -> None:
    """A file that is not UTF-8 text as a whole (a UTF-16 byte-order mark, or mostly NUL bytes in its first 64 KiB)
    is one message naming the encoding and the key -- not one reject per line."""
    boms = {b"\xff\xfe": "UTF-16 (little-endian)", b"\xfe\xff": "UTF-16 (big-endian)"}
    found = next((name for bom, name in boms.items() if head.startswith(bom)), None)
    if found is None and len(head) >= 64 and head.count(b"\x00") > len(head) // 4:
        found = "UTF-16 without a byte-order mark, or binary (a quarter of its bytes are NUL)"  # NUL padding
        # inside fields (BitMEX pads its symbols) is text
    if found:
        raise UserError(f"{Path(path).name} is not UTF-8 text: it looks {found}", where=path,
                        fix="Set the reader's encoding (++data.reader.encoding=utf-16 on the command line), or "
                            "convert the file: iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8.csv")


def _check_text(table: pa.Table, numeric: set[str]) -> None:
    """Text columns must be valid UTF-8 (the compiled parser copies bytes as they are): a block with an
    undecodable byte goes to line mode, which rejects that line alone."""
    for name in table.column_names:
        if name in numeric:
            continue
        col = table.column(name)
        try:
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col.validate(full=True)
            elif pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):  # inferred so: not UTF-8
                col.cast(pa.string())
        except pa.ArrowInvalid as exc:
            raise _Fallback(f"invalid UTF-8 in column {name}") from exc


def _raw_lines(path: str, header: int, max_line: int, encoding: str, delivered: Any = lambda: 0,
               block: int = 1 << 22) -> Iterator[tuple[pa.Array, np.ndarray, list[tuple[int, str, str]]]]:
    """The file's non-empty lines as text, in batches, with their 1-based line numbers and the lines rejected on
    the way: ``undecodable`` (not valid text in ``encoding``), ``line_too_long`` (over ``max_line`` bytes: skipped
    to its end without holding it). The first ``header`` lines are dropped. Hand-written because pyarrow's line
    reader refuses a whole file for one such line (a line longer than its block, an invalid UTF-8 byte)."""
    line_no = 0
    carry = b""
    skipping = False  # inside a line already over max_line
    try:
        stream = _open_bytes(path)  # ISA-L for .gz: a cut file is an error here (pyarrow's reader ends quietly)
        if encoding != "utf-8":
            stream = pa.transcoding_input_stream(pa.PythonFile(stream, mode="r"), encoding, "utf-8")
        with stream as fh:
            eof = False
            seen = 0
            while not eof:
                data = fh.read(block)
                eof = not data
                seen += len(data)
                if eof and not seen:
                    raise _empty_file(path)
                pieces = (carry + data).split(b"\n") if data else ([carry] if carry else [])
                carry = pieces.pop() if data else b""
                rejects: list[tuple[int, str, str]] = []
                keep: list[bytes] = []
                numbers: list[int] = []
                for piece in pieces:
                    line_no += 1
                    if skipping:  # the end of an over-long line
                        skipping = False
                        rejects.append((line_no, "line_too_long", f"longer than {max_line:,} bytes "
                                                                  "(data.reader.max_line_bytes)"))
                        continue
                    if line_no <= header or not piece.strip():
                        continue
                    if len(piece) > max_line:
                        rejects.append((line_no, "line_too_long", f"{len(piece):,} bytes, over {max_line:,} "
                                                                  "(data.reader.max_line_bytes)"))
                        continue
                    keep.append(piece)
                    numbers.append(line_no)
                if len(carry) > max_line:  # a line still growing past the limit: drop what there is of it
                    carry, skipping = b"", True
                if skipping and eof:
                    line_no += 1
                    rejects.append((line_no, "line_too_long", f"longer than {max_line:,} bytes at the end of the "
                                                              "file (data.reader.max_line_bytes)"))
                text, lines = _decoded(keep, np.asarray(numbers, dtype=np.int64), rejects)
                yield text, lines, rejects
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc, delivered()) from exc


def _decoded(raw: list[bytes], lines: np.ndarray, rejects: list[tuple[int, str, str]]) -> tuple[pa.Array, np.ndarray]:
    """``raw`` as text; an undecodable line becomes a reject (found by a per-line pass only when the batch as a
    whole does not decode)."""
    try:
        return pa.array(raw, pa.binary()).cast(pa.string()), lines
    except pa.ArrowInvalid:
        text, ok = [], np.ones(len(raw), dtype=bool)
        for i, piece in enumerate(raw):
            try:
                text.append(piece.decode("utf-8"))
            except UnicodeDecodeError as exc:
                ok[i] = False
                rejects.append((int(lines[i]), "undecodable", f"not UTF-8 at byte {exc.start}: {piece[:120]!r}"))
        return pa.array(text, pa.string()), lines[ok]


def _batches(reader: pacsv.CSVStreamingReader, path: str, delivered: Any) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            if _is_conversion(str(exc)):
                raise _Fallback(str(exc)) from exc
            raise _corrupt(path, exc, delivered()) from exc
        except (OSError, EOFError, zlib.error) as exc:
            raise _corrupt(path, exc, delivered()) from exc
        yield batch


_BLOCK_BYTES = 1 << 25  # 32 MiB of text per block: ~100 k book rows, parsed by all cores at once


def _line_blocks(path: str, size: list[int], header: int, delivered: Any) -> Iterator[np.ndarray]:
    """The file's bytes (decompressed by its ending) in blocks of whole lines, ~``size[0]`` bytes each
    (the consumer may change it between blocks);
    the first ``header`` lines are dropped. A line longer than ``size`` makes a longer block. An
    uncompressed file is mapped window by window (no copy; memory bounded by the window)."""
    if not path.endswith(_COMPRESSED):
        yield from _mapped_blocks(path, size, header)
        return
    try:
        fh = _open_bytes(path)
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc, 0) from exc
    with fh:
        yield from _stream_blocks(fh, size, header, path, delivered)


def _stream_blocks(fh: Any, size: list[int], header: int, path: str, delivered: Any) -> Iterator[np.ndarray]:
    """Blocks of whole lines from a decompressing stream, decompressed one block ahead.

    A thread of its own fills block k+1 while block k is parsed: the stream is read (``readinto``, no
    bytes object per read) into the other of two reused buffers. Decompressing on demand instead left
    both parser threads idle while each ~60 MB block was decompressed (ISA-L ~1.3 GB/s on one core:
    ~0.05 s a block, ~0.4 s of a 2.6 s ingest of 2 M rows). A block is a view of its buffer, valid
    until the next one is asked for; the parser copies what it keeps. Hand-written: the stdlib has no
    double-buffered reader, and ``igzip_threaded`` reads ahead only 2 MiB, in 1 MiB bytes objects."""
    bufs = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
    free = threading.Semaphore(2)  # buffers neither held by the consumer nor waiting in ``ready``
    ready: queue.SimpleQueue = queue.SimpleQueue()  # bounded by the two buffers
    stop = threading.Event()
    done = object()

    def fill() -> None:
        tail = np.empty(0, np.uint8)  # the start of a line cut by the previous block's end
        skip, seen, k = header, 0, 0
        while True:
            free.acquire()
            if stop.is_set():
                return
            buf, filled, eof = bufs[k], len(tail), False
            if len(buf) < filled + size[0]:
                buf = bufs[k] = np.empty(filled + size[0], np.uint8)
            buf[:filled] = tail
            while True:
                target = filled + size[0]
                if len(buf) < target:  # a line longer than the block: more room, read on
                    grown = np.empty(target, np.uint8)
                    grown[:filled] = buf[:filled]
                    buf = bufs[k] = grown
                while filled < target:
                    try:
                        # at most 1 MiB a call: a reader that meets damage mid-call loses what that call copied
                        n = fh.readinto(memoryview(buf)[filled:min(target, filled + (1 << 20))])
                    except _READ_ERRORS:  # damage: first hand over the whole lines decoded before it
                        data = buf[:filled]
                        if skip:
                            data, skip = _skip_lines(data, skip)
                        cut = _last_newline(data)
                        if cut >= 0 and not skip:
                            ready.put(data[: cut + 1])
                        raise
                    if not n:
                        eof = True
                        break
                    filled += n
                    seen += n
                if skip:
                    view, skip = _skip_lines(buf[:filled], skip)
                    buf[: len(view)] = view
                    filled = len(view)
                if eof:
                    if seen == 0:
                        raise _empty_file(path)
                    if filled and not skip:
                        ready.put(buf[:filled])
                    ready.put(done)
                    return
                cut = _last_newline(buf[:filled])
                if cut >= 0 and not skip:
                    break
            ready.put(buf[: cut + 1])
            tail = buf[cut + 1: filled].copy()
            k = 1 - k

    def error(exc: BaseException) -> BaseException:
        if not isinstance(exc, _READ_ERRORS):
            return exc
        err = _corrupt(path, exc, delivered())  # rows delivered by the time the consumer meets the damage
        err.__cause__ = exc
        return err

    thread = _forwarding_thread(fill, ready, "l2exp-decompress")
    try:
        for block in _received(ready, done, error):
            yield block
            free.release()  # the next block is asked for: this one's buffer is free
    finally:
        stop.set()
        free.release()  # wake a producer waiting for a buffer: it sees ``stop`` and returns
        thread.join()


def _head(path: str, header: int) -> bytes:
    """The whole lines of the first 4 MiB of text after the header: what pyarrow's streaming reader
    infers column types from (its first block)."""
    size = 1 << 22
    try:
        with (_open_bytes(path) if path.endswith(_COMPRESSED) else open(path, "rb")) as fh:
            data = bytes(fh.read(size + 1))
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc, 0) from exc
    for _ in range(header):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    if len(data) > size - 1:
        data = data[: data.rfind(b"\n") + 1] or data
    return data


_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".br")


def _mapped_blocks(path: str, size: list[int], header: int) -> Iterator[np.ndarray]:
    """Blocks of whole lines of an uncompressed file, each a read-only view of a memory map of one
    window (``MAP_POPULATE``: the pages are mapped in one call instead of one fault per 4 KiB page).
    The parser copies what it keeps, so a window is unmapped once its block is dropped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
    except OSError as exc:
        raise _corrupt(path, exc, 0) from exc
    try:
        total = os.fstat(fd).st_size
        if total == 0:
            raise _empty_file(path)
        page = mmap.ALLOCATIONGRANULARITY
        start, skip = 0, header
        while start < total:
            base = start - start % page
            length = min(total - base, size[0] + (start - base))
            while True:
                m = mmap.mmap(fd, length, flags=mmap.MAP_SHARED | MAP_POPULATE, prot=mmap.PROT_READ, offset=base)
                buf, left = _skip_lines(np.frombuffer(m, np.uint8)[start - base:], skip)
                last = base + length >= total
                cut = len(buf) - 1 if last else _last_newline(buf)
                if last or (cut >= 0 and not left):
                    break
                length = min(total - base, length * 2)  # a line longer than the window: a longer window
            skip = left
            if skip:
                return
            if cut >= 0:
                yield buf[: cut + 1]
            start = base + length - (len(buf) - (cut + 1))
    finally:
        os.close(fd)


def _skip_lines(buf: np.ndarray, skip: int) -> tuple[np.ndarray, int]:
    while skip and len(buf):
        nl = np.flatnonzero(buf == 10)
        if not len(nl):
            break
        buf, skip = buf[int(nl[0]) + 1:], skip - 1
    return buf, skip


def _empty_file(path: str) -> UserError:
    return UserError(f"the file is empty: {path}", where=path,
                     fix="Point data.path at a file with rows, or remove the empty file.")


_READ_ERRORS = (OSError, EOFError, ValueError, zlib.error, isal_zlib.error, pa.ArrowInvalid)


def _open_bytes(path: str) -> Any:
    """A binary stream of the file's text: ``.gz`` decompressed by ISA-L on a thread of its own
    (~4x zlib, and beside the parsing), other endings by pyarrow (``compression="detect"``)."""
    if path.endswith(".gz"):
        with open(path, "rb"):  # FileNotFoundError here, not from the reading thread
            pass
        return igzip_threaded.open(path, "rb", threads=1)
    return pa.input_stream(path, compression="detect")


def _last_newline(buf: np.ndarray) -> int:
    """Index of the last ``\\n`` in ``buf`` (-1: none), searching back from the end in growing windows."""
    window = 1 << 16
    end = len(buf)
    while end > 0:
        lo = max(0, end - window)
        nl = np.flatnonzero(buf[lo:end] == 10)
        if len(nl):
            return lo + int(nl[-1])
        end, window = lo, window * 4
    return -1


def _cast_inferred(table: pa.Table, types: dict[str, pa.DataType]) -> pa.Table | None:
    """The compiled parser's string columns cast to the types pyarrow inferred (an empty cell is
    null, as pyarrow reads it, unless the type is a string). None when a value does not cast: the
    block goes to pyarrow's CSV conversion, which decides it as its streaming reader would (it reads
    ``"0 "`` as an integer where a compute cast refuses it; a real misfit is its conversion error)."""
    for name, typ in types.items():
        if pa.types.is_string(typ):
            continue
        i = table.schema.get_field_index(name)
        col = table.column(i)
        if pa.types.is_null(typ):  # a column empty in the first block stays empty, or it is an error
            if pc.any(pc.not_equal(pc.utf8_length(col), 0)).as_py():
                return None
            table = table.set_column(i, name, pa.nulls(table.num_rows))
            continue
        try:
            col = pc.cast(pc.if_else(pc.equal(pc.utf8_length(col), 0), pa.scalar(None, pa.string()), col), typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        table = table.set_column(i, name, col)
    return table


class _Lockstep:
    """Hands out exactly n rows at a time from a stream of tables (a companion file read in
    lockstep with its main file, whose batch boundaries differ)."""

    def __init__(self, tables: Iterator[pa.Table], path: str) -> None:
        self.tables = tables
        self.path = path
        self.buf: list[pa.Table] = []

    def take(self, n: int) -> pa.Table:
        have = sum(t.num_rows for t in self.buf)
        while have < n:
            try:
                t = next(self.tables)
            except StopIteration:
                raise UserError(f"the companion file of {self.path} has fewer rows than the main file",
                                where=self.path, fix="Both files must have one row per snapshot.") from None
            self.buf.append(t)
            have += t.num_rows
        table = pa.concat_tables(self.buf) if len(self.buf) > 1 else self.buf[0]
        self.buf = [table.slice(n)] if table.num_rows > n else []
        return table.slice(0, n)


class JsonLinesReader(Reader):
    """JSON lines (``.jsonl``/``.jsonl.gz``), e.g. websocket recorders writing
    ``{"ts": ..., "bids": [[price, qty], ...], "asks": [...]}`` per line.

    Fast path: pyarrow's streaming JSON reader. If it meets a line it cannot parse, the file is
    re-read line by line in Python (slow, but only for broken files) so that each bad line becomes
    a reject with its line number instead of failing the whole file.
    """

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        if not Path(path).exists():
            raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).")
        if Path(path).stat().st_size == 0:
            raise UserError(f"the file is empty: {path}", where=path,
                            fix="Point data.path at a file with rows, or remove the empty file.")
        delivered = 0
        try:
            reader = pajson.open_json(path, read_options=pajson.ReadOptions(block_size=1 << 22))
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                if rows >= chunk_rows:
                    t = pa.Table.from_batches(pending)
                    yield RawChunk(t, path, np.arange(delivered, delivered + t.num_rows) + 1)
                    delivered += t.num_rows
                    pending, rows = [], 0
            if pending:
                t = pa.Table.from_batches(pending)
                yield RawChunk(t, path, np.arange(delivered, delivered + t.num_rows) + 1)
            return
        except pa.ArrowInvalid:
            pass  # fall through to the line-by-line path, skipping delivered rows
        except (OSError, EOFError, zlib.error) as exc:
            raise _corrupt(path, exc, delivered) from exc
        yield from self._slow(path, chunk_rows, delivered)

    def _slow(self, path: str, chunk_rows: int, skip: int) -> Iterator[RawChunk]:
        opener = gzip.open if path.endswith(".gz") else open
        good: list[dict[str, Any]] = []
        lines: list[int] = []
        bad: list[tuple[int, str]] = []
        valid_seen = 0
        try:
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                for lineno, text in enumerate(fh, start=1):
                    if not text.strip():
                        continue
                    try:
                        obj = json.loads(text)
                        if not isinstance(obj, dict):
                            raise ValueError("not an object")
                    except ValueError:
                        bad.append((lineno, text[:500]))
                        continue
                    valid_seen += 1
                    if valid_seen <= skip:
                        continue
                    good.append(obj)
                    lines.append(lineno)
                    if len(good) >= chunk_rows:
                        yield RawChunk(pa.Table.from_pylist(good), path, np.asarray(lines), bad)
                        good, lines, bad = [], [], []
        except (OSError, EOFError, zlib.error) as exc:
            raise _corrupt(path, exc, valid_seen) from exc
        if good or bad:
            table = pa.Table.from_pylist(good) if good else pa.table({})
            yield RawChunk(table, path, np.asarray(lines, dtype=np.int64), bad)


class ParquetReader(Reader):
    """Parquet files, read row group by row group (``iter_batches``)."""

    def iter_chunks(self, path: str, chunk_rows: int, numeric: set[str]) -> Iterator[RawChunk]:
        try:
            pf = pq.ParquetFile(path)
        except FileNotFoundError as exc:
            raise UserError(f"file not found: {path}", fix="Check data.path (a file or glob).") from exc
        except (pa.ArrowInvalid, OSError) as exc:
            raise _corrupt(path, exc, 0) from exc
        start = 0
        for batch in pf.iter_batches(batch_size=chunk_rows):
            t = pa.Table.from_batches([batch])
            yield RawChunk(t, path, np.arange(start, start + t.num_rows) + 1)
            start += t.num_rows
