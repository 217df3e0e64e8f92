"""One definition, two engines.

* :func:`compute_batch` runs the three families over every snapshot of a symbol in blocks of
  :data:`~l2exp.features._book.BLOCK` rows, each feature a column-wise pass over the block
  (research: whole tables, no per-row Python, loops LLVM vectorises).
* :class:`StreamingEngine` runs *the same* block functions on a block of one snapshot, with the
  flow state carried in arrays between calls (live: O(1) per snapshot, bounded memory).

Because both call the very same compiled functions, they agree by construction -- to the last bit,
but for the ln(1 + x) columns, which the batch engine takes with NumPy's vectorised log1p and the
streaming engine with libm's (within an ulp). The tests check it on real recordings anyway (state
carried across Python calls is where streaming engines break), and check the formulas against an
independent pandas implementation (:mod:`.reference`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from l2exp._numba_cache import start_numba
from l2exp.features._book import BLOCK, P_TICK, SEG_OFI, block_prefix, seg
from l2exp.features.depth import depth_block
from l2exp.features.flow import (
    I_LAST_TS,
    I_SESSIONS,
    I_TS,
    T_ROWS,
    flow_block,
    new_scratch,
    new_state,
    restart,
    ring_size,
)
from l2exp.features.params import FeatureParams
from l2exp.features.price import price_block
from l2exp.schema import SIDE_FIELDS, level_columns
from l2exp.sessions import DAY_NS, sessions


def state_segments(ts: np.ndarray, params: FeatureParams) -> list[slice]:
    """Stretches of one symbol's time-ordered snapshots over which the flow state runs: cut where the
    gap exceeds ``reset_gap_ms`` (the sessions of :mod:`l2exp.sessions`) and, with ``reset_daily``, at
    00:00 UTC -- where the store's (symbol, day) partitions end, so that each day can be computed alone."""
    return sessions(ts, params.reset_gap_ms, params.reset_daily)


@nb.njit(cache=True)
def _block(ts: np.ndarray, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, r0: int, r1: int,
           pf: np.ndarray, pi: np.ndarray, out: np.ndarray, ready: np.ndarray, ring: np.ndarray, ring_ts: np.ndarray,
           sums: np.ndarray, istate: np.ndarray, fstate: np.ndarray, prev: np.ndarray, cum: np.ndarray,
           tmp: np.ndarray, pb: np.ndarray, ptr: np.ndarray, sv: np.ndarray) -> None:
    """Every feature of rows r0..r1-1: the one code path both engines run (ln(1 + x) columns excepted,
    see :func:`_log1p_columns`)."""
    block_prefix(bp, bs, ap, as_, r0, r1, cum)
    o = price_block(bp, bs, ap, as_, r0, r1, cum, pf, pi, out, 0)
    o = depth_block(bp, bs, ap, as_, r0, r1, cum, pf, pi, tmp, out, o)
    flow_block(ts, bp, bs, ap, as_, r0, r1, cum, pf, pi, ring, ring_ts, sums, istate, fstate, prev, pb, ptr, sv,
               tmp, out, ready, o)


@nb.njit(cache=True, nogil=True)
def _batch(ts: np.ndarray, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, start: int, end: int,
           pf: np.ndarray, pi: np.ndarray, out: np.ndarray, ready: np.ndarray, ring: np.ndarray, ring_ts: np.ndarray,
           sums: np.ndarray, istate: np.ndarray, fstate: np.ndarray, prev: np.ndarray, cum: np.ndarray,
           tmp: np.ndarray, pb: np.ndarray, ptr: np.ndarray, sv: np.ndarray) -> None:
    """Rows start..end-1 (one state segment) in blocks of ``cum.shape[2]`` rows into ``out`` (n, F) and
    ``ready`` (n,). Both are allocated by NumPy, not here: NumPy asks the kernel for transparent huge
    pages on large arrays and Numba's allocator does not, and 4 KiB first-touch page faults cost more
    than many features. Runs without the GIL: threads compute partitions side by side (``compute=threads``)."""
    size = cum.shape[2]
    slots = ring.shape[1]
    r0 = start
    while r0 < end:
        # a block stops where the ring wraps (never, for power-of-two blocks: they tile the ring)
        r1 = min(r0 + size, end, r0 + slots - ((r0 - start) & (slots - 1)))
        _block(ts, bp, bs, ap, as_, r0, r1, pf, pi, out, ready, ring, ring_ts, sums, istate, fstate, prev, cum,
               tmp, pb, ptr, sv)
        r0 = r1


