"""The event loop: snapshots and trades merged in time, orders with latency, fills against the
recorded book, the risk manager inline. One Numba function over typed arrays.

Fill rules (``conf/execution``):

* an order decided on snapshot i is activated on the first snapshot j > i with ts_j >= ts_i + latency:
  **never on the snapshot it was decided on**, whatever the latency;
* a market order walks the visible levels of the activation snapshot, each level filling at most its
  displayed size at its own price (volume-weighted overall); what the book cannot absorb is cancelled
  (immediate-or-cancel) and counted;
* a limit order that crosses the book on activation takes liquidity like a market order up to its
  price; the rest rests with ``queue ahead`` = the displayed size at its price (0 if it makes a new
  level). Queue rules, each a named choice:

  - *prints*: a trade at our price shrinks the queue ahead by its size; the excess over the queue
    fills us (maker); a trade through our price fills the rest;
  - *cancellations* (``queue_model=size_decrease``): a decrease of the displayed size at our price
    that the prints since the last snapshot do not explain is cancellations, each unit ahead of us
    with probability ``queue_front_prob`` -- a print is never counted twice (once as a trade, once as
    the size drop it causes); ``queue_model=trades``: cancellations never move us;
  - *cap*: the queue ahead is never more than the displayed size at our price (a level cancelled down
    to 2 has at most 2 ahead of us); a level that vanished from a better-priced book leaves us first;
  - *book through* (``book_through_fills``, default only when no trades are loaded): the best
    opposite price reaching ours, or our side's best moving past ours, fills the rest at our price;
* a cancel takes effect ``cancel_latency`` later: the order can still fill until then.
* fees: maker / taker bps of the notional in settlement currency; prices on the tick grid,
  quantities on the lot grid.

Accounting (``backtest.instruments``): in the instrument's settlement currency, with v(p) = m p
(linear, quanto) or -m / p (inverse): cash -= side * qty * v(price) + fee, equity = cash +
position * v(mid) (marked to mid at every snapshot). Money limits are compared after conversion
with the per-snapshot ``fx`` (settlement -> limit currency).

Kill switch: on a daily-loss or drawdown breach, cancel everything and send an immediate-or-cancel
order to flatten -- again on every later snapshot while a position is left (``C_FLATTEN`` counts the
attempts) -- and take no other decision.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from l2exp.backtest.layout import (
    B_BELOW_LOT,
    B_CROSSED,
    B_DEPTH,
    B_KILLED,
    B_MAXNOTIONAL,
    B_MAXPOS,
    B_NOSIGNAL,
    B_RATE,
    B_SPREAD,
    B_STALE,
    C_CANCELS,
    C_FILLS,
    C_FLATTEN,
    C_IOC_UNFILLED,
    C_KILL_TS,
    C_KILLED,
    C_ORDERS,
    C_OVERFLOW,
    F_FEE,
    F_LEVEL,
    F_MAKER,
    F_MID,
    F_ORDER,
    F_PRICE,
    F_QTY,
    F_SIDE,
    F_TS,
    INVERSE,
    LIMIT,
    MARKET,
    O_ACTIVE_TS,
    O_CANCEL_TS,
    O_KILL,
    O_LEVEL_SIZE,
    O_PRICE,
    O_QTY,
    O_QUEUE,
    O_REM,
    O_SIDE,
    O_STATUS,
    O_SUBMIT_IDX,
    O_SUBMIT_TS,
    O_TRADED,
    O_TYPE,
    ST_CANCELLED,
    ST_FILLED,
    ST_PENDING,
    ST_RESTING,
)
from l2exp.backtest.params import P

LAT, CLAT, JIT, MAKER, TAKER, TICK, LOT = (P[k] for k in ("latency_ns", "cancel_latency_ns", "latency_jitter",
                                                           "maker_bps", "taker_bps", "tick", "lot"))
QMODEL, FRONT, OTYPE, STRAT, THR, DEC, BASE = (P[k] for k in ("queue_model", "front_prob", "order_type", "strategy",
                                                               "threshold", "decision_ns", "base_size"))
RISK, TVOL, VTAU, VFLOOR, MAXPOS, MAXNOT, MAXDAY, MAXDD, MAXSPR, MINDEP, MAXRATE, STALE, SEED = (
    P[k] for k in ("risk_enabled", "target_vol_bps", "vol_tau_ns", "vol_floor_bps", "max_position", "max_notional",
                   "max_daily_loss", "max_drawdown", "max_spread_bps", "min_depth", "max_orders_per_s", "stale_ns",
                   "seed"))
CONTRACT, MULT, BOOKTHRU, LIM_QUOTE = (P[k] for k in ("contract", "mult", "book_through", "limits_in_quote"))


@nb.njit(cache=True)
def value(p: np.ndarray, px: float) -> float:
    """v(px): settlement-currency value of one contract (backtest.instruments)."""
    if p[CONTRACT] == INVERSE:
        return -p[MULT] / px
    return p[MULT] * px


@nb.njit(cache=True)
def seed_rng(seed: int) -> None:
    """Seed the compiled code's own generator (NumPy's seed does not reach it): latency jitter is then
    the same in every run, backtest or paper broker."""
    np.random.seed(seed)


@nb.njit(cache=True)
def _latency(base: float, jitter: float) -> float:
    if jitter <= 0.0:
        return base
    return base * np.exp(jitter * np.random.normal() - 0.5 * jitter * jitter)


@nb.njit(cache=True)
def _fill(fills: np.ndarray, counters: np.ndarray, t: float, oid: int, side: float, qty: float, px: float,
          fee_bps: float, maker: float, mid: float, level: int, p: np.ndarray) -> float:
    """Record a fill; returns the fee paid (settlement currency, bps of the notional qty |v(px)|)."""
    k = int(counters[C_FILLS])
    fee = qty * abs(value(p, px)) * fee_bps * 1e-4
    if k < fills.shape[0]:
        fills[k, F_TS] = t
        fills[k, F_ORDER] = oid
        fills[k, F_SIDE] = side
        fills[k, F_QTY] = qty
        fills[k, F_PRICE] = px
        fills[k, F_FEE] = fee
        fills[k, F_MAKER] = maker
        fills[k, F_MID] = mid
        fills[k, F_LEVEL] = level
        counters[C_FILLS] = k + 1
    else:
        counters[C_OVERFLOW] = 1.0
    return fee


@nb.njit(cache=True)
def _walk(o: int, orders: np.ndarray, i: int, px_side: np.ndarray, sz_side: np.ndarray, limit: float, t: float,
          mid: float, p: np.ndarray, fills: np.ndarray, counters: np.ndarray) -> tuple[float, float, float]:
    """Take liquidity for order o from one side of snapshot i, level by level, up to ``limit``
    (inf/−inf for market). Returns (filled qty, signed cash change, fee)."""
    side = orders[o, O_SIDE]
    got = 0.0
    dcash = 0.0
    fees = 0.0
    for lv in range(px_side.shape[1]):
        rem = orders[o, O_REM]
        if rem <= 1e-12:
            break
        px = px_side[i, lv]
        sz = sz_side[i, lv]
        if px != px or sz != sz or sz <= 0:
            break
        if (side > 0 and px > limit) or (side < 0 and px < limit):
            break
        q = min(rem, sz)  # never more than the displayed size at this level
        fee = _fill(fills, counters, t, o, side, q, px, p[TAKER], 0.0, mid, lv + 1, p)
        orders[o, O_REM] = rem - q
        got += q
        dcash -= side * q * value(p, px) + fee
        fees += fee
    return got, dcash, fees


@nb.njit(cache=True)
def _level_size(px_side: np.ndarray, sz_side: np.ndarray, i: int, price: float, tick: float) -> float:
    for lv in range(px_side.shape[1]):
        if abs(px_side[i, lv] - price) < 0.25 * tick:
            return sz_side[i, lv]
    return -1.0


@nb.njit(cache=True)
def _submit(orders: np.ndarray, counters: np.ndarray, side: float, qty: float, price: float, otype: int, t: float,
            i: int, p: np.ndarray) -> int:
    k = int(counters[C_ORDERS])
    if k >= orders.shape[0]:
        counters[C_OVERFLOW] = 1.0
        return -1
    orders[k, O_SIDE] = side
    orders[k, O_QTY] = qty
    orders[k, O_REM] = qty
    orders[k, O_PRICE] = price
    orders[k, O_TYPE] = otype
    orders[k, O_STATUS] = ST_PENDING
    orders[k, O_SUBMIT_TS] = t
    orders[k, O_ACTIVE_TS] = t + _latency(p[LAT], p[JIT])
    orders[k, O_CANCEL_TS] = np.inf
    orders[k, O_QUEUE] = 0.0
    orders[k, O_LEVEL_SIZE] = 0.0
    orders[k, O_SUBMIT_IDX] = i
    orders[k, O_TRADED] = 0.0
    orders[k, O_KILL] = 0.0
    counters[C_ORDERS] = k + 1
    return k


# loop state carried between events (so the live paper broker can resume it one event at a time)
S_POS, S_CASH, S_FIRST_LIVE, S_NEXT_DEC, S_VOLVAR, S_PREV_MICRO, S_DAY, S_DAY_EQ, S_PEAK, S_KILLED, S_PREV_TS, \
    S_PREV_EQ, S_PREV_MID, S_DAY_OFFSET, S_SEQ, S_TOB_TS, S_TOB0, S_TOB1, S_TOB2, S_TOB3, S_VOL_TS = range(21)
N_STATE = 21


def new_state(day_offset: float = 0.0) -> np.ndarray:
    st = np.zeros(N_STATE)
    st[S_NEXT_DEC] = -1.0
    st[S_VOLVAR] = -1.0
    st[S_PREV_MICRO] = np.nan
    st[S_DAY] = -1.0
    st[S_PREV_TS] = np.nan
    st[S_PREV_MID] = np.nan
    st[S_DAY_OFFSET] = day_offset
    st[S_TOB_TS] = np.nan
    st[S_TOB0] = np.nan
    st[S_VOL_TS] = np.nan
    return st


@nb.njit(cache=True)
def on_trade(tt: float, px_t: float, sz_t: float, side_t: float, p: np.ndarray, orders: np.ndarray,
             fills: np.ndarray, counters: np.ndarray, S: np.ndarray) -> None:
    """A trade print: queue progress of resting orders at its price, fills by excess or trade-through."""
    tick = p[TICK]
    for o in range(int(S[S_FIRST_LIVE]), int(counters[C_ORDERS])):
        if orders[o, O_STATUS] != ST_RESTING or orders[o, O_CANCEL_TS] <= tt:
            continue
        side = orders[o, O_SIDE]
        price = orders[o, O_PRICE]
        hit = (side > 0 and side_t < 0 and px_t <= price + 1e-12) or (side < 0 and side_t > 0 and px_t >= price - 1e-12)
        if not hit:
            continue
        rem = orders[o, O_REM]
        through = (side > 0 and px_t < price - 0.25 * tick) or (side < 0 and px_t > price + 0.25 * tick)
        if through:
            q = rem
        else:
            orders[o, O_TRADED] += sz_t  # the next snapshot's size drop from this print is not a cancel
            orders[o, O_QUEUE] -= sz_t
            q = min(rem, -orders[o, O_QUEUE]) if orders[o, O_QUEUE] < 0 else 0.0
            if orders[o, O_QUEUE] < 0:
                orders[o, O_QUEUE] = 0.0
        if q > 0:
            fee = _fill(fills, counters, tt, o, side, q, price, p[MAKER], 1.0, S[S_PREV_MID], 0, p)
            S[S_POS] += side * q
            S[S_CASH] -= side * q * value(p, price) + fee
            orders[o, O_REM] = rem - q
            if orders[o, O_REM] <= 1e-12:
                orders[o, O_STATUS] = ST_FILLED


@nb.njit(cache=True)
def _rest(o: int, orders: np.ndarray, row: int, px_side: np.ndarray, sz_side: np.ndarray, best_same: float,
          p: np.ndarray) -> None:
    """Queue bookkeeping of a resting order at a new snapshot (see the module docstring's rules)."""
    side = orders[o, O_SIDE]
    price = orders[o, O_PRICE]
    lvl = _level_size(px_side, sz_side, row, price, p[TICK])
    if lvl >= 0:
        drop = orders[o, O_LEVEL_SIZE] - lvl
        cancels = drop - orders[o, O_TRADED]  # what the prints since the last snapshot do not explain
        if cancels > 0 and p[QMODEL] > 0.5:
            orders[o, O_QUEUE] = max(orders[o, O_QUEUE] - cancels * p[FRONT], 0.0)
        orders[o, O_QUEUE] = min(orders[o, O_QUEUE], lvl)  # never more ahead of us than is displayed
        orders[o, O_LEVEL_SIZE] = lvl
    elif (side > 0 and price > best_same + 1e-12) or (side < 0 and price < best_same - 1e-12):
        orders[o, O_QUEUE] = 0.0  # our price is better than every displayed one: nobody ahead
        orders[o, O_LEVEL_SIZE] = 0.0
    orders[o, O_TRADED] = 0.0


@nb.njit(cache=True)
def _working(orders: np.ndarray, counters: np.ndarray, first: int) -> tuple[float, bool]:
    """(signed remaining quantity of live orders not being cancelled, whether a flatten order is live)."""
    working = 0.0
    flatten = False
    for o in range(first, int(counters[C_ORDERS])):
        live = orders[o, O_STATUS] == ST_PENDING or orders[o, O_STATUS] == ST_RESTING
        if live and orders[o, O_CANCEL_TS] == np.inf:
            working += orders[o, O_SIDE] * orders[o, O_REM]
            if orders[o, O_KILL] > 0.5:
                flatten = True
    return working, flatten


@nb.njit(cache=True)
def on_snapshot(t: float, row: int, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, sig: float,
                fx: float, p: np.ndarray, orders: np.ndarray, fills: np.ndarray, blocks: np.ndarray,
                counters: np.ndarray, S: np.ndarray) -> float:
    """One book snapshot (row ``row`` of the matrices): cancels, activations, resting fills, risk state,
    then a decision. ``fx``: settlement -> limit currency at this snapshot. Returns the equity
    (settlement currency) marked to this snapshot's mid."""
    i = int(S[S_SEQ])  # global snapshot number: orders decided on snapshot i fill from i + 1 on
    tick = p[TICK]
    lot = p[LOT]
    risk = p[RISK] > 0.5
    pos = S[S_POS]
    csh = S[S_CASH]
    b1 = bp[row, 0]
    a1 = ap[row, 0]
    mid = 0.5 * (a1 + b1)
    crossed = not (b1 < a1)
    for o in range(int(S[S_FIRST_LIVE]), int(counters[C_ORDERS])):
        st = orders[o, O_STATUS]
        if st in (ST_FILLED, ST_CANCELLED):
            continue
        if orders[o, O_CANCEL_TS] <= t:
            orders[o, O_STATUS] = ST_CANCELLED
            counters[C_CANCELS] += 1
            continue
        side = orders[o, O_SIDE]
        if st == ST_PENDING:
            if orders[o, O_SUBMIT_IDX] >= i or orders[o, O_ACTIVE_TS] > t or crossed:
                continue
            lim = (np.inf if side > 0 else -np.inf) if orders[o, O_TYPE] == MARKET else orders[o, O_PRICE]
            got, dc, _ = _walk(o, orders, row, ap if side > 0 else bp, as_ if side > 0 else bs, lim, t, mid, p,
                               fills, counters)
            pos += side * got
            csh += dc
            if orders[o, O_REM] <= 1e-12:
                orders[o, O_STATUS] = ST_FILLED
            elif orders[o, O_TYPE] == MARKET:
                orders[o, O_STATUS] = ST_CANCELLED  # immediate-or-cancel remainder
                counters[C_IOC_UNFILLED] += 1
            else:
                orders[o, O_STATUS] = ST_RESTING
                lvl = _level_size(bp if side > 0 else ap, bs if side > 0 else as_, row, orders[o, O_PRICE], tick)
                orders[o, O_QUEUE] = max(lvl, 0.0)
                orders[o, O_LEVEL_SIZE] = max(lvl, 0.0)
                orders[o, O_TRADED] = 0.0
            continue
        price = orders[o, O_PRICE]
        if crossed:
            continue
        if p[BOOKTHRU] > 0.5:
            through = (side > 0 and (a1 <= price + 1e-12 or b1 < price - 0.25 * tick)) or \
                      (side < 0 and (b1 >= price - 1e-12 or a1 > price + 0.25 * tick))
            if through:
                q = orders[o, O_REM]
                fee = _fill(fills, counters, t, o, side, q, price, p[MAKER], 1.0, mid, 0, p)
                pos += side * q
                csh -= side * q * value(p, price) + fee
                orders[o, O_REM] = 0.0
                orders[o, O_STATUS] = ST_FILLED
                continue
        _rest(o, orders, row, bp if side > 0 else ap, bs if side > 0 else as_, b1 if side > 0 else a1, p)
    fl = int(S[S_FIRST_LIVE])
    while fl < int(counters[C_ORDERS]) and orders[fl, O_STATUS] in (ST_FILLED, ST_CANCELLED):
        fl += 1
    S[S_FIRST_LIVE] = fl
    # ---- risk state: L2 volatility in time units, daily P&L, drawdown
    if not crossed:
        micro = (a1 * bs[row, 0] + b1 * as_[row, 0]) / (bs[row, 0] + as_[row, 0])
        prev_micro = S[S_PREV_MICRO]
        if prev_micro != prev_micro:
            S[S_PREV_MICRO] = micro
            S[S_VOL_TS] = t
        elif t > S[S_VOL_TS]:  # repeated timestamps: the return accumulates until time moves
            dt = t - S[S_VOL_TS]
            r = np.log(micro / prev_micro) * 1e4
            rate = r * r / (dt * 1e-9)  # bps^2 per second
            w = 1.0 - np.exp(-dt / p[VTAU])  # time-weighted EWMA: the same for any sampling of the book
            S[S_VOLVAR] = rate if S[S_VOLVAR] < 0 else (1 - w) * S[S_VOLVAR] + w * rate
            S[S_PREV_MICRO] = micro
            S[S_VOL_TS] = t
    # frozen feed: the time the top of book (both best prices and sizes) last changed
    if not (b1 == S[S_TOB0] and a1 == S[S_TOB1] and bs[row, 0] == S[S_TOB2] and as_[row, 0] == S[S_TOB3]):
        S[S_TOB0], S[S_TOB1], S[S_TOB2], S[S_TOB3] = b1, a1, bs[row, 0], as_[row, 0]
        S[S_TOB_TS] = t
    eq = csh + pos * value(p, mid) if not crossed else S[S_PREV_EQ]
    d = float((t + S[S_DAY_OFFSET]) // 86_400_000_000_000)
    if d != S[S_DAY]:
        S[S_DAY] = d
        S[S_DAY_EQ] = eq
    S[S_PEAK] = max(S[S_PEAK], eq)
    killed = S[S_KILLED] > 0.5
    lim_fx = fx if p[LIM_QUOTE] > 0.5 else 1.0
    if risk and not killed and ((S[S_DAY_EQ] - eq) * lim_fx >= p[MAXDAY] or (S[S_PEAK] - eq) * lim_fx >= p[MAXDD]):
        killed = True
        S[S_KILLED] = 1.0
        counters[C_KILLED] = 1.0
        counters[C_KILL_TS] = t
        for o in range(int(S[S_FIRST_LIVE]), int(counters[C_ORDERS])):
            if orders[o, O_STATUS] == ST_PENDING or orders[o, O_STATUS] == ST_RESTING:
                orders[o, O_CANCEL_TS] = min(orders[o, O_CANCEL_TS], t + p[CLAT])
    if killed and abs(pos) >= lot * 0.5:  # flatten, again on every snapshot until flat
        _, flattening = _working(orders, counters, int(S[S_FIRST_LIVE]))
        if not flattening:
            k = _submit(orders, counters, -np.sign(pos), abs(pos), 0.0, MARKET, t, i, p)
            if k >= 0:
                orders[k, O_KILL] = 1.0
                counters[C_FLATTEN] += 1
    # ---- decision
    if t >= S[S_NEXT_DEC]:
        S[S_NEXT_DEC] = t + p[DEC]
        _decide(t, i, row, bp, bs, ap, as_, sig, mid, fx, crossed, killed, risk, pos, p, orders, blocks, counters, S)
    S[S_POS] = pos
    S[S_CASH] = csh
    S[S_PREV_TS] = t
    S[S_PREV_EQ] = eq
    S[S_PREV_MID] = mid if not crossed else S[S_PREV_MID]
    S[S_SEQ] = i + 1
    return eq


@nb.njit(cache=True)
def _cancel_working(orders: np.ndarray, counters: np.ndarray, first: int, t: float, p: np.ndarray) -> None:
    """Request cancellation of every pending or resting order (effective after the cancel latency)."""
    for o in range(first, int(counters[C_ORDERS])):
        if orders[o, O_STATUS] == ST_PENDING or orders[o, O_STATUS] == ST_RESTING:
            orders[o, O_CANCEL_TS] = min(orders[o, O_CANCEL_TS], t + _latency(p[CLAT], p[JIT]))


@nb.njit(cache=True)
def _gate(t: float, row: int, bs: np.ndarray, as_: np.ndarray, mid: float, b1: float, a1: float, crossed: bool,
          killed: bool, risk: bool, p: np.ndarray, orders: np.ndarray, counters: np.ndarray, S: np.ndarray) -> int:
    """The risk manager's gates, in order; returns the blocking reason or -1."""
    if killed:
        return B_KILLED
    if crossed:
        return B_CROSSED
    if not risk:
        return -1
    if (S[S_PREV_TS] == S[S_PREV_TS] and t - S[S_PREV_TS] > p[STALE]) or t - S[S_TOB_TS] > p[STALE]:
        return B_STALE  # a gap in the feed, or a frozen top of book
    if (a1 - b1) / mid * 1e4 > p[MAXSPR]:
        return B_SPREAD
    if min(bs[row, 0], as_[row, 0]) < p[MINDEP]:
        return B_DEPTH
    recent = 0
    for o in range(int(counters[C_ORDERS]) - 1, -1, -1):
        if orders[o, O_SUBMIT_TS] <= t - 1e9:
            break
        recent += 1
    if recent >= p[MAXRATE]:
        return B_RATE
    return -1


@nb.njit(cache=True)
def _decide(t: float, i: int, row: int, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, sig: float,
            mid: float, fx: float, crossed: bool, killed: bool, risk: bool, pos: float, p: np.ndarray,
            orders: np.ndarray, blocks: np.ndarray, counters: np.ndarray, S: np.ndarray) -> None:
    """The strategy's order intent (signal -> target -> orders, or quotes), then the risk gates.

    Blocks are counted per blocked order intent: a decision that would not send an order is not a
    block. ``size_below_lot``: the volatility-scaled size rounds to zero lots."""
    lot = p[LOT]
    b1 = bp[row, 0]
    a1 = ap[row, 0]
    first = int(S[S_FIRST_LIVE])
    if p[STRAT] < 0.5:
        if sig != sig:
            blocks[B_NOSIGNAL] += 1
            return
        direction = 0.0 if abs(sig) < p[THR] else np.sign(sig)
        size = p[BASE]
        vol_var = S[S_VOLVAR]
        if risk and vol_var >= 0:  # -1 until the first return; 0 = calm book -> floor
            size = p[BASE] * min(p[TVOL] / max(np.sqrt(vol_var), p[VFLOOR]), 2.0)
        lots = np.floor(size / lot + 1e-9)
        if direction != 0 and lots == 0:
            blocks[B_BELOW_LOT] += 1
        target = direction * lots * lot
        if risk and abs(target) > p[MAXPOS]:
            target = np.sign(target) * np.floor(p[MAXPOS] / lot + 1e-9) * lot
            blocks[B_MAXPOS] += 1
        notional = abs(target) * abs(value(p, mid)) * (fx if p[LIM_QUOTE] > 0.5 else 1.0)
        if risk and notional > p[MAXNOT]:
            per_lot = lot * abs(value(p, mid)) * (fx if p[LIM_QUOTE] > 0.5 else 1.0)
            target = np.sign(target) * np.floor(p[MAXNOT] / per_lot + 1e-9) * lot
            blocks[B_MAXNOTIONAL] += 1
        working, _ = _working(orders, counters, first)
        market = p[OTYPE] < 0.5
        diff = target - pos - working if market else target - pos
        if abs(diff) < lot * 0.5:
            if not market and abs(working) > 1e-12:
                _cancel_working(orders, counters, first, t, p)  # target reached: nothing may rest (not an intent)
            return  # no order intent: no block
        blocked = _gate(t, row, bs, as_, mid, b1, a1, crossed, killed, risk, p, orders, counters, S)
        if blocked >= 0:
            blocks[blocked] += 1
            return
        if market:  # market orders for the difference
            _submit(orders, counters, np.sign(diff), abs(diff), 0.0, MARKET, t, i, p)
        else:  # one passive order at the touch for the difference, re-priced each decision
            _cancel_working(orders, counters, first, t, p)
            _submit(orders, counters, np.sign(diff), abs(diff), b1 if diff > 0 else a1, LIMIT, t, i, p)
    else:  # quoting: cancel and repost a bid and an ask at the touch (two intents)
        blocked = _gate(t, row, bs, as_, mid, b1, a1, crossed, killed, risk, p, orders, counters, S)
        if blocked >= 0:
            blocks[blocked] += 2
            return
        _cancel_working(orders, counters, first, t, p)
        q = np.floor(p[BASE] / lot + 1e-9) * lot
        if q <= 0:
            blocks[B_BELOW_LOT] += 2
            return
        if not risk or pos + q <= p[MAXPOS] + 1e-9:
            _submit(orders, counters, 1.0, q, b1, LIMIT, t, i, p)
        else:
            blocks[B_MAXPOS] += 1
        if not risk or pos - q >= -p[MAXPOS] - 1e-9:
            _submit(orders, counters, -1.0, q, a1, LIMIT, t, i, p)
        else:
            blocks[B_MAXPOS] += 1


@nb.njit(cache=True)
def simulate(ts: np.ndarray, bp: np.ndarray, bs: np.ndarray, ap: np.ndarray, as_: np.ndarray, signal: np.ndarray,
             fx: np.ndarray, tr_ts: np.ndarray, tr_px: np.ndarray, tr_sz: np.ndarray, tr_side: np.ndarray,
             p: np.ndarray, S: np.ndarray, orders: np.ndarray, fills: np.ndarray, position: np.ndarray,
             cash: np.ndarray, equity: np.ndarray, blocks: np.ndarray, counters: np.ndarray) -> None:
    """The backtest: trades up to each snapshot's time first, then the snapshot.

    ``ts``/``tr_ts`` are float64 ns *offsets* from the first snapshot (exact to 1 ns for 104 days;
    absolute epoch ns in float64 would be 256 ns coarse); ``S`` = :func:`new_state` (day offset =
    first ts modulo one day); ``fx`` = settlement -> quote per snapshot.
    """
    np.random.seed(int(p[SEED]))
    j = 0
    nt = tr_ts.shape[0]
    for i in range(ts.shape[0]):
        while j < nt and tr_ts[j] <= ts[i]:
            on_trade(float(tr_ts[j]), tr_px[j], tr_sz[j], tr_side[j], p, orders, fills, counters, S)
            j += 1
        equity[i] = on_snapshot(float(ts[i]), i, bp, bs, ap, as_, signal[i], fx[i], p, orders, fills, blocks,
                                counters, S)
        position[i] = S[S_POS]
        cash[i] = S[S_CASH]
