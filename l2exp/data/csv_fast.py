"""A compiled CSV fast path for the common shape of order-book files: numbers and short strings.

Why hand-written, beside pyarrow: ingest has to run at >= 0.8x the speed of a bare
``pyarrow.csv.read_csv`` of the same file while also mapping, validating and writing every row
(issue #14). pyarrow's parser is general (any type, inference, quoting, escapes) and costs
~2.7 CPU-s per 2 M rows x 43 columns on this 2-core machine -- as much as both cores give for the
whole target. This parser only accepts what it can decide exactly and cheaply, and hands every
other block back to pyarrow, so the rows read -- and their values, bit for bit -- are the same:

* a field is ``[-]digits[.digits][(e|E)[+|-]digits]`` (numeric columns), optionally in double
  quotes, or empty (null, as pyarrow reads it); anything else in a numeric column (``nan``, ``+1``,
  spaces, a thousands separator) sends the block to pyarrow;
* a number is converted exactly as pyarrow's fast_float does when the decimal significand ``m``
  fits in 53 bits and the power of ten ``k`` is within +/-22 (Clinger's fast path: ``m`` and
  ``10**|k|`` are exact doubles, so one IEEE multiply or divide is the correctly rounded value);
  other numbers send the block to pyarrow (``10**|k|`` multiplied up, not looked up: see
  :func:`_number_bytes`). The usual book number (up to 7 + 7 digits, no exponent) is read eight
  bytes at a time (:func:`_number_words`): parse_rows 2.3 -> 1.1 ns a byte on BitMEX books;
* a string field is raw ASCII bytes or a double-quoted run without ``"`` inside; escaped quotes,
  non-ASCII bytes, empty lines and a wrong field count send the block to pyarrow.
* bytes are read through :func:`_ld`, which skips the negative-index wrap-around Numba emits for
  every signed index: 1.7 -> 1.1 ns a byte for the string scan, 2.6 -> 2.1 for numbers.

A block is split at line ends into one piece per thread; the compiled pass releases the GIL, so the
pieces are parsed in parallel threads into one preallocated column-major array.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba as nb
import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba.core import types
from numba.cpython.unsafe.numbers import trailing_zeros
from numba.extending import intrinsic

NL, CR, QUOTE = 10, 13, 34
KIND_SKIP, KIND_FLOAT, KIND_STRING = 0, 1, 2
_MAX_EXACT = 1 << 53
_SPARES = 6  # blocks alive at once: prefetched, parsed, being mapped, queued for the store (<= 2), written


@intrinsic
def _ld(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``buf[i]`` without the negative-index wrap-around Numba emits for a signed index (a branch
    per byte in every scanning loop); the caller keeps ``0 <= i < len(buf)``."""
    sig = types.int64(arr, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.zext(builder.load(builder.gep(ary.data, [args[1]])), ir.IntType(64))

    return sig, codegen


@intrinsic
def _load8(typingctx: Any, arr: Any, idx: Any) -> Any:
    """``buf[i:i + 8]`` as one little-endian word (an unaligned load; the caller keeps ``i + 8 <= len``)."""
    sig = types.uint64(arr, types.intp)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return sig, codegen


@intrinsic
def _store8(typingctx: Any, arr: Any, idx: Any, word: Any) -> Any:
    """``out[i:i + 8] = word`` (an unaligned store; the caller keeps ``i + 8 <= len``)."""
    sig = types.void(arr, types.intp, types.uint64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), ir.IntType(64).as_pointer())
        builder.store(args[2], ptr, align=1)
        return context.get_dummy_value()

    return sig, codegen


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _number(buf: np.ndarray, pos: int, end: int) -> tuple[float, int]:
    """Parse the number starting at ``pos``: (value, position after it), position -1 when the text
    is not one this parser decides exactly; an empty field is NaN. Eight bytes at a time where the
    buffer has room (:func:`_number_words`), byte by byte otherwise and for what that path leaves."""
    v, nxt = 0.0, _UNDECIDED
    if pos + _WORD_SLACK <= buf.shape[0]:
        v, nxt = _number_words(buf, pos, end)
    if nxt == _UNDECIDED:
        v, nxt = _number_bytes(buf, pos, end)
    return v, nxt