@nb.njit(cache=True)
def _step(t: int, book: np.ndarray, live: np.ndarray) -> bool:
    """One snapshot at time ``t``: ``book`` (4, L) = bid prices, bid sizes, ask prices, ask sizes, run as
    a block of one row, into ``live.out``; then its ln(1 + x) columns. A new session starts (the state
    restarts) where :func:`state_segments` cuts a batch: the first snapshot, a gap over ``gap_ns``, a
    new UTC day.

    ``live`` is a one-element record array holding the parameters, the state, the scratch and the
    output (:func:`_live_record`): Numba's dispatcher unboxes each array argument on every call (~60 ns
    each), and the 20 arrays this took were ~1.2 us of a ~3.5 us tick; a record is one."""
    r = live[0]
    istate = r.istate
    last = istate[I_LAST_TS]
    if istate[I_SESSIONS] == 0 or t - last > r.gap_ns or (r.daily != 0 and t // DAY_NS != last // DAY_NS):
        if istate[I_SESSIONS] > 0:
            restart(r.sums, istate, r.fstate, r.prev)
        istate[I_SESSIONS] += 1
    istate[I_LAST_TS] = t
    istate[I_TS] = t
    _block(istate[I_TS:I_TS + 1], book[0:1], book[1:2], book[2:3], book[3:4], 0, 1, r.pf, r.pi, r.out, r.ready, r.ring,
           r.ring_ts, r.sums, istate, r.fstate, r.prev, r.cum, r.tmp, r.pb, r.ptr, r.sv)
    for c in r.logs:
        r.out[0, c] = np.log1p(r.out[0, c])
    return r.ready[0] != 0


_LIVE_FIELDS = ("ring", "ring_ts", "sums", "istate", "fstate", "prev", "cum", "tmp", "pb", "ptr", "sv")


def _live_record(pf: np.ndarray, pi: np.ndarray, logs: np.ndarray, gap_ns: float, daily: bool, n_features: int,
                 arrays: tuple[np.ndarray, ...]) -> np.ndarray:
    """A one-element structured array with one field per array (:data:`_LIVE_FIELDS`), the packed
    parameters, the log1p positions, the session rule and the output row, filled with their values."""
    named = dict(zip(_LIVE_FIELDS, arrays, strict=True))
    # flags as uint8: Numba's records hold no bool arrays
    named.update(pf=pf, pi=pi, logs=logs, gap_ns=np.float64(gap_ns), daily=np.uint8(daily),
                 out=np.zeros((1, n_features)), ready=np.zeros(1, dtype=np.uint8))
    rec = np.zeros(1, dtype=np.dtype([(k, a.dtype, a.shape) for k, a in named.items()], align=True))
    for k, a in named.items():
        rec[k][0] = a
    return rec


def _log1p_columns(out: np.ndarray, logs: np.ndarray) -> None:
    """ln(1 + x) of the columns the depth family leaves as x, in place: one vectorised NumPy pass per
    column (SIMD log1p, ~1.4 ns a value here vs ~7 ns for the scalar call a row loop makes). The
    streaming engine takes the same function of the same x per value (libm); the two agree to
    within an ulp, well inside the batch = streaming test's 1e-12."""
    for c in logs:
        col = out[:, c]
        np.log1p(col, out=col)


def _state(params: FeatureParams, levels: int, pi: np.ndarray) -> tuple[np.ndarray, ...]:
    _, nofi = seg(pi, SEG_OFI)
    return new_state(levels, int(params.capacity), int(nofi))


def _scratch(levels: int, pi: np.ndarray, block: int) -> tuple[np.ndarray, ...]:
    """Work arrays of one block: prefix sums, the depth family's, the flow family's."""
    _, nofi = seg(pi, SEG_OFI)
    return (np.empty((4, levels + 1, block)), np.empty((T_ROWS, block)), *new_scratch(levels, int(nofi), block))


@dataclass
class FeatureResult:
    features: pd.DataFrame  # one column per feature, same index as the input
    ready: np.ndarray  # False on warm-up rows (some window not yet full)


def _column_major(frame: pd.DataFrame, columns: list[str], out: np.ndarray | None = None) -> np.ndarray:
    """(rows, levels) float64 in Fortran order (into ``out`` if given), filled column by column: one copy
    per column instead of pandas' row-major interleave followed by a transpose."""
    if out is None:
        out = np.empty((len(frame), len(columns)), order="F")
    for j, c in enumerate(columns):
        out[:, j] = frame[c].to_numpy(np.float64)
    return out


def one_instrument(book: pd.DataFrame) -> bool:
    """Whether a non-empty frame holds one (symbol, exchange): counting distinct values, not grouping."""
    return len(book) > 0 and book["symbol"].nunique() == 1 and book["exchange"].nunique() == 1


def _instruments(book: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Row positions of each (symbol, exchange). One instrument -- the usual table -- is recognised by
    counting distinct values (12 ms on 2 M rows) instead of grouping (80 ms)."""
    if not len(book):
        return {}
    if one_instrument(book):
        return {(book["symbol"].iloc[0], book["exchange"].iloc[0]): np.arange(len(book))}
    return book.groupby(["symbol", "exchange"], sort=False, observed=True).indices


def compute_batch(book: pd.DataFrame, params: FeatureParams, levels: int) -> FeatureResult:
    """Features of every snapshot of a canonical frame, per (symbol, exchange) in time order.

    The state restarts at each symbol: histories of different instruments never mix.
    """
    pf, pi = params.packed()
    names = params.names()
    logs = params.log1p_positions()
    # column-major (a feature's values contiguous, as pandas and Arrow keep them): the blocks write each
    # column contiguously, and the frame, the cache write and every column read downstream take the
    # array as is
    out = np.empty((len(names), len(book))).T
    ready = np.zeros(len(book), dtype=bool)
    groups = _instruments(book)
    scratch = _scratch(levels, pi, BLOCK)
    for (symbol, _), idx in groups.items():
        whole = len(idx) == len(book)
        part = book if whole else book.iloc[idx]  # one symbol (the usual case): no copy
        mats = [_column_major(part, level_columns(f, levels)) for f in SIDE_FIELDS]
        ts = part["timestamp"].to_numpy(np.int64)
        pf_sym = pf.copy()
        pf_sym[P_TICK] = params.tick_for(str(symbol))
        dest = out if whole else np.empty((len(names), len(idx))).T
        dest_ready = ready if whole else np.zeros(len(idx), dtype=bool)
        for sl in state_segments(ts, params):
            _batch(ts, *mats, sl.start, sl.stop, pf_sym, pi, dest, dest_ready, *_state(params, levels, pi), *scratch)
        if not whole:
            out[idx] = dest
            ready[idx] = dest_ready
    _log1p_columns(out, logs)
    # copy=False: pandas 3 copies an ndarray into a new block by default -- for 2 M rows x 67 features a
    # 1 GB copy that took longer than computing the features; the frame owns ``out`` now
    return FeatureResult(pd.DataFrame(out, columns=names, index=book.index, copy=False), ready)


PIECE_ROWS = 1 << 18  # rows per piece of :func:`compute_pieces` (rounded up to a multiple of the ring)


def compute_pieces(book: pd.DataFrame, params: FeatureParams, levels: int,
                   rows: int = PIECE_ROWS) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """The features of a one-instrument frame in consecutive pieces of at most ~``rows`` rows: ``(start,
    stop, features, ready)`` with ``features`` (stop - start, F) column-major and ``ready`` -- views of
    two buffers reused for every piece, valid until the next piece is asked for. The same values as
    :func:`compute_batch`, bit for bit (tested).

    Why: a whole partition's output is 67 float64 columns of every row (a busy symbol-day of 1.5 M rows:
    0.8 GB, plus 0.5 GB of level matrices), and memory a process touches for the first time is page
    faults -- on this VM a 1.5 M-row partition took 2.7x longer per row than 500 k-row ones. Piece by
    piece, the buffers are a piece's size and reused; the flow state carries over between the pieces of
    a session. A piece starts at a multiple of the ring's size from its session's start, where
    :func:`_batch` (which places blocks relative to its ``start``) agrees with the state's own count."""
    pf, pi = params.packed()
    names = params.names()
    logs = params.log1p_positions()
    if len(book) and not one_instrument(book):
        raise ValueError("compute_pieces takes one instrument; compute_batch takes any frame")
    if len(book):
        pf[P_TICK] = params.tick_for(str(book["symbol"].iloc[0]))
    ts = book["timestamp"].to_numpy(np.int64)
    scratch = _scratch(levels, pi, BLOCK)
    slots = ring_size(int(params.capacity))
    step = -(-max(rows, 1) // slots) * slots
    cap = min(step, len(book))
    out_buf, mat_buf = np.empty(len(names) * cap), np.empty((len(SIDE_FIELDS), levels * cap))
    ready_buf = np.zeros(cap, dtype=bool)
    for session in state_segments(ts, params):
        state = _state(params, levels, pi)
        for a in range(session.start, session.stop, step):
            b = min(a + step, session.stop)
            n = b - a
            part = book.iloc[a:b]
            # (n, k) column-major views of the flat buffers: the layouts compute_batch passes, so the same
            # compiled kernel runs (a strided view would be another signature to compile)
            mats = [_column_major(part, level_columns(f, levels), mat_buf[k, : levels * n].reshape(levels, n).T)
                    for k, f in enumerate(SIDE_FIELDS)]
            out = out_buf[: len(names) * n].reshape(len(names), n).T
            ready = ready_buf[:n]
            ready[:] = False
            _batch(ts[a:b], *mats, 0, n, pf, pi, out, ready, *state, *scratch)
            _log1p_columns(out, logs)
            yield a, b, out, ready


_warm_lock = threading.Lock()
_warm_thread: threading.Thread | None = None


def warm_start(levels: int) -> None:
    """Load the batch kernels (Numba's on-disk cache) on a thread of their own, once per process.

    Why: the first compiled call of a process initialises Numba's CPU target and loads the kernels --
    ~0.35 s on one core. A partition task starts this before reading its partition (Arrow's read
    releases the GIL), so the load overlaps the read instead of following it; the task's own first
    call waits for what is left (Numba's compiler lock). Any parameters do: the compiled code depends
    on the arrays' types, which a two-snapshot book of ``levels`` levels has as every book does."""
    global _warm_thread
    with _warm_lock:
        if _warm_thread is None:
            _warm_thread = threading.Thread(target=_warm, args=(levels,), daemon=True, name="l2exp-feature-load")
            _warm_thread.start()


def _warm(levels: int) -> None:
    cols: dict[str, object] = {"timestamp": np.array([0, 10**8], np.int64), "symbol": ["S", "S"],
                               "exchange": ["E", "E"]}
    for field, first, step in zip(SIDE_FIELDS, (100.0, 1.0, 101.0, 1.0), (-0.5, 0.0, 0.5, 0.0), strict=True):
        for i, c in enumerate(level_columns(field, levels)):
            cols[c] = np.full(2, first + step * i)
    try:
        start_numba(lambda: compute_batch(pd.DataFrame(cols), FeatureParams(), levels))
    except Exception:  # noqa: BLE001 - a kernel's own error is raised again where it is really called
        return


class StreamingEngine:
    """Incremental features for one instrument: ``update(ts, book)`` per snapshot.

    Memory is the ring of ``params.capacity`` snapshots plus a few arrays, whatever the run length.
    """

    def __init__(self, params: FeatureParams, levels: int, symbol: str | None = None) -> None:
        self.params = params
        self.levels = levels
        self.names = params.names()
        self.pf, self.pi = params.packed()
        self.pf[P_TICK] = params.tick_for(symbol)
        self.logs = params.log1p_positions()
        self.gap_ns = float(params.reset_gap_ms) * 1e6
        self.daily = bool(params.reset_daily)
        self.book = np.empty((4, levels))  # bid prices, bid sizes, ask prices, ask sizes
        self.live = _live_record(self.pf, self.pi, self.logs, self.gap_ns, self.daily, len(self.names),
                                 (*_state(params, levels, self.pi), *_scratch(levels, self.pi, 1)))
        self.out = self.live[0]["out"][0]  # a view: each tick's features, overwritten by the next
        # compile / load the kernel now, on a throwaway state: the first live tick must not pay the JIT
        dummy = np.tile(np.array([[100.0], [1.0], [101.0], [1.0]]), (1, levels))
        _step(0, dummy, self.live.copy())

    @property
    def sessions(self) -> int:
        """Sessions started so far (a gap over ``reset_gap_ms`` or, with ``reset_daily``, a new UTC day)."""
        return int(self.live[0]["istate"][I_SESSIONS])

    def update(self, ts: int, bid_price: np.ndarray, bid_size: np.ndarray, ask_price: np.ndarray,
               ask_size: np.ndarray) -> tuple[np.ndarray, bool]:
        """Add one snapshot; returns (feature vector -- reused buffer, copy to keep it --, ready)."""
        b = self.book
        b[0] = bid_price
        b[1] = bid_size
        b[2] = ask_price
        b[3] = ask_size
        return self.update_book(ts, b)

    def update_book(self, ts: int, book: np.ndarray) -> tuple[np.ndarray, bool]:
        """Fast path: ``book`` already a (4, levels) float64 array."""
        if not book.flags.c_contiguous:  # one compiled signature: a strided view would compile another
            book = np.ascontiguousarray(book)
        return self.out, _step(ts, book, self.live)
