"""Named state of the event loop: structured dtypes for orders, fills, the account, the engine's
parameters and the plug-in interfaces (strategies, queue models, order types).

Why structured dtypes (hftbacktest's ``types.py`` is the model): the loop stays one compiled pass over
typed arrays -- no per-order Python objects -- while every value has a name (``orders[o].queue``,
``acct.cash``), so a rule reads like its documentation and a new field cannot shift another's index.
A record passed to a compiled function is a *view*: writing ``acct.pos`` writes the array.

Enumerations (order status, order kind, contract type, block reason) are small named integers.

Plug-ins are compiled functions with fixed signatures (``*_SIG`` below), passed to the engine as
first-class functions: the engine is compiled (and cached on disk) once per signature, not once per
plug-in, and a strategy defined anywhere -- a test included -- runs without an edit to the engine.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types

# ---- enumerations
ST_PENDING, ST_RESTING, ST_FILLED, ST_CANCELLED = 0, 1, 2, 3
MARKET, LIMIT = 0, 1  # order kinds: immediate-or-cancel after walking the book / rests after crossing
LINEAR, INVERSE, QUANTO = 0, 1, 2  # contract types (backtest.instruments)
INTENT_TARGET, INTENT_QUOTE = 0, 1  # strategy intents: hold a position / post one passive quote
NO_SIGNAL = -1  # a strategy's return value when it had nothing to decide on (counted as no_signal)

# which rule produced a fill (the ``fill_rule`` column): a trade print at or through our resting price; the
# book moving through our resting price with no print (``book_through_fills``); our order taking displayed
# liquidity when it arrived (a crossing limit order or a market order)
RULE_PRINT, RULE_BOOK_THROUGH, RULE_TAKER = 0, 1, 2
FILL_RULES = ("print", "book_through", "taker")

# risk-block reasons: counted once per blocked order intent; no_signal once per decision without a signal
BLOCK_REASONS = ("spread", "depth", "stale_book", "crossed_book", "order_rate", "max_position", "max_notional",
                 "kill_switch", "no_signal", "size_below_lot")
B_SPREAD, B_DEPTH, B_STALE, B_CROSSED, B_RATE, B_MAXPOS, B_MAXNOTIONAL, B_KILLED, B_NOSIGNAL, B_BELOW_LOT = \
    range(len(BLOCK_REASONS))

# ---- state
ORDER = np.dtype([
    ("side", "f8"),         # +1 buy, -1 sell
    ("qty", "f8"),
    ("rem", "f8"),          # remaining quantity
    ("price", "f8"),        # limit price (0 for a market order)
    ("kind", "i8"),         # MARKET | LIMIT
    ("status", "i8"),       # ST_*
    ("submit_ts", "f8"),    # ns offsets from the first snapshot (see engine.simulate)
    ("active_ts", "f8"),    # submit + entry latency: the instant it reaches the venue's book
    ("cancel_ts", "f8"),    # inf, or request + cancel latency (lands at max(cancel_ts, active_ts): never
                            # before the order it cancels)
    ("queue", "f8"),        # quantity displayed ahead of us at our price
    ("level_size", "f8"),   # displayed size at our price on the last snapshot
    ("level_idx", "i8"),    # where that snapshot showed our price (0-based level; -1: not shown)
    ("print_fill", "f8"),   # scratch: this order's share of the print being matched (engine.on_trade)
    ("traded", "f8"),       # printed at our price since the last snapshot (not to be counted again as cancels)
    ("kill", "i8"),         # 1 = a kill-switch flatten order
], align=True)

FILL = np.dtype([
    ("ts", "f8"), ("order", "i8"), ("side", "f8"), ("qty", "f8"), ("price", "f8"),
    ("fee", "f8"),          # settlement currency, bps of the notional qty |v(price)|
    ("maker", "i8"), ("mid", "f8"),
    ("level", "i8"),        # book level walked (1-based); 0 for a resting (maker) fill
    ("rule", "i8"),         # RULE_PRINT | RULE_BOOK_THROUGH | RULE_TAKER
], align=True)

ACCOUNT = np.dtype([
    ("pos", "f8"), ("cash", "f8"),   # contracts; settlement currency
    ("funding", "f8"),               # funding received (+) or paid (-) so far, settlement currency (in cash)
    ("book_ts", "f8"),               # time of the book the orders meet now (the last snapshot); -inf: none yet
    ("book_ok", "i8"),               # 1 = that book is usable (seen and not crossed): orders can arrive
    ("book_row", "i8"),              # that book's snapshot in the engine's book array (engine.BOOK)
    ("fp_dirty", "i8"),              # 1 = our footprint (new_footprint) holds something to clear at the next book
    ("next_ev", "f8"),               # no event of ours before this time (a lower bound: engine._advance skips
                                     # its scan until then)
    ("first_live", "i8"),            # orders before it are all done (the loops start there)
    ("next_decision_ts", "f8"),
    ("prev_ts", "f8"), ("prev_eq", "f8"), ("prev_mid", "f8"),
    ("day_offset", "f8"),            # first ts modulo one day: offsets -> UTC days
    ("n_orders", "i8"), ("n_fills", "i8"), ("n_cancels", "i8"), ("ioc_unfilled", "i8"),
    ("rounded_orders", "i8"),        # orders sent smaller than asked because sizes go down to whole lots
    ("rounded_qty", "f8"),           # what that rounding cut off, contracts in all
    ("overflow", "i8"),              # 1 = the order or fill table was too small (the run is refused)
], align=True)

EXEC = np.dtype([
    ("latency_ns", "f8"), ("cancel_latency_ns", "f8"),
    ("latency_jitter", "f8"),        # sigma of a lognormal factor on each latency
    ("maker_bps", "f8"), ("taker_bps", "f8"),
    ("tick", "f8"), ("lot", "f8"),
    ("book_through", "i8"),          # 1 = the book moving through a resting price fills it (no print needed)
    ("contract", "i8"), ("mult", "f8"),
], align=True)

# ---- plug-in interfaces
STRATEGY = np.dtype([("decision_ns", "f8"), ("base_size", "f8"), ("threshold", "f8")], align=True)
DECISION = np.dtype([
    ("t", "f8"), ("signal", "f8"),
    ("bid", "f8"), ("ask", "f8"), ("bid_size", "f8"), ("ask_size", "f8"), ("mid", "f8"),
    ("pos", "f8"), ("working", "f8"),  # position; signed remaining quantity of live orders
    ("lot", "f8"), ("tick", "f8"),
], align=True)
INTENT = np.dtype([
    ("kind", "i8"),         # INTENT_TARGET: hold `qty` (signed position, before risk sizing); INTENT_QUOTE
    ("side", "f8"), ("qty", "f8"), ("price", "f8"),  # a quote: side, size, limit price
], align=True)
QUEUE = np.dtype([("front_prob", "f8"), ("power", "f8")], align=True)

ORDER_T, FILL_T, ACCOUNT_T, EXEC_T = (nb.from_dtype(d) for d in (ORDER, FILL, ACCOUNT, EXEC))
STRATEGY_T, DECISION_T, INTENT_T, QUEUE_T = (nb.from_dtype(d) for d in (STRATEGY, DECISION, INTENT, QUEUE))

# strategy(decision, params, intents out) -> number of intents written, or NO_SIGNAL
STRATEGY_SIG = types.int64(DECISION_T, STRATEGY_T, INTENT_T[::1])
# queue(queue ahead, level size before, level size now, printed at our price since, params) -> queue ahead
QUEUE_SIG = types.float64(types.float64, types.float64, types.float64, types.float64, QUEUE_T)
# order type(side, best bid, best ask, tick) -> (limit price, MARKET | LIMIT) for a position change
ORDER_TYPE_SIG = types.Tuple((types.float64, types.int64))(types.float64, types.float64, types.float64,
                                                           types.float64)
STRATEGY_FN = types.FunctionType(STRATEGY_SIG)
QUEUE_FN = types.FunctionType(QUEUE_SIG)
ORDER_TYPE_FN = types.FunctionType(ORDER_TYPE_SIG)


def new_account(day_offset: float = 0.0) -> np.ndarray:
    """A fresh one-record account (``acct = A[0]`` in compiled code)."""
    a = np.zeros(1, ACCOUNT)
    a["next_decision_ts"] = -1.0
    a["prev_ts"] = np.nan
    a["prev_mid"] = np.nan
    a["day_offset"] = day_offset
    a["book_ts"] = -np.inf
    a["next_ev"] = np.inf
    return a


def new_footprint(levels: int) -> np.ndarray:
    """Our footprint on the last snapshot: rows bid / ask taken -- what our own orders took from each level
    since that snapshot (``FP`` in compiled code): it is gone for our other orders until the next one."""
    return np.zeros((2, levels))