_WORD_SLACK = 24  # bytes from a number's start the word path may read: sign, 8 + '.' + 8, one after
_UNDECIDED = -2
_ZEROS = np.uint64(0x3030303030303030)  # '0' in every byte
_OVER_NINE = np.uint64(0x4646464646464646)  # + this sets a byte's high bit when it was > '9'
_HIGH = np.uint64(0x8080808080808080)
_E8 = np.uint64(100_000_000)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _eight_digits(t: np.uint64) -> np.uint64:
    """The integer of eight digit values (0-9, the first in the lowest byte), by three multiplies
    instead of eight dependent ``m * 10 + d`` steps (fast_float's ``parse_eight_digits_unrolled``)."""
    t = (t * np.uint64(10)) + (t >> np.uint64(8))
    lo = t & np.uint64(0x000000FF000000FF)
    hi = (t >> np.uint64(16)) & np.uint64(0x000000FF000000FF)
    return (lo * np.uint64(100 + (1_000_000 << 32)) + hi * np.uint64(1 + (10_000 << 32))) >> np.uint64(32)


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _non_digits(w: np.uint64) -> np.uint64:
    """High bit of each byte of ``w`` that is not '0'-'9' -- exact up to and including the first such
    byte (a carry or borrow only moves upwards), which is all the callers use."""
    return ((w + _OVER_NINE) | (w - _ZEROS)) & _HIGH


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _number_words(buf: np.ndarray, pos: int, end: int) -> tuple[float, int]:
    """The common book number -- ``[-]d{1,7}[.d{0,7}]``, no exponent -- from two 8-byte words, or
    ``_UNDECIDED`` for anything else (:func:`_number_bytes` decides it). The caller keeps
    ``pos + _WORD_SLACK <= len(buf)``.

    Why: byte by byte, each number's length is a data-dependent loop exit (a mispredicted branch or
    two per number, ~16 ns a field measured on BitMEX books). Here the digit count is found with one
    mask and a count of trailing zeros, the digits converted by :func:`_eight_digits`. The value is
    ``(int * 1e8 + frac * 10**(8 - F)) / 1e8``: an integer below 2**53 over an exact power of ten,
    one correctly rounded IEEE division -- the same double as :func:`_number_bytes` (Clinger's fast
    path) and fast_float give."""
    neg = _ld(buf, pos) == 45  # '-'
    i = pos + 1 if neg else pos
    w = np.uint64(_load8(buf, i))
    nd = _non_digits(w)
    if nd == 0:  # eight or more integer digits
        return 0.0, _UNDECIDED
    n_int = trailing_zeros(nd) >> 3
    if n_int == 0:  # empty field, '.5', '-', text
        return 0.0, _UNDECIDED
    # keep the n_int digit bytes, shifted up to the top of the word: the bytes below become leading zeros
    # (two shifts of 32 - 4 n_int, never one of 64)
    shift = np.uint64(32 - 4 * n_int)
    whole = _eight_digits(((w - _ZEROS) << shift) << shift)
    j = i + n_int
    frac = np.uint64(0)
    nxt = j
    if _ld(buf, j) == 46:  # '.'
        w2 = np.uint64(_load8(buf, j + 1))
        nd2 = _non_digits(w2)
        if nd2 == 0:  # eight or more fraction digits
            return 0.0, _UNDECIDED
        n_frac = trailing_zeros(nd2) >> 3
        keep = (np.uint64(1) << np.uint64(8 * n_frac)) - np.uint64(1)  # n_frac < 8: the low n_frac bytes
        frac = _eight_digits((w2 - _ZEROS) & keep)  # those digits then zeros: frac * 10**(8 - n_frac)
        nxt = j + 1 + n_frac
    after = _ld(buf, nxt)
    if after == 101 or after == 69 or nxt > end:  # an exponent; a number running past the piece
        return 0.0, _UNDECIDED
    v = float(np.int64(whole * _E8 + frac)) / 1e8  # below 10**15: converted exactly
    return (-v if neg else v), nxt


