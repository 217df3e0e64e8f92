"""Feeds emit canonical snapshots: ``Tick(ts_ns, symbol, book (4, L))``.

* :class:`ReplayFeed` plays a stored recording (``data=``) as fast as possible or at ``speed`` x real time.
* :class:`CcxtRestFeed` polls ``fetch_order_book`` of any ccxt exchange; :class:`CcxtWsFeed` keeps the
  latest book from ``ccxt.pro``'s ``watch_order_book`` in a background thread.

Both live feeds reconnect with exponential backoff and jitter, count what went wrong (reconnects,
errors, schema rejects) and give up with a clear message after ``max_failures`` consecutive failures:
there is no endless retry loop. Nothing here can place an order.

Credentials: market data is public on nearly every venue, and a ccxt client holding keys calls signed
private endpoints on its own (Binance's ``load_markets`` asks ``sapi/v1/capital/config/getall`` for
currencies). So keys are passed only with ``feed.client.authenticate=true`` (for a venue that gates
market data), read only from the environment -- ``L2EXP_<EXCHANGE>_API_KEY`` and
``L2EXP_<EXCHANGE>_API_SECRET`` -- and never enter the config, params, logs or artifacts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from l2exp.errors import UserError


@dataclass
class Tick:
    ts: int  # ns since epoch (exchange time when the venue gives it, else receive time)
    symbol: str
    book: np.ndarray  # (4, L)
    received_ns: int  # perf_counter_ns at receipt (latency clock)


class FeedStats:
    def __init__(self) -> None:
        self.reconnects = 0
        self.errors = 0
        self.schema_rejects = 0
        self.consecutive_failures = 0
        self.last_error = ""


def book_from_sides(bids: list, asks: list, levels: int) -> np.ndarray:
    """ccxt ``[[price, amount], ...]`` sides -> (4, L) canonical book (missing levels NaN)."""
    out = np.full((4, levels), np.nan)
    for side, rows in ((0, bids), (2, asks)):
        for k, row in enumerate(rows[:levels]):
            out[side, k] = float(row[0])
            out[side + 1, k] = float(row[1])
    return out


class ReplayFeed:
    """A stored recording as a feed (the same rows the backtest reads). With ``speed`` > 0 the rows
    come at ``speed`` x their recorded pace from the first row at or after ``pace_from_ts`` (earlier
    rows -- feature warm-up history -- come at once)."""

    def __init__(self, book_frame: Any, levels: int, speed: float = 0.0, pace_from_ts: int | None = None,
                 trades: Any = None) -> None:
        from l2exp.schema import SIDE_FIELDS, level_columns

        self.ts = book_frame["timestamp"].to_numpy(np.int64)
        self.symbol = str(book_frame["symbol"].iloc[0]) if len(book_frame) else ""
        mats = [book_frame[level_columns(f, levels)].to_numpy(np.float64) for f in SIDE_FIELDS]
        self.books = np.stack(mats, axis=1)  # (n, 4, L)
        self.speed = speed
        self.pace_from = int(self.ts[0]) if pace_from_ts is None or not len(self.ts) else int(pace_from_ts)
        self.i = 0
        # trade prints of the recording (ts, price, size, side), handed out in time order with the books
        empty = np.zeros(0)
        self.tr = tuple(np.asarray(trades[c], dtype=float if c != "ts" else np.int64) for c in
                        ("ts", "price", "size", "side")) if trades is not None and len(trades) else \
            (np.zeros(0, np.int64), empty, empty, empty)
        self.j = 0
        self.funding = (np.zeros(0, np.int64), empty)  # funding times and rates (set by the sim for a perpetual)
        self.k = 0
        self.stats = FeedStats()
        self._wall0: float | None = None

    @property
    def exhausted(self) -> bool:
        return self.i >= len(self.ts)

    def poll(self) -> Tick | None:
        if self.exhausted:
            return None
        i = self.i
        if self.speed > 0 and self.ts[i] >= self.pace_from:
            if self._wall0 is None:
                self._wall0 = time.perf_counter()
                self._t0 = int(self.ts[i])
            due = self._wall0 + (self.ts[i] - self._t0) / 1e9 / self.speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        self.i += 1
        return Tick(int(self.ts[i]), self.symbol, self.books[i], time.perf_counter_ns())

    def trades_until(self, ts: int) -> tuple[np.ndarray, ...]:
        """The prints at or before ``ts`` not handed out yet (as the backtest replays them before the
        snapshot at ``ts``)."""
        k = int(np.searchsorted(self.tr[0], ts, side="right"))
        out = tuple(a[self.j:k] for a in self.tr)
        self.j = max(self.j, k)
        return out

    def funding_until(self, ts: int) -> tuple[np.ndarray, np.ndarray]:
        """The funding events at or before ``ts`` not handed out yet."""
        k = int(np.searchsorted(self.funding[0], ts, side="right"))
        out = (self.funding[0][self.k:k], self.funding[1][self.k:k])
        self.k = max(self.k, k)
        return out

    def close(self) -> None:
        pass


def credential_names(exchange: str) -> tuple[str, str]:
    return f"L2EXP_{exchange.upper()}_API_KEY", f"L2EXP_{exchange.upper()}_API_SECRET"


def _credentials(exchange: str, authenticate: bool) -> dict[str, str]:
    """ccxt ``apiKey``/``secret`` from the environment -- only when ``authenticate`` (see the module doc)."""
    if not authenticate:
        return {}
    key_name, secret_name = credential_names(exchange)
    key, secret = os.environ.get(key_name), os.environ.get(secret_name)
    if not (key and secret):
        old = f"L2EXP_{exchange.upper()}_SECRET"
        hint = f" ({old} is set: the name is now {secret_name})" if os.environ.get(old) else ""
        raise UserError(f"feed.client.authenticate=true but {key_name} / {secret_name} are not both set{hint}",
                        where="feed.client.authenticate",
                        fix=f"export {key_name}=... {secret_name}=...  (read-only keys are enough), or drop "
                            f"authenticate: public market data needs no keys")
    return {"apiKey": key, "secret": secret}


class _Backoff:
    def __init__(self, base_ms: float, cap_ms: float) -> None:
        self.base, self.cap, self.n = base_ms / 1e3, cap_ms / 1e3, 0

    def next(self) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2^n))."""
        d = random.uniform(0, min(self.cap, self.base * 2**self.n))
        self.n += 1
        return d

    def reset(self) -> None:
        self.n = 0


