"""Trades (prints) for queue-position accounting, mapped by YAML like the books (``data.trades``).

``{path, columns, timestamp: {...same recipe as books...}, price, size, side: {column, buy}, symbol}``;
BitMEX: ``side`` is the aggressor (Buy lifts the ask). Small files: read whole with pyarrow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from l2exp.data.mapping import TimestampSpec, _iso_to_ns, _number_to_ns
from l2exp.errors import UserError


def load_trades(spec: dict[str, Any] | None, symbol: str | None) -> pd.DataFrame:
    """Columns ts (int64 ns), price, size, side (+1 buyer-initiated, -1 seller-initiated)."""
    empty = pd.DataFrame({"ts": np.zeros(0, np.int64), "price": [], "size": [], "side": []})
    if not spec or not spec.get("path"):
        return empty
    path = str(spec["path"])
    if not Path(path).exists():
        raise UserError(f"trades file not found: {path}", where="data.trades.path",
                        fix="Fix the path, or set data.trades=null to backtest without trades "
                            "(queue position then advances with displayed-size decreases only).")
    table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=list(spec["columns"])))
    ts_spec = TimestampSpec(**dict(spec["timestamp"]))
    col = table.column(ts_spec.column)
    if ts_spec.unit == "iso":
        ts, _ = _iso_to_ns(col, ts_spec.tz)
    else:
        ts = _number_to_ns(np.asarray(col.to_numpy(zero_copy_only=False), dtype=float), ts_spec.unit)
    if ts_spec.plus:
        extra = np.asarray(table.column(ts_spec.plus["column"]).to_numpy(zero_copy_only=False), dtype=float)
        ts = ts + _number_to_ns(extra, ts_spec.plus.get("unit", "ms"))
    side_col = pc.utf8_trim_whitespace(table.column(spec["side"]["column"]).cast("string")).to_numpy(
        zero_copy_only=False)
    df = pd.DataFrame({"ts": ts.astype(np.int64),
                       "price": np.asarray(table.column(spec["price"]).to_numpy(zero_copy_only=False), float),
                       "size": np.asarray(table.column(spec["size"]).to_numpy(zero_copy_only=False), float),
                       "side": np.where(side_col == str(spec["side"]["buy"]), 1.0, -1.0)})
    if spec.get("symbol") and symbol is not None:
        sym = pc.utf8_trim(table.column(spec["symbol"]).cast("string"), "\x00 \"").to_numpy(zero_copy_only=False)
        df = df[sym == symbol]
    return df.sort_values("ts", kind="stable").reset_index(drop=True)