@nb.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _number_bytes(buf: np.ndarray, pos: int, end: int) -> tuple[float, int]:
    """:func:`_number`, one byte at a time: any length, exponents, empty fields."""
    i = pos
    neg = False
    if i < end and _ld(buf, i) == 45:  # '-'
        neg = True
        i += 1
    m = np.int64(0)
    k = 0
    first = i
    # the digit loop is written out twice (integer and fraction): a shared helper returning (m, i) was
    # measured at 2.8 vs 2.1 ns a byte -- Numba does not keep the tuple in registers across the call
    while i < end:
        d = _ld(buf, i) - 48
        if d < 0 or d > 9:
            break
        m = m * 10 + d
        i += 1
    digits = i - first
    if i < end and _ld(buf, i) == 46:  # '.'
        i += 1
        frac = i
        while i < end:
            d = _ld(buf, i) - 48
            if d < 0 or d > 9:
                break
            m = m * 10 + d
            i += 1
        k = frac - i
        digits -= k
    if digits == 0:
        if i == pos:  # empty field
            return np.nan, i
        return 0.0, -1
    if digits > 18:  # the significand may have overflowed 63 bits
        return 0.0, -1
    if i < end and (_ld(buf, i) == 101 or _ld(buf, i) == 69):  # 'e' / 'E'
        i += 1
        eneg = False
        if i < end and (_ld(buf, i) == 45 or _ld(buf, i) == 43):
            eneg = _ld(buf, i) == 45
            i += 1
        e = 0
        ed = 0
        while i < end:
            d = np.int64(_ld(buf, i)) - 48
            if d < 0 or d > 9:
                break
            if e < 100000:
                e = e * 10 + d
            ed += 1
            i += 1
        if ed == 0:
            return 0.0, -1
        k += -e if eneg else e
    if m > _MAX_EXACT:
        return 0.0, -1
    if k < -22 or k > 22:
        if m != 0:
            return 0.0, -1
        k = 0
    # 10**|k| multiplied up, not looked up in a table: every step is an exact double (10**j = 2**j * 5**j
    # and 5**22 < 2**53), and a table load per number cost ~10 ns -- it waited on the stores of the numbers
    # before it (measured: parse_rows 0.69 -> 0.44 s per 200 MB; 0-2 multiplies per number in a book file)
    p = 1.0
    for _ in range(abs(k)):
        p *= 10.0
    v = float(m) / p if k < 0 else float(m) * p
    return (-v if neg else v), i


@nb.njit(nogil=True, cache=True, boundscheck=False)
def parse_rows(buf: np.ndarray, start: int, end: int, row0: int, kinds: np.ndarray, slots: np.ndarray,
               delim: int, floats: np.ndarray, str_pos: np.ndarray,
               empty: np.ndarray) -> int:
    """Parse the whole lines in ``buf[start:end]`` into rows ``row0, row0 + 1, ...``.

    ``kinds[c]`` / ``slots[c]``: source column ``c`` is skipped, a float (column ``slots[c]`` of
    ``floats``, shape (n_float, rows)) or a string (``str_pos[slots[c], 2 row]``, ``[.., 2 row + 1]``
    = start, end byte). ``empty[slots[c]]`` is set when a float column has an empty cell (written
    NaN: the caller makes those nulls). Returns the number of rows parsed, or ``-1 - r`` when row
    ``r`` (0-based in this piece) needs the general parser.
    """
    ncols = kinds.shape[0]
    words_end = buf.shape[0] - _WORD_SLACK  # numbers starting up to here may take the word path
    pos = start
    row = row0
    while pos < end:
        for c in range(ncols):
            kind = kinds[c]
            quoted = _ld(buf, pos) == QUOTE if pos < end else False
            if quoted:
                pos += 1
            if kind == KIND_FLOAT:
                # _number written out: calling it (inlined or not) ran this loop at half the speed,
                # 2.3 vs 1.1 ns a byte on BitMEX books (measured)
                v, nxt = 0.0, _UNDECIDED
                if pos <= words_end:
                    v, nxt = _number_words(buf, pos, end)
                if nxt == _UNDECIDED:
                    v, nxt = _number_bytes(buf, pos, end)
                if nxt < 0:
                    return -1 - (row - row0)
                floats[slots[c], row] = v
                if nxt == pos:
                    empty[slots[c]] = True
                pos = nxt
            else:
                a = pos
                while pos < end:
                    ch = _ld(buf, pos)
                    if quoted:
                        if ch == QUOTE:
                            break
                    elif ch == delim or ch == NL or ch == CR or ch == QUOTE:  # noqa: SIM109 - Numba: no tuple
                        break
                    pos += 1
                if kind == KIND_STRING:
                    str_pos[slots[c], 2 * row] = a
                    str_pos[slots[c], 2 * row + 1] = pos
            if quoted:
                if pos >= end or _ld(buf, pos) != QUOTE:
                    return -1 - (row - row0)
                pos += 1
            # the field ends at a delimiter (not after the last column) or at the line end
            last = c == ncols - 1
            if pos < end:
                ch = _ld(buf, pos)
                if ch == delim and not last or ch == NL and last:
                    pos += 1
                elif ch == CR and last and pos + 1 < end and _ld(buf, pos + 1) == NL:
                    pos += 2
                else:
                    return -1 - (row - row0)
            elif not last:
                return -1 - (row - row0)
        row += 1
    return row - row0