class CcxtRestFeed:
    """Polls ``fetch_order_book`` (one request per sample)."""

    def __init__(self, exchange: str, symbol: str, levels: int, options: dict[str, Any] | None = None,
                 timeout_ms: int = 3000, backoff_ms: float = 200, backoff_cap_ms: float = 5000,
                 max_failures: int = 30, authenticate: bool = False) -> None:
        import ccxt

        if not hasattr(ccxt, exchange):
            raise UserError(f"ccxt has no exchange {exchange!r}", where="feed.exchange",
                            fix="See ccxt.exchanges for the list (e.g. binance, kraken, bitmex).")
        self.exchange_id, self.symbol, self.levels = exchange, symbol, levels
        self.options = dict(options or {})
        self.credentials = _credentials(exchange, authenticate)
        self.timeout_ms = timeout_ms
        self.backoff = _Backoff(backoff_ms, backoff_cap_ms)
        self.max_failures = max_failures
        self.stats = FeedStats()
        self.exhausted = False
        self._nonce: Any = None
        self._nonce_ns = 0
        self.client = self._connect()

    def _connect(self) -> Any:
        import ccxt

        cfg = {"enableRateLimit": False, "timeout": self.timeout_ms, **self.options, **self.credentials}
        return getattr(ccxt, self.exchange_id)(cfg)

    def _fail(self, exc: Exception) -> None:
        self.stats.errors += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
        if self.stats.consecutive_failures >= self.max_failures:
            raise UserError(f"{self.exchange_id} {self.symbol}: {self.max_failures} consecutive failures, giving up; "
                            f"last: {self.stats.last_error}", where="feed",
                            fix="Check the network / exchange status, or raise feed.max_failures.")
        time.sleep(self.backoff.next())
        if self.stats.consecutive_failures % 3 == 0:  # reconnect: a fresh client (new session, new sockets)
            self.stats.reconnects += 1
            self.client = self._connect()

    def poll(self) -> Tick | None:
        import ccxt

        try:
            ob = self.client.fetch_order_book(self.symbol, limit=self.levels)
        except (ccxt.NetworkError, ccxt.ExchangeError, ValueError, TypeError, KeyError) as exc:
            self._fail(exc)
            return None
        try:
            book = book_from_sides(ob["bids"], ob["asks"], self.levels)
        except (TypeError, ValueError, IndexError, KeyError) as exc:
            self.stats.schema_rejects += 1
            self._fail(exc)
            return None
        self.stats.consecutive_failures = 0
        self.backoff.reset()
        now = time.time_ns()
        if ob.get("nonce") != self._nonce or ob.get("nonce") is None:  # a new book version
            self._nonce, self._nonce_ns = ob.get("nonce"), now
        # exchange time when given; else the time this book version was first seen, so a frozen book
        # (same update id poll after poll) ages and trips the stale guard
        ts = int(ob["timestamp"]) * 1_000_000 if ob.get("timestamp") else self._nonce_ns
        return Tick(ts, self.symbol, book, time.perf_counter_ns())

    def close(self) -> None:
        pass


