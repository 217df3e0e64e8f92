"""The risk manager's parameters and state as named records (see ``l2exp.backtest.types`` for why
records): what the compiled gates, sizing and kill switch read and update on every snapshot."""

from __future__ import annotations

import numba as nb
import numpy as np

RISK = np.dtype([
    ("enabled", "i8"),           # 0 = every limit off (risk=none)
    ("limits_in_quote", "i8"),   # 1 = money limits in quote currency, 0 = in settlement currency
    ("unit_notional", "f8"),     # > 0: a strategy's size unit is this much money in the limits' currency
    ("target_vol_bps", "f8"), ("vol_tau_ns", "f8"), ("vol_floor_bps", "f8"), ("max_scale", "f8"),
    ("max_position", "f8"), ("max_notional", "f8"),
    ("max_daily_loss", "f8"), ("max_drawdown", "f8"),
    ("max_spread_bps", "f8"), ("min_depth", "f8"), ("max_orders_per_s", "f8"), ("stale_ns", "f8"),
], align=True)

RISK_STATE = np.dtype([
    ("vol_var", "f8"),           # EWMA of r^2/dt, bps^2 per second; -1 until the first return
    ("prev_micro", "f8"), ("vol_ts", "f8"),
    ("day", "f8"), ("day_eq", "f8"), ("peak", "f8"),  # UTC day number, equity at its start, equity peak
    ("day_lo", "f8"), ("day_hi", "f8"),  # that day's span in the loop's ns offsets (NaN: none yet)
    ("killed", "i8"), ("kill_ts", "f8"),
    ("flatten_attempts", "i8"),  # kill-switch flatten orders sent (one per snapshot until flat)
    ("tob_ts", "f8"),            # when the top of book (best prices and sizes) last changed
    ("tob_bid", "f8"), ("tob_ask", "f8"), ("tob_bid_size", "f8"), ("tob_ask_size", "f8"),
], align=True)

RISK_T = nb.from_dtype(RISK)
RISK_STATE_T = nb.from_dtype(RISK_STATE)


def new_risk_state() -> np.ndarray:
    r = np.zeros(1, RISK_STATE)
    r["vol_var"] = -1.0
    r["day"] = -1.0
    for k in ("day_lo", "day_hi", "prev_micro", "vol_ts", "tob_ts", "tob_bid", "tob_ask", "tob_bid_size",
              "tob_ask_size"):
        r[k] = np.nan
    return r
