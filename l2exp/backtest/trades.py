"""Trades (prints) for queue-position accounting, mapped by YAML like the books (``data.trades``).

``{path, columns, timestamp: {...same recipe as books...}, price, size, side: {column, buy}, symbol}``;
BitMEX: ``side`` is the aggressor (Buy lifts the ask).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from rich.markup import escape

from l2exp.data.mapping import _STRIP, TimestampSpec, _iso_to_ns, _number_to_ns
from l2exp.data.readers import CsvReader
from l2exp.data.stores.base import L2Store
from l2exp.errors import UserError
from l2exp.summary import console


def load_trades(spec: dict[str, Any] | None, symbol: str | None, store: L2Store | None = None) -> pd.DataFrame:
    """Columns ts (int64 ns), price, size, side (+1 buyer-initiated, -1 seller-initiated).

    Read with the ingest :class:`~l2exp.data.readers.CsvReader`, so malformed lines (the BitMEX
    2020-03-10 trades file has one with 26,595 fields) are skipped *and reported*, never fatal or silent.
    """
    empty = pd.DataFrame({"ts": np.zeros(0, np.int64), "price": [], "size": [], "side": []})
    if spec and spec.get("_target_"):  # e.g. StoreTrades: the trades ingested with the book
        from l2exp.config import instantiate

        return instantiate(spec).load(symbol, store)
    if not spec or not spec.get("path"):
        return empty
    path = str(spec["path"])
    if not Path(path).exists():
        raise UserError(f"trades file not found: {path}", where="data.trades.path",
                        fix="Fix the path, or set data.trades=null to backtest without trades "
                            "(queue position then advances with displayed-size decreases only).")
    ts_spec = TimestampSpec(**dict(spec["timestamp"]))
    numeric = {spec["price"], spec["size"]} | ({ts_spec.plus["column"]} if ts_spec.plus else set())
    reader = CsvReader(levels=1, columns=list(spec["columns"]) if spec.get("columns") else None)  # None: a header
    frames, bad = [], 0
    for chunk in reader.iter_chunks(path, 1_000_000, numeric):
        bad += len(chunk.bad_rows)
        frames.append(_map(chunk.table, spec, ts_spec))
    df = pd.concat(frames, ignore_index=True) if frames else empty
    unusable = int(df[["price", "size"]].isna().any(axis=1).sum()) if len(df) else 0
    if bad or unusable:
        console.print(f"[bold yellow]trades {escape(Path(path).name)}: {bad} malformed line(s) and {unusable} row(s) "
                      f"with unparseable numbers skipped[/]")
    df = df.dropna(subset=["price", "size"])
    df.attrs["skipped_rows"] = bad + unusable
    if spec.get("symbol") and symbol is not None:
        df = df[df["symbol"] == symbol]
    return df.drop(columns=["symbol"]).sort_values("ts", kind="stable").reset_index(drop=True)


class StoreTrades:
    """``data.trades: {_target_: l2exp.backtest.trades.StoreTrades}``: the trades ingested from the same
    source as the books (a websocket capture's trade stream; :data:`l2exp.schema.TRADE_SCHEMA`)."""

    def load(self, symbol: str | None, store: L2Store | None) -> pd.DataFrame:
        if store is None:
            raise UserError("data.trades reads the store's trades, and no store was given", where="data.trades",
                            fix="Backtests and replays pass their store; elsewhere use a trades file "
                                "(data.trades.path).")
        t = store.read_side("trades", [symbol] if symbol else None)
        if len(t) == 0:
            console.print(f"[bold yellow]the store {escape(str(store.location()))} holds no trades for "
                          f"{escape(str(symbol))}: queue position "
                          "advances with displayed-size decreases only[/]")
        df = pd.DataFrame({"ts": t["ts"].to_numpy(np.int64), "price": t["price"].to_numpy(float),
                           "size": t["size"].to_numpy(float), "side": t["side"].to_numpy(float)})
        df.attrs["skipped_rows"] = 0
        return df.sort_values("ts", kind="stable").reset_index(drop=True)


def _map(table: Any, spec: dict[str, Any], ts_spec: TimestampSpec) -> pd.DataFrame:
    col = table.column(ts_spec.column)
    if ts_spec.unit == "iso":
        ts, _ = _iso_to_ns(col, ts_spec.tz)
    else:
        ts = _number_to_ns(_num(col), ts_spec.unit)
    if ts_spec.plus:
        extra = np.nan_to_num(_num(table.column(ts_spec.plus["column"])))
        ts = ts + _number_to_ns(extra, ts_spec.plus.get("unit", "ms"))
    side = pc.utf8_trim(table.column(spec["side"]["column"]).cast("string"), _STRIP).to_numpy(zero_copy_only=False)
    sym = (pc.utf8_trim(table.column(spec["symbol"]).cast("string"), _STRIP).to_numpy(zero_copy_only=False)
           if spec.get("symbol") else np.full(table.num_rows, ""))
    return pd.DataFrame({"ts": np.asarray(ts, dtype=np.int64), "price": _num(table.column(spec["price"])),
                         "size": _num(table.column(spec["size"])),
                         "side": np.where(side == str(spec["side"]["buy"]), 1.0, -1.0), "symbol": sym})


def _num(col: Any) -> np.ndarray:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return pd.to_numeric(pd.Series(col.to_numpy(zero_copy_only=False)).str.strip(_STRIP), errors="coerce").to_numpy(
            float)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)


def trades_coverage(book_ts: np.ndarray, trade_ts: np.ndarray, gap_ms: float) -> tuple[float, list[tuple[int, int]]]:
    """Fraction of the traded (session) time that the trade prints cover, and the uncovered spans.

    The prints cover [first print, last print]; traded time is the union of the sessions of
    ``book_ts`` (a gap between recordings is no time). Outside the covered span the queue model has no
    prints to advance a resting order's queue position, so its fills there are a different model
    (the backtest says which) -- a researcher must know before trusting passive fills.
    """
    from l2exp.sessions import sessions

    if len(book_ts) < 2:
        return (1.0 if len(trade_ts) else 0.0), []
    lo, hi = (int(trade_ts.min()), int(trade_ts.max())) if len(trade_ts) else (0, -1)
    total = covered = 0
    uncovered: list[tuple[int, int]] = []
    for sl in sessions(book_ts, gap_ms):
        a, b = int(book_ts[sl][0]), int(book_ts[sl][-1])
        total += b - a
        ca, cb = max(a, lo), min(b, hi)
        covered += max(0, cb - ca)
        if cb <= ca:
            uncovered.append((a, b))
            continue
        if ca > a:
            uncovered.append((a, ca))
        if cb < b:
            uncovered.append((cb, b))
    return (covered / total if total > 0 else (1.0 if len(trade_ts) else 0.0)), uncovered