class CcxtWsFeed:
    """``ccxt.pro.watch_order_book`` in a background asyncio thread; ``poll`` returns the newest book
    once (None until it changes).

    Silence watchdog: a stream that sends nothing for ``silence_s`` counts as a failure and is
    reconnected. Why: a connection can stay open while nothing arrives (a stalled venue), and ccxt's
    receive loop dies silently on some malformed frames (found with a garbage frame in
    ``tests/sim/test_ws_feed.py``: ``await watch_order_book`` then never returns)."""

    def __init__(self, exchange: str, symbol: str, levels: int, options: dict[str, Any] | None = None,
                 backoff_ms: float = 200, backoff_cap_ms: float = 5000, max_failures: int = 30,
                 authenticate: bool = False, silence_s: float = 10.0, **_: Any) -> None:
        self.exchange_id, self.symbol, self.levels = exchange, symbol, levels
        self.options = dict(options or {})
        self.credentials = _credentials(exchange, authenticate)
        self.silence_s = float(silence_s)
        self.stats = FeedStats()
        self.backoff = _Backoff(backoff_ms, backoff_cap_ms)
        self.max_failures = max_failures
        self.exhausted = False
        self._latest: Tick | None = None
        self._last_ts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._fatal: str | None = None
        # imported here, not in the thread: CPython 3.11 fails ("AST constructor recursion depth
        # mismatch") when two threads compile modules at once, and ccxt.pro is a large import
        import ccxt.pro  # noqa: F401

        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True, name="l2exp-ws")
        self._thread.start()

    async def _run(self) -> None:
        import ccxt.pro as ccxtpro

        while not self._stop.is_set():
            client = getattr(ccxtpro, self.exchange_id)({**self.options, **self.credentials})
            try:
                while not self._stop.is_set():
                    ob = await _within(client.watch_order_book(self.symbol, self.levels), self.silence_s,
                                       f"no book for {self.silence_s:g} s (stalled stream)")
                    book = book_from_sides(ob["bids"], ob["asks"], self.levels)
                    ts = int(ob["timestamp"]) * 1_000_000 if ob.get("timestamp") else time.time_ns()
                    # never backwards: a resynchronised book without an exchange time is stamped on
                    # receipt, and the next update's exchange time (whole ms) can be just before it
                    ts = max(ts, self._last_ts)
                    self._last_ts = ts
                    with self._lock:
                        self._latest = Tick(ts, self.symbol, book, time.perf_counter_ns())
                    self.stats.consecutive_failures = 0
                    self.backoff.reset()
            except Exception as exc:  # noqa: BLE001 - every failure counts toward the bounded retry budget
                self.stats.errors += 1
                self.stats.consecutive_failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self.stats.consecutive_failures >= self.max_failures:
                    self._fatal = self.stats.last_error
                    return
                self.stats.reconnects += 1
                await asyncio.sleep(self.backoff.next())
            finally:
                with contextlib.suppress(Exception):
                    await _within(client.close(), 5.0, "close")

    def poll(self) -> Tick | None:
        if self._fatal:
            raise UserError(f"{self.exchange_id} websocket: {self.max_failures} consecutive failures; last: "
                            f"{self._fatal}", where="feed", fix="Check the network, or use feed.mode=rest.")
        with self._lock:
            tick, self._latest = self._latest, None
        return tick

    def close(self) -> None:
        """Stop the stream and wait for its thread (a book in flight, or ``silence_s`` at most)."""
        self._stop.set()
        self._thread.join(timeout=self.silence_s + 6.0)


async def _within(awaitable: Any, seconds: float, what: str) -> Any:
    """``awaitable``'s result, or TimeoutError after ``seconds`` -- without waiting for the cancelled
    call to wind down (``asyncio.wait_for`` does wait, and a ccxt call whose receive loop died never
    does)."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        raise TimeoutError(what)
    return task.result()


def iterate(feed: Any) -> Iterator[Tick]:
    while not feed.exhausted:
        tick = feed.poll()
        if tick is not None:
            yield tick