_HIGH_BITS = np.uint64(0x8080808080808080)


@nb.njit(nogil=True, cache=True, boundscheck=False)
def gather_strings(buf: np.ndarray, pos: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Arrow string buffers (int32 offsets, bytes) of ``n`` fields at ``pos`` (start, end pairs), and
    whether every byte is ASCII (else the block is pyarrow's: it decides what is valid UTF-8).

    Fields are copied 8 bytes at a time (a word may spill past a field's end into the output's
    slack; the next field overwrites it): 3.6 -> ~1 ns a byte for 12-21 byte fields."""
    offsets = np.empty(n + 1, np.int32)
    total = 0
    offsets[0] = 0
    for r in range(n):
        total += pos[2 * r + 1] - pos[2 * r]
        offsets[r + 1] = total
    data = np.empty(total + 8, np.uint8)
    limit = buf.shape[0] - 8
    high = np.uint64(0)
    o = 0
    for r in range(n):
        j, end = pos[2 * r], pos[2 * r + 1]
        while j + 8 <= end or (j < end and j <= limit):
            w = _load8(buf, j)
            left = end - j
            if left < 8:  # only the field's bytes count for the ASCII test
                w_mask = (np.uint64(1) << np.uint64(8 * left)) - np.uint64(1)
                high |= w & w_mask
            else:
                high |= w
            _store8(data, o, w)
            step = min(left, 8)
            j += step
            o += step
        while j < end:  # the last bytes of the buffer: one at a time
            b = _ld(buf, j)
            high |= np.uint64(b)
            data[o] = b
            o += 1
            j += 1
    return offsets, data[:max(total, 1)], (high & _HIGH_BITS) == 0


class FastCsvParser:
    """Parses whole-line blocks of one CSV layout; ``parse`` returns a table or ``None`` (the block
    needs pyarrow). ``columns`` are the file's columns, ``numeric`` those read as float64; every
    other column is read as a string (the reader casts it to the type pyarrow infers for it)."""

    def __init__(self, columns: list[str], numeric: set[str], delimiter: str, threads: int = 2) -> None:
        self.columns = list(columns)
        self.delim = ord(delimiter) if len(delimiter) == 1 and ord(delimiter) < 128 else -1
        self.kinds = np.array([KIND_FLOAT if c in numeric else KIND_STRING for c in self.columns], np.int8)
        self.slots = np.zeros(len(self.columns), np.int64)
        self.n_float = int((self.kinds == KIND_FLOAT).sum())
        self.n_str = len(self.columns) - self.n_float
        self.slots[self.kinds == KIND_FLOAT] = np.arange(self.n_float)
        self.slots[self.kinds == KIND_STRING] = np.arange(self.n_str)
        self.threads = max(1, threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="l2exp-csv") if self.threads > 1 else None
        self._spares: list[np.ndarray] = []  # float matrices of earlier blocks (see _floats)
        self._str_pos = np.empty((self.n_str, 0), np.int64)  # string field bounds: used within a call only

    @property
    def usable(self) -> bool:
        return self.delim not in (-1, NL, CR, QUOTE) and len(self.columns) > 0

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

    def parse(self, buf: np.ndarray) -> pa.Table | None:
        """``buf``: whole lines (the last may lack its newline). None: let pyarrow parse it."""
        parsed = self.parse_block(buf)
        return None if parsed is None else parsed[0]

    def parse_block(self, buf: np.ndarray) -> tuple[pa.Table, np.ndarray] | None:
        """The table and its float columns as one (rows, n_float) column-major matrix (the table's
        float columns are views of it), or None: let pyarrow parse the block.

        Every pass over the block runs on the pool: counting lines per piece, parsing the pieces,
        copying out each string column."""
        end = len(buf)
        if end == 0:
            return None
        cuts = [0]
        for t in range(1, self.threads):
            target = end * t // self.threads
            nl = np.flatnonzero(buf[target:min(end, target + (1 << 20))] == NL)
            cut = target + int(nl[0]) + 1 if len(nl) else end
            cuts.append(max(cut, cuts[-1]))
        cuts.append(end)
        pieces = list(zip(cuts[:-1], cuts[1:], strict=True))
        counts = self._map(lambda ab: count_lines(buf, ab[0], ab[1]), pieces)
        if buf[end - 1] != NL:
            counts[-1] += 1
        rows0 = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        n = int(rows0[-1])
        floats = self._floats(n)
        if self._str_pos.shape[1] < 2 * n:
            self._str_pos = np.empty((self.n_str, 2 * n + 2 * n // 8), np.int64)
        str_pos = self._str_pos
        empty = np.zeros((len(pieces), max(self.n_float, 1)), np.bool_)
        got = self._map(lambda p: parse_rows(buf, pieces[p][0], pieces[p][1], int(rows0[p]), self.kinds, self.slots,
                                             self.delim, floats, str_pos, empty[p]), range(len(pieces)))
        if any(g != c for g, c in zip(got, counts, strict=True)):
            return None
        strings = self._map(lambda s: gather_strings(buf, str_pos[s], n), range(self.n_str))
        if not all(ascii_only for _, _, ascii_only in strings):
            return None
        has_empty = empty.any(axis=0)
        arrays = []
        for c, kind in enumerate(self.kinds):
            s = int(self.slots[c])
            if kind == KIND_FLOAT:  # NaN here is an empty cell: null, as pyarrow reads it
                arrays.append(pa.array(floats[s], from_pandas=True) if has_empty[s] else pa.array(floats[s]))
            else:
                offsets, data, _ = strings[s]
                arrays.append(pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)))
        return pa.Table.from_arrays(arrays, names=self.columns), floats.T

    def _floats(self, n: int) -> np.ndarray:
        """An (n_float, n) float64 matrix for a block's numbers, reusing the memory of an earlier block's
        once nothing refers to it any more.

        Why: a fresh 60-80 MB array per block is new pages the kernel must zero and map on first touch
        -- measured 2.3 -> 2.8 ns a byte for ``parse_rows``, ~0.3 CPU-s per 556 MB. A block's matrix
        lives on in its table, the mapped chunk and the store's write queue (all views of it, each
        holding a reference: NumPy views keep their base, pyarrow keeps the array it wraps), so a
        spare is reused only when its reference count is back to the pool's own.
        """
        need = self.n_float * n
        free = [i for i in range(len(self._spares)) if sys.getrefcount(self._spares[i]) == 2]  # list + argument
        for i in free:
            if self._spares[i].size >= need:
                return self._spares[i][:need].reshape(self.n_float, n)
        fresh = np.empty(need + need // 8, np.float64)  # headroom: the next block may be a little longer
        if free:  # a free spare too small for this block: replaced
            self._spares[free[0]] = fresh
        elif len(self._spares) < _SPARES:
            self._spares.append(fresh)
        return fresh[:need].reshape(self.n_float, n)

    def _map(self, fn: Any, items: Any) -> list[Any]:
        items = list(items)
        if self._pool is not None and len(items) > 1:
            return list(self._pool.map(fn, items))
        return [fn(x) for x in items]


@nb.njit(nogil=True, cache=True, boundscheck=False)
def count_lines(buf: np.ndarray, start: int, end: int) -> int:
    n = 0
    for i in range(start, end):
        n += _ld(buf, i) == NL
    return n
