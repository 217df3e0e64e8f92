"""Map any venue's raw columns onto the canonical L2 schema, driven only by YAML.

A mapping (``conf/data/<source>.yaml``, key ``mapping``) names, for each canonical field, the raw
column of level ``{i}``:

* plain names: ``bid_price: "b{i}"`` (BitMEX), ``bid_price: "bid_{i}_px"``;
* nested arrays from JSON: ``bid_price: "bids[{i}][0]"`` (a list ``[price, qty]`` per level) or
  ``bid_price: "bids[{i}].price"`` (a struct per level); levels are 1-based, inner indexes 0-based;
* flat columns whose names hold brackets (Tardis ``book_snapshot_25``: ``bids[0].price``):
  ``literal_columns: true`` and ``level_base: 0`` (the source numbers its best level 0).

plus the timestamp recipe, symbol/exchange (a column or a constant), a price/size scale,
``sort_levels`` (books kept in fixed slots, BitMEX orderBook25), ``empty_level_prices`` (placeholder
prices of empty levels, LOBSTER's +-9999999999) and ``empty_level_sizes`` (placeholder sizes of empty
slots, BitMEX orderBook25's 0).

Nothing here is venue-specific: adding a venue is a YAML file.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from l2exp.data.readers import RawChunk
from l2exp.errors import UserError
from l2exp.schema import SIDE_FIELDS, TS_MAX_NS, TS_MIN_NS, BookChunk

_NESTED = re.compile(r"^(?P<base>[^\[\]]+)\[\{i\}\](?:\[(?P<idx>\d+)\]|\.(?P<field>\w+))$")
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
_STRIP = "\x00 \t\"'"


@dataclass
class TimestampSpec:
    """How to build ``timestamp`` (int64 ns UTC).

    * ``unit``: ``iso`` (date-time text or a parsed timestamp column) or a number unit
      ``s | ms | us | ns``;
    * ``origin``: ``epoch`` (Unix time) or ``midnight`` (seconds after local midnight of ``date``,
      or of the date matched by the regex ``date_from_path`` in the file name, in time zone ``tz``);
    * ``tz``: time zone of naive times (``UTC`` by default);
    * ``plus``: another column added to it, e.g. BitMEX ``{column: millis, unit: ms}``;
    * ``precision``: round to ``ms``/``us`` (floats of epoch seconds carry ~200 ns of noise).
    """

    column: str
    unit: str = "ns"
    origin: str = "epoch"
    tz: str = "UTC"
    date: str | None = None
    date_from_path: str | None = None
    plus: dict[str, str] | None = None
    precision: str | None = None


@dataclass
class ValueSpec:
    """A string column (``column``) or a constant (``value``) for symbol/exchange."""

    column: str | None = None
    value: str | None = None


@dataclass
class LayoutMapping:
    bid_price: str
    bid_size: str
    ask_price: str
    ask_size: str
    timestamp: TimestampSpec
    symbol: ValueSpec
    exchange: ValueSpec
    source_levels: int
    levels: int
    price_scale: float = 1.0
    size_scale: float = 1.0
    sort_levels: bool = False
    empty_level_prices: list[float] = field(default_factory=list)
    empty_level_sizes: list[float] = field(default_factory=list)
    level_base: int = 1  # the number the source gives its best level (Tardis book_snapshot_N: 0)
    # the recorder's receive time (Tardis local_timestamp): {column, unit}, epoch only; stored as recv_ts
    receive_time: TimestampSpec | None = None
    literal_columns: bool = False  # "bids[{i}].price" names a column, not a path into nested JSON

    @classmethod
    def from_config(cls, cfg: dict[str, Any], source_levels: int, levels: int) -> LayoutMapping:
        cfg = dict(cfg)
        ts = TimestampSpec(**dict(cfg.pop("timestamp")))
        sym = ValueSpec(**dict(cfg.pop("symbol")))
        exch = ValueSpec(**dict(cfg.pop("exchange")))
        recv = cfg.pop("receive_time", None)
        if recv is not None:
            cfg["receive_time"] = TimestampSpec(**dict(recv))
        unknown = set(cfg) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise UserError(f"unknown mapping key(s) {sorted(unknown)}", where="data.mapping",
                            fix=f"Valid keys: {sorted(cls.__dataclass_fields__)}")
        if source_levels > 1:  # one column for every level: each row would be a book at one price per side
            flat = [f for f in SIDE_FIELDS if "{i}" not in str(cfg.get(f, "{i}"))]
            if flat:
                raise UserError(f"data.mapping.{flat[0]}: {cfg[flat[0]]!r} has no {{i}}, so all {source_levels} "
                                "levels would read one column",
                                where=f"data.mapping.{flat[0]}",
                                fix="Name the column of level {i} (e.g. \"bid_price_{i}\"). A table with one row "
                                    "per level (timestamp, side, level, price, size) is a long table: "
                                    "data=long_csv, or data.reader._target_=l2exp.data.long_table.LongTable "
                                    "(docs/data.md). Or set data.levels=1 for a top-of-book file.")
        return cls(timestamp=ts, symbol=sym, exchange=exch, source_levels=source_levels,
                   levels=levels, **cfg)

    # -- which raw columns are needed -----------------------------------------------------------
    def field_column(self, fld: str, level: int) -> str:
        return self._name(getattr(self, fld), level)

    def _name(self, pattern: str, level: int) -> str:
        """Column of canonical level ``level`` (1 = best) in ``pattern``, numbered from ``level_base``."""
        return pattern.format(i=level - 1 + self.level_base)

    def _nested(self, pattern: str) -> re.Match[str] | None:
        return None if self.literal_columns else _NESTED.match(pattern)

    def numeric_columns(self) -> set[str]:
        cols = {self.field_column(f, i) for f in SIDE_FIELDS for i in range(1, self.source_levels + 1)}
        # the time column is left to type inference: integer epochs must stay int64 (float64 has
        # 256 ns resolution at 1.7e18 ns), fractional ones are parsed as float
        if self.timestamp.plus:
            cols.add(self.timestamp.plus["column"])
        return cols

    def required_columns(self) -> list[str]:
        """Top-level raw columns this mapping reads (nested refs name their base column)."""
        cols: list[str] = []
        for f in SIDE_FIELDS:
            pattern = getattr(self, f)
            m = self._nested(pattern)
            if m:
                cols.append(m.group("base"))
            else:
                cols.extend(self._name(pattern, i) for i in range(1, self.source_levels + 1))
        cols.append(self.timestamp.column)
        if self.receive_time is not None:
            cols.append(self.receive_time.column)
        if self.timestamp.plus:
            cols.append(self.timestamp.plus["column"])
        for spec in (self.symbol, self.exchange):
            if spec.column:
                cols.append(spec.column)
        return list(dict.fromkeys(cols))

    def check_columns(self, found: list[str], path: str) -> None:
        """Fail with the columns found, the closest match for each missing one and YAML to fix it."""
        missing = [c for c in self.required_columns() if c not in found]
        if not missing:
            return
        lines, yaml, covered = [], ["mapping:"], set()
        for f in SIDE_FIELDS:
            pattern = getattr(self, f)
            if self._nested(pattern):
                continue
            need = [c for c in missing if c in {self._name(pattern, i) for i in range(1, self.source_levels + 1)}]
            if not need:
                continue
            covered.update(need)
            guess = _guess_pattern(f, found)
            close = difflib.get_close_matches(need[0], found, n=3, cutoff=0.4)
            lines.append(f"  {f} = {pattern!r}: {len(need)} level column(s) missing, e.g. {need[0]!r}; "
                         f"closest found {close or 'none'}")
            yaml.append(f'  {f}: "{guess or "<column of " + f + " at level {i}>"}"')
        for c in missing:
            if c in covered:
                continue
            close = difflib.get_close_matches(c, found, n=3, cutoff=0.4)
            lines.append(f"  {c!r}: closest found {close or 'none'}")
            if c == self.timestamp.column:
                yaml.append(f"  timestamp: {{column: {close[0] if close else '<time column>'}, unit: ms}}"
                            "   # unit: iso|s|ms|us|ns")
        raise UserError(
            f"{len(missing)} column(s) the mapping needs are not in {Path(path).name}:\n" + "\n".join(lines)
            + f"\n  columns found ({len(found)}): {found[:40]}{' ...' if len(found) > 40 else ''}",
            where=f"{path} vs data.mapping",
            fix="Map the file's own names in conf/data/<source>.yaml (check the guesses), e.g.\n" + "\n".join(yaml),
        )

    # -- raw -> canonical ---------------------------------------------------------------------
    def apply(self, raw: RawChunk) -> tuple[BookChunk, np.ndarray, dict[int, str]]:
        """Map one raw chunk. Returns (chunk, unparseable mask, detail by row index)."""
        table = raw.table
        n = table.num_rows
        bad = np.zeros(n, dtype=bool)
        detail: dict[int, str] = {}
        nested_cache: dict[str, np.ndarray] = {}
        mats: dict[str, np.ndarray] = {}
        for fld in SIDE_FIELDS:
            view = self._parsed_levels(raw, fld)
            if view is not None:
                mats[fld] = view
                continue
            mat = np.empty((n, self.source_levels), order="F")  # column-major: each level contiguous
            for i in range(1, self.source_levels + 1):
                ref = self.field_column(fld, i)
                mat[:, i - 1] = self._numeric(table, ref, i, getattr(self, fld), nested_cache, bad, detail)
            mats[fld] = mat
        for side in ("bid", "ask"):  # placeholder slots of empty levels -> NaN (a level absent)
            empty = np.zeros(mats[f"{side}_price"].shape, dtype=bool)
            if self.empty_level_prices:
                empty |= np.isin(mats[f"{side}_price"], np.asarray(self.empty_level_prices, dtype=float))
            if self.empty_level_sizes:
                empty |= np.isin(mats[f"{side}_size"], np.asarray(self.empty_level_sizes, dtype=float))
            mats[f"{side}_price"][empty] = np.nan
            mats[f"{side}_size"][empty] = np.nan
        if self.price_scale != 1.0:
            mats["bid_price"] *= self.price_scale
            mats["ask_price"] *= self.price_scale
        if self.size_scale != 1.0:
            mats["bid_size"] *= self.size_scale
            mats["ask_size"] *= self.size_scale
        if self.sort_levels:
            _sort_side(mats, "bid", descending=True)
            _sort_side(mats, "ask", descending=False)
        out = {}
        for fld in SIDE_FIELDS:
            m = mats[fld]
            if m.shape[1] == self.levels:
                out[fld] = np.asfortranarray(m)
                continue
            o = np.full((n, self.levels), np.nan, order="F")
            k = min(self.levels, m.shape[1])
            o[:, :k] = m[:, :k]
            out[fld] = o
        ts = self._timestamps(table, raw.path, bad, detail)
        chunk = BookChunk(ts, self._strings(table, self.symbol, n, "symbol"),
                          self._strings(table, self.exchange, n, "exchange"), **out,
                          recv_ts=self._receive_times(table))
        return chunk, bad, detail

    def _parsed_levels(self, raw: RawChunk, fld: str) -> np.ndarray | None:
        """The levels of ``fld`` as a slice of the compiled parser's float matrix -- no copy -- when
        they are adjacent columns of it in level order and this mapping changes no value in place
        (no placeholder levels, scaling or re-sorting: the slice shares memory with the raw table)."""
        if raw.floats is None or self.empty_level_prices or self.empty_level_sizes or self.sort_levels \
                or self.price_scale != 1.0 or self.size_scale != 1.0:
            return None
        cols = [raw.float_columns.get(self.field_column(fld, i)) for i in range(1, self.source_levels + 1)]
        if cols[0] is None or cols != list(range(cols[0], cols[0] + self.source_levels)):
            return None
        return raw.floats[:, cols[0]: cols[0] + self.source_levels]

    def _numeric(self, table: pa.Table, ref: str, level: int, pattern: str,
                 cache: dict[str, np.ndarray], bad: np.ndarray, detail: dict[int, str]) -> np.ndarray:
        if ref in table.column_names:
            return _to_float(table.column(ref), ref, bad, detail)
        m = self._nested(pattern)
        if m is None:
            raise UserError(f"column {ref!r} missing", where="data.mapping")
        base = m.group("base")
        key = f"{base}.{m.group('idx') or m.group('field')}"
        if key not in cache:
            cache[key] = _nested_matrix(table, base, m.group("idx"), m.group("field"), self.source_levels)
        return cache[key][:, level - 1]

    def _strings(self, table: pa.Table, spec: ValueSpec, n: int, name: str) -> pd.Categorical:
        if spec.column is None:
            return pd.Categorical.from_codes(np.zeros(n, dtype=np.int8), categories=[str(spec.value)])
        col = table.column(spec.column)
        if not pa.types.is_dictionary(col.type):
            col = pc.dictionary_encode(col.cast(pa.string()))
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        dictionary = pc.utf8_trim(col.dictionary.cast(pa.string()), _STRIP).to_pylist()
        codes = col.indices.to_numpy(zero_copy_only=False)
        uniq, inverse = np.unique(np.asarray(dictionary, dtype=object), return_inverse=True)
        return pd.Categorical.from_codes(inverse[codes].astype(np.int32), categories=list(uniq))

    def _timestamps(self, table: pa.Table, path: str, bad: np.ndarray, detail: dict[int, str]) -> np.ndarray:
        spec = self.timestamp
        col = table.column(spec.column)
        n = table.num_rows
        if spec.unit == "iso":
            ts, nat = _iso_to_ns(col, spec.tz)
        elif spec.unit in _UNIT_NS:
            ints = _to_int(col)
            vals = ints.astype(np.float64) if ints is not None else _to_float(col, spec.column, bad, detail)
            self._check_plausible(vals, path)
            nat = ~np.isfinite(vals) | (np.abs(vals) * _UNIT_NS[spec.unit] > 9e18)  # would overflow int64
            if ints is not None:  # exact integer arithmetic
                ts = np.where(nat, 0, ints) * _UNIT_NS[spec.unit]
            else:
                ts = _number_to_ns(np.where(nat, 0.0, vals), spec.unit)
            if spec.origin == "midnight":
                ts = ts + _midnight_ns(spec, path, n)
                if spec.tz != "UTC":
                    ts = pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize(spec.tz).asi8
            elif spec.origin != "epoch":
                raise UserError(f"unknown timestamp origin {spec.origin!r}", where="data.mapping.timestamp.origin",
                                fix="Use origin: epoch or origin: midnight.")
        else:
            raise UserError(f"unknown timestamp unit {spec.unit!r}", where="data.mapping.timestamp.unit",
                            fix="Use one of: iso, s, ms, us, ns.")
        nat = np.array(nat, dtype=bool)  # writable copy
        if spec.plus:
            extra = _to_float(table.column(spec.plus["column"]), spec.plus["column"], bad, detail)
            nat |= ~np.isfinite(extra)
            ts = ts + _number_to_ns(np.where(np.isfinite(extra), extra, 0.0), spec.plus.get("unit", "ms"))
        if spec.precision:
            q = _UNIT_NS[spec.precision]
            ts = (ts + q // 2) // q * q
        out_of_range = (ts < TS_MIN_NS) | (ts > TS_MAX_NS)
        for i in np.flatnonzero((nat | out_of_range) & ~bad)[:1000]:
            detail.setdefault(int(i), f"{spec.column}: unparseable or implausible time")
        bad |= nat | out_of_range
        return np.where(bad, 0, ts).astype(np.int64)

    def _receive_times(self, table: pa.Table) -> np.ndarray | None:
        """``receive_time`` in ns (epoch numbers, or ISO text); -1 where a value does not parse -- a broken
        receive time leaves the book as good as it was, so it is unknown, not a reject."""
        spec = self.receive_time
        if spec is None:
            return None
        col = table.column(spec.column)
        if spec.unit == "iso":
            ts, nat = _iso_to_ns(col, spec.tz)
            return np.where(nat, -1, ts).astype(np.int64)
        ints = _to_int(col)
        if ints is not None:
            return ints * _UNIT_NS[spec.unit]
        vals = pc.cast(col, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
        ok = np.isfinite(vals)
        return np.where(ok, _number_to_ns(np.where(ok, vals, 0.0), spec.unit), -1).astype(np.int64)

    def _check_plausible(self, vals: np.ndarray, path: str) -> None:
        """Most epoch times outside 1990..2100 mean the configured unit is wrong: say which fits."""
        if self.timestamp.origin != "epoch":
            return
        ok = np.isfinite(vals)
        if not ok.any():
            return
        ns = vals[ok] * _UNIT_NS[self.timestamp.unit]
        if ((ns >= TS_MIN_NS) & (ns <= TS_MAX_NS)).mean() >= 0.5:
            return
        v = float(np.median(vals[ok]))
        guess = [u for u, f in _UNIT_NS.items() if TS_MIN_NS <= v * f <= TS_MAX_NS]
        v_ns = v * _UNIT_NS[self.timestamp.unit]
        as_date = pd.Timestamp(int(v_ns)) if abs(v_ns) < 9e18 else "beyond the year 2262"
        raise UserError(
            f"timestamps are implausible for unit {self.timestamp.unit!r}: a typical value {v:.6g} would be {as_date}",
            where=f"{path}, column {self.timestamp.column!r} (data.mapping.timestamp.unit)",
            fix=(f"The values look like unit {guess[0]!r}: set data.mapping.timestamp.unit={guess[0]}"
                 if guess else "Check which column holds the time and its unit (s, ms, us, ns, iso)."),
        )


def _sort_side(mats: dict[str, np.ndarray], side: str, descending: bool) -> None:
    px = mats[f"{side}_price"]
    key = np.where(np.isnan(px), np.inf, -px if descending else px)
    order = np.argsort(key, axis=1, kind="stable")
    mats[f"{side}_price"] = np.take_along_axis(px, order, axis=1)
    mats[f"{side}_size"] = np.take_along_axis(mats[f"{side}_size"], order, axis=1)


def _to_float(col: pa.ChunkedArray | pa.Array, name: str, bad: np.ndarray, detail: dict[int, str]) -> np.ndarray:
    """Column to float64; text that is not a number marks its row unparseable (empty -> NaN)."""
    t = col.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
    if pa.types.is_dictionary(t):
        col = col.cast(pa.string())
    s = pd.Series(np.asarray(col.to_numpy(zero_copy_only=False), dtype=object))
    stripped = s.str.strip().str.strip("\"'")
    out = pd.to_numeric(stripped, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    nonnum = np.isnan(out) & stripped.fillna("").ne("").to_numpy() & ~stripped.str.lower().isin(["nan"]).to_numpy()
    for i in np.flatnonzero(nonnum & ~bad)[:1000]:
        detail.setdefault(int(i), f"{name}: not a number: {str(s.iloc[i])[:40]!r}")
    bad |= nonnum
    return out


def _to_int(col: pa.ChunkedArray | pa.Array) -> np.ndarray | None:
    """Integer column (or text of integers) -> int64 without a float detour; None if not integers."""
    t = col.type
    if pa.types.is_integer(t) and col.null_count == 0:
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            arr = pc.cast(pc.utf8_trim(col, _STRIP), pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.int64) if arr.null_count == 0 else None
    return None


def _nested_matrix(table: pa.Table, base: str, idx: str | None, fld: str | None, levels: int) -> np.ndarray:
    """``bids: list<list<double>>`` or ``list<struct>`` -> (n, levels) matrix of one inner item.

    Ragged rows (fewer levels) are scattered with NumPy (row = repeat(arange(n), lengths)), so
    there is no per-row Python loop.
    """
    col = table.column(base).combine_chunks()
    n = len(col)
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy()
    inner = pc.list_flatten(col)
    values = pc.list_element(inner, int(idx)) if idx is not None else pc.struct_field(inner, fld)
    vals = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    out = np.full((n, levels), np.nan)
    rows = np.repeat(np.arange(n), lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(len(vals)) - starts
    keep = pos < levels
    out[rows[keep], pos[keep]] = vals[keep]
    return out


def _iso_to_ns(col: pa.ChunkedArray, tz: str) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_timestamp(col.type):
        arr = col.cast(pa.timestamp("ns", tz=col.type.tz))
        nat = np.array(pc.is_null(arr), dtype=bool)
        ns = np.asarray(pc.fill_null(arr.cast(pa.int64()), 0))
        if col.type.tz is None and tz != "UTC":
            ns = pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize(tz).asi8
        return ns.astype(np.int64), nat
    s = pd.Series(np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object))
    dt = pd.to_datetime(s.str.strip().str.strip("\"'"), errors="coerce", format="ISO8601", utc=False)
    nat = dt.isna().to_numpy()
    if getattr(dt.dt, "tz", None) is None:
        dt = dt.dt.tz_localize(tz)
    ns = dt.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.where(nat, 0, ns), nat


def _number_to_ns(vals: np.ndarray, unit: str) -> np.ndarray:
    """Split into whole units and fraction so epoch seconds keep sub-microsecond precision."""
    f = _UNIT_NS[unit]
    whole = np.floor(vals)
    return whole.astype(np.int64) * f + np.rint((vals - whole) * f).astype(np.int64)


def _midnight_ns(spec: TimestampSpec, path: str, n: int) -> int:
    date = spec.date
    if date is None and spec.date_from_path:
        m = re.search(spec.date_from_path, Path(path).name)
        if m is None:
            raise UserError(f"no date in file name {Path(path).name!r} matching {spec.date_from_path!r}",
                            where="data.mapping.timestamp.date_from_path",
                            fix="Set data.mapping.timestamp.date=YYYY-MM-DD or fix the regex.")
        date = m.group(1)
    if date is None:
        raise UserError("times are seconds after midnight but no date is given",
                        where="data.mapping.timestamp",
                        fix="Set data.mapping.timestamp.date=YYYY-MM-DD or date_from_path: '<regex>'.")
    return int(pd.Timestamp(date).value)


_SIDE_WORDS = {"bid": {"bid", "bids", "b", "buy"}, "ask": {"ask", "asks", "a", "sell", "offer", "offers", "o"}}
_FIELD_WORDS = {"price": {"price", "px", "p", "prc", "rate"},
                "size": {"size", "qty", "sz", "vol", "volume", "v", "amount", "s", "quantity", "q"}}


def _guess_pattern(canonical: str, found: list[str]) -> str | None:
    """Guess the pattern of a canonical field among a file's columns.

    Names are split into word and number tokens; a level-1 column scores for a side word
    (bid/b/buy...) and a field word (price/px/p...), compact names like ``bp1``/``av1`` by their
    letters. The best column has its ``1`` replaced by ``{i}``.
    """
    side, kind = canonical.split("_")
    best, best_score = None, 0
    for col in found:
        tokens = re.findall(r"[a-z]+|\d+", col.lower())
        if "1" not in tokens:
            continue
        words = set(tokens)
        score = 2 * bool(words & _SIDE_WORDS[side]) + 2 * bool(words & _FIELD_WORDS[kind])
        letters = "".join(t for t in tokens if not t.isdigit())
        if score < 4 and 1 <= len(letters) <= 3:
            compact = (letters[0] == side[0]) + (letters[1:] in _FIELD_WORDS[kind])
            if letters == side[0] and kind == "price":  # "b1" alone = bid price (BitMEX)
                compact = 2
            score = max(score, 2 * compact)
        if score > best_score:
            best, best_score = col, score
    if best is None or best_score < 4:
        return None
    m = re.search(r"(?<!\d)1(?!\d)", best)
    return best[: m.start()] + "{i}" + best[m.end():] if m else None
