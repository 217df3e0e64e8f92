"""Funding of perpetual swaps: when it is exchanged, at what rate, and what it pays.

A perpetual (BitMEX XBTUSD, Binance USD-M and COIN-M ``*_PERP``) exchanges funding between longs and
shorts at fixed times -- every 8 h at 04:00 / 12:00 / 20:00 UTC on BitMEX, 00:00 / 08:00 / 16:00 on
Binance. With ``rate`` the funding rate of that time (a fraction: 0.0001 = 1 bp), ``q`` the position in
contracts and ``p`` the mark (the mid of the last snapshot before the funding time):

    payment = -q * n(p) * rate        (settlement currency; n(p) = |v(p)|: m p linear / quanto, m / p inverse)

A **positive rate: longs pay shorts** (the venues' convention), so a long's cash falls by q n(p) rate.
Inverse: ``n(p) = m / p`` -- 1 000 XBTUSD contracts at 8 000 USD and 1 bp pay 1000 x 1/8000 x 1e-4 =
1.25e-5 XBT. The position is the one held *at* the funding time: the engine books funding before any
market event or order of that instant (``engine.simulate``), so a position flipped 1 ms before pays
with its new sign and one flipped at the instant pays with the old.

Sources (``data.instruments.<symbol>.funding``), one of:

* ``rate_bps``: one constant rate at every funding time -- for known-answer tests and what-ifs;
* ``path``: the venue's published funding history, CSV or Parquet (read by pyarrow), columns named by
  ``timestamp`` / ``rate`` (``symbol`` when the file holds several), times in ``timestamp_unit``. The
  file's own times are the funding times (the schedule is not used); the run's span must be covered.

``every_h`` / ``offset_h`` set the schedule of ``rate_bps`` (first funding of the UTC day at
``offset_h``). A perpetual (``perpetual: true``) without a source is not priced at zero: the run says
``funding: not modelled`` in yellow and in its summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l2exp.errors import UserError

HOUR_NS = 3_600_000_000_000
UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass
class Funding:
    rate_bps: float | None = None
    every_h: float = 8.0
    offset_h: float = 0.0
    path: str | None = None
    timestamp: str = "timestamp"
    rate: str = "rate"
    symbol: str | None = None
    timestamp_unit: str = "ms"

    def validate(self, where: str) -> None:
        if (self.rate_bps is None) == (self.path is None):
            raise UserError(f"{where}: give exactly one funding source, rate_bps (a constant) or path (the venue's "
                            "history)", where=where,
                            fix="funding: {rate_bps: 1.0, every_h: 8, offset_h: 4}   # BitMEX schedule, 1 bp\n"
                                "funding: {path: funding.csv, timestamp: fundingTime, rate: fundingRate}")
        if self.every_h <= 0 or not 0 <= self.offset_h < 24:
            raise UserError(f"{where}: every_h must be > 0 and offset_h in [0, 24), got {self.every_h}, "
                            f"{self.offset_h}", where=f"{where}.every_h")
        if self.timestamp_unit not in UNITS:
            raise UserError(f"{where}.timestamp_unit must be one of {list(UNITS)}, got {self.timestamp_unit!r}",
                            where=f"{where}.timestamp_unit")

    def events(self, start_ns: int, end_ns: int, symbol: str, where: str = "funding") -> tuple[np.ndarray, np.ndarray]:
        """(epoch ns, rate as a fraction) of every funding time in [start_ns, end_ns]."""
        if self.rate_bps is not None:
            every = int(round(self.every_h * HOUR_NS))
            off = int(round(self.offset_h * HOUR_NS))
            first = start_ns + (off - start_ns) % every
            ts = np.arange(first, end_ns + 1, every, dtype=np.int64)
            return ts, np.full(len(ts), float(self.rate_bps) * 1e-4)
        return self._from_file(start_ns, end_ns, symbol, where)

    def _from_file(self, start_ns: int, end_ns: int, symbol: str, where: str) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow.compute as pc

        path = Path(str(self.path)).expanduser()
        if not path.exists():
            raise UserError(f"funding history {path} does not exist", where=f"{where}.path",
                            fix="Download the venue's funding history (e.g. Binance /fapi/v1/fundingRate, BitMEX "
                                "/api/v1/funding) to that path, or use funding.rate_bps for a constant.")
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            from pyarrow import csv

            table = csv.read_csv(path)
        cols = [self.timestamp, self.rate] + ([self.symbol] if self.symbol else [])
        missing = [c for c in cols if c not in table.column_names]
        if missing:
            raise UserError(f"funding history {path} has no column(s) {missing}; it has {table.column_names}",
                            where=f"{where}.timestamp / rate / symbol")
        if self.symbol:
            table = table.filter(pc.equal(table[self.symbol].cast("string"), symbol))
        raw_ts = table[self.timestamp]
        if str(raw_ts.type).startswith("timestamp"):
            ts = raw_ts.cast("timestamp[ns]").cast("int64").to_numpy()
        else:
            ts = (raw_ts.cast("float64").to_numpy() * UNITS[self.timestamp_unit]).astype(np.int64)
        rate = table[self.rate].cast("float64").to_numpy()
        order = np.argsort(ts, kind="stable")
        ts, rate = ts[order], rate[order]
        bad = ~np.isfinite(rate)
        if bad.any():
            raise UserError(f"funding history {path}: {int(bad.sum())} rate(s) missing or not numbers (first at "
                            f"row {int(np.flatnonzero(bad)[0])})", where=f"{where}.rate")
        if not len(ts) or ts[0] > start_ns + int(round(self.every_h * HOUR_NS)) or ts[-1] < end_ns - int(
                round(self.every_h * HOUR_NS)):
            import pandas as pd

            span = "no rows" if not len(ts) else \
                f"{pd.Timestamp(int(ts[0]), tz='UTC')} .. {pd.Timestamp(int(ts[-1]), tz='UTC')}"
            raise UserError(f"funding history {path} ({span} for {symbol}) does not cover the run "
                            f"{pd.Timestamp(start_ns, tz='UTC')} .. {pd.Timestamp(end_ns, tz='UTC')}: funding in "
                            "the uncovered part would be silently zero", where=f"{where}.path",
                            fix="Extend the history to the run's span.")
        keep = (ts >= start_ns) & (ts <= end_ns)
        return ts[keep], rate[keep]


def funding_events(funding: Funding | None, start_ns: int, end_ns: int, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """The funding events of a run (none without a source)."""
    if funding is None:
        return np.zeros(0, np.int64), np.zeros(0)
    return funding.events(start_ns, end_ns, symbol, f"data.instruments.{symbol}.funding")
