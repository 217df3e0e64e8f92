"""The event loop: snapshots and trades merged in time, orders with latency, fills against the
recorded book, the risk manager (``l2exp.risk``) inline. Compiled functions over named records
(``backtest.types``); the strategy, the queue model and the order type are plug-ins passed in as
compiled functions (``backtest.strategies``, ``backtest.queue``, ``backtest.orders``).

Fill rules (``conf/execution``):

* an order decided on snapshot i is activated on the first snapshot j > i with ts_j >= ts_i + latency:
  **never on the snapshot it was decided on**, whatever the latency;
* a MARKET order walks the visible levels of the activation snapshot up to its price (none for
  ``market``), each level filling at most its displayed size at its own price; what the book cannot
  absorb is cancelled (immediate-or-cancel) and counted;
* a LIMIT order that crosses the book on activation takes liquidity like a market order up to its
  price; the rest rests with ``queue ahead`` = the displayed size at its price (0 if it makes a new
  level). Queue rules, each a named choice:

  - *prints* (:func:`on_trade`): a trade at our price shrinks the queue ahead by its size; the excess
    over the queue fills us (maker, in whole lots: queue estimates can be fractional, fills cannot);
    a trade through our price fills the rest;
  - *cancellations*: the queue model (``execution.queue_model``) moves the queue on a decrease of the
    displayed size that the prints since the last snapshot do not explain -- a print is never
    counted twice (once as a trade, once as the size drop it causes);
  - *cap*: the queue ahead is never more than the displayed size at our price (a level cancelled down
    to 2 has at most 2 ahead of us); a level that vanished from a better-priced book leaves us first;
  - *book through* (``book_through_fills``, default only when no trades are loaded): the best
    opposite price reaching ours, or our side's best moving past ours, fills the rest at our price;
* a cancel takes effect ``cancel_latency`` later: the order can still fill until then;
* fees: maker / taker bps of the notional in settlement currency; prices on the tick grid,
  quantities on the lot grid.

Accounting (``backtest.instruments``): in the instrument's settlement currency, with v(p) = m p
(linear, quanto) or -m / p (inverse): cash -= side * qty * v(price) + fee, equity = cash +
position * v(mid) (marked to mid at every snapshot). Money limits are compared after conversion
with the per-snapshot ``fx`` (settlement -> limit currency).

Decisions (every ``strategy.decision_ms``): the strategy writes intents; a target position is
volatility-sized (``risk.sizing``), put on the lot grid (``size_below_lot`` when it rounds to zero),
clamped (``risk.limits``), netted against the position (and working market orders), gated
(``risk.gates``) and sent as an order of ``execution.order_type``; quotes are gated, replace the
working orders and are checked against max_position one by one. Blocks count per blocked intent.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numba import types

from l2exp.backtest.types import (
    ACCOUNT_T,
    B_BELOW_LOT,
    B_MAXPOS,
    B_NOSIGNAL,
    DECISION_T,
    EXEC_T,
    FILL_T,
    INTENT_QUOTE,
    INTENT_T,
    INTENT_TARGET,
    INVERSE,
    LIMIT,
    MARKET,
    NO_SIGNAL,
    ORDER_T,
    ORDER_TYPE_FN,
    QUEUE_FN,
    QUEUE_T,
    ST_CANCELLED,
    ST_FILLED,
    ST_PENDING,
    ST_RESTING,
    STRATEGY_FN,
    STRATEGY_T,
)
from l2exp.risk.gates import gate, track_top_of_book
from l2exp.risk.kill_switch import breached
from l2exp.risk.limits import clamp_target, quote_allowed
from l2exp.risk.sizing import scale_target
from l2exp.risk.state import RISK_STATE_T, RISK_T
from l2exp.risk.volatility import update_volatility

F1 = types.float64[::1]
F2 = types.float64[:, ::1]
I1 = types.int64[::1]


@nb.njit(cache=True)
def value(ep, px: float) -> float:  # noqa: ANN001 - record
    """v(px): settlement-currency value of one contract (backtest.instruments)."""
    if ep.contract == INVERSE:
        return -ep.mult / px
    return ep.mult * px


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
def _fill(fills, acct, t: float, oid: int, side: float, qty: float, px: float, fee_bps: float,  # noqa: ANN001
          maker: int, mid: float, level: int, ep) -> float:
    """Record a fill; returns the fee paid (settlement currency, bps of the notional qty |v(px)|)."""
    k = acct.n_fills
    fee = qty * abs(value(ep, px)) * fee_bps * 1e-4
    if k < fills.shape[0]:
        f = fills[k]
        f.ts, f.order, f.side, f.qty, f.price = t, oid, side, qty, px
        f.fee, f.maker, f.mid, f.level = fee, maker, mid, level
        acct.n_fills = k + 1
    else:
        acct.overflow = 1
    return fee


@nb.njit(cache=True)
def _walk(o: int, orders, row: int, px_side, sz_side, t: float, mid: float, ep, fills, acct) -> float:  # noqa: ANN001
    """Take liquidity for order o from one side of snapshot ``row``, level by level, up to its price
    (a market order's is +-inf). Books position and cash; returns the quantity filled."""
    od = orders[o]
    side = od.side
    limit = od.price
    got = 0.0
    for lv in range(px_side.shape[1]):
        rem = od.rem
        if rem <= 1e-12:
            break
        px = px_side[row, lv]
        sz = sz_side[row, lv]
        if px != px or sz != sz or sz <= 0:
            break
        if (side > 0 and px > limit) or (side < 0 and px < limit):
            break
        q = min(rem, sz)  # never more than the displayed size at this level
        fee = _fill(fills, acct, t, o, side, q, px, ep.taker_bps, 0, mid, lv + 1, ep)
        od.rem = rem - q
        got += q
        acct.pos += side * q
        acct.cash -= side * q * value(ep, px) + fee
    return got


@nb.njit(cache=True)
def _level_size(px_side, sz_side, row: int, price: float, tick: float) -> float:  # noqa: ANN001
    for lv in range(px_side.shape[1]):
        if abs(px_side[row, lv] - price) < 0.25 * tick:
            return sz_side[row, lv]
    return -1.0


@nb.njit(cache=True)
def _submit(orders, acct, side: float, qty: float, price: float, kind: int, t: float, ep, kill: int) -> int:  # noqa: ANN001
    k = acct.n_orders
    if k >= orders.shape[0]:
        acct.overflow = 1
        return -1
    od = orders[k]
    od.side, od.qty, od.rem, od.price, od.kind, od.status = side, qty, qty, price, kind, ST_PENDING
    od.submit_ts = t
    od.active_ts = t + _latency(ep.latency_ns, ep.latency_jitter)
    od.cancel_ts = np.inf
    od.queue, od.level_size, od.traded = 0.0, 0.0, 0.0
    od.submit_seq = acct.seq
    od.kill = kill
    acct.n_orders = k + 1
    return k


@nb.njit(types.void(types.float64, types.float64, types.float64, types.float64, EXEC_T[::1], ORDER_T[::1],
                    FILL_T[::1], ACCOUNT_T[::1]), cache=True)
def on_trade(tt: float, px_t: float, sz_t: float, side_t: float, E, orders, fills, A) -> None:  # noqa: ANN001
    """A trade print: queue progress of resting orders at its price, fills by excess or trade-through."""
    ep = E[0]
    acct = A[0]
    tick = ep.tick
    for o in range(acct.first_live, acct.n_orders):
        od = orders[o]
        if od.status != ST_RESTING or od.cancel_ts <= tt:
            continue
        side = od.side
        price = od.price
        hit = (side > 0 and side_t < 0 and px_t <= price + 1e-12) or (side < 0 and side_t > 0 and px_t >= price - 1e-12)
        if not hit:
            continue
        rem = od.rem
        through = (side > 0 and px_t < price - 0.25 * tick) or (side < 0 and px_t > price + 0.25 * tick)
        if through:
            q = rem
        else:
            od.traded += sz_t  # the next snapshot's size drop from this print is not a cancel
            od.queue -= sz_t
            # the excess over the (estimated) queue fills us, in whole lots: a venue fills no fractions
            q = min(rem, np.floor(-od.queue / ep.lot + 1e-9) * ep.lot) if od.queue < 0 else 0.0
            if od.queue < 0:
                od.queue = 0.0
        if q > 0:
            fee = _fill(fills, acct, tt, o, side, q, price, ep.maker_bps, 1, acct.prev_mid, 0, ep)
            acct.pos += side * q
            acct.cash -= side * q * value(ep, price) + fee
            od.rem = rem - q
            if od.rem <= 1e-12:
                od.status = ST_FILLED


@nb.njit(cache=True)
def _rest(od, row: int, px_side, sz_side, best_same: float, tick: float, queue_model, qp) -> None:  # noqa: ANN001
    """Queue bookkeeping of a resting order at a new snapshot (see the module docstring's rules)."""
    lvl = _level_size(px_side, sz_side, row, od.price, tick)
    if lvl >= 0:
        od.queue = min(queue_model(od.queue, od.level_size, lvl, od.traded, qp), lvl)  # cap: displayed size
        od.level_size = lvl
    elif (od.side > 0 and od.price > best_same + 1e-12) or (od.side < 0 and od.price < best_same - 1e-12):
        od.queue = 0.0  # our price is better than every displayed one: nobody ahead
        od.level_size = 0.0
    od.traded = 0.0


@nb.njit(cache=True)
def _working(orders, acct) -> tuple[float, bool]:  # noqa: ANN001
    """(signed remaining quantity of live orders not being cancelled, whether a flatten order is live)."""
    working = 0.0
    flatten = False
    for o in range(acct.first_live, acct.n_orders):
        od = orders[o]
        if (od.status == ST_PENDING or od.status == ST_RESTING) and od.cancel_ts == np.inf:
            working += od.side * od.rem
            if od.kill == 1:
                flatten = True
    return working, flatten


@nb.njit(cache=True)
def _cancel_working(orders, acct, t: float, latency: float, jitter: float) -> None:  # noqa: ANN001
    """Request cancellation of every pending or resting order (effective after the cancel latency)."""
    for o in range(acct.first_live, acct.n_orders):
        od = orders[o]
        if od.status == ST_PENDING or od.status == ST_RESTING:
            od.cancel_ts = min(od.cancel_ts, t + _latency(latency, jitter))


@nb.njit(cache=True)
def _on_book(t: float, row: int, bp, bs, ap, as_, ep, queue_model, qp, orders, fills, acct, crossed: bool) -> None:  # noqa: ANN001
    """Cancels taking effect, activations (walk the book, then rest), resting orders' queues and
    book-through fills."""
    b1 = bp[row, 0]
    a1 = ap[row, 0]
    mid = 0.5 * (a1 + b1)
    tick = ep.tick
    i = acct.seq
    for o in range(acct.first_live, acct.n_orders):
        od = orders[o]
        st = od.status
        if st in (ST_FILLED, ST_CANCELLED):
            continue
        if od.cancel_ts <= t:
            od.status = ST_CANCELLED
            acct.n_cancels += 1
            continue
        side = od.side
        if st == ST_PENDING:
            if od.submit_seq >= i or od.active_ts > t or crossed:
                continue
            _walk(o, orders, row, ap if side > 0 else bp, as_ if side > 0 else bs, t, mid, ep, fills, acct)
            if od.rem <= 1e-12:
                od.status = ST_FILLED
            elif od.kind == MARKET:
                od.status = ST_CANCELLED  # immediate-or-cancel remainder
                acct.ioc_unfilled += 1
            else:
                od.status = ST_RESTING
                lvl = _level_size(bp if side > 0 else ap, bs if side > 0 else as_, row, od.price, tick)
                od.queue = max(lvl, 0.0)
                od.level_size = max(lvl, 0.0)
                od.traded = 0.0
            continue
        if crossed:
            continue
        price = od.price
        if ep.book_through == 1:
            through = (side > 0 and (a1 <= price + 1e-12 or b1 < price - 0.25 * tick)) or \
                      (side < 0 and (b1 >= price - 1e-12 or a1 > price + 0.25 * tick))
            if through:
                q = od.rem
                fee = _fill(fills, acct, t, o, side, q, price, ep.maker_bps, 1, mid, 0, ep)
                acct.pos += side * q
                acct.cash -= side * q * value(ep, price) + fee
                od.rem = 0.0
                od.status = ST_FILLED
                continue
        _rest(od, row, bp if side > 0 else ap, bs if side > 0 else as_, b1 if side > 0 else a1, tick, queue_model, qp)
    fl = acct.first_live
    while fl < acct.n_orders and (orders[fl].status == ST_FILLED or orders[fl].status == ST_CANCELLED):
        fl += 1
    acct.first_live = fl


@nb.njit(cache=True)
def _target(intent, t: float, dec, fx: float, crossed: bool, ep, rp, order_type, orders, blocks, acct, rs) -> None:  # noqa: ANN001
    """A target-position intent -> sized, clamped, netted, gated, one order of the order type."""
    lot = ep.lot
    tgt = scale_target(intent.qty, rs, rp)
    lots = np.floor(abs(tgt) / lot + 1e-9)
    if tgt != 0 and lots == 0:
        blocks[B_BELOW_LOT] += 1
    target = clamp_target(np.sign(tgt) * lots * lot, lot, abs(value(ep, dec.mid)), fx, rp, blocks)
    working = dec.working  # computed for the strategy this decision; nothing has moved the orders since
    _, kind = order_type(1.0, dec.bid, dec.ask, ep.tick)  # the kind says how to net, before the side is known
    diff = target - acct.pos - working if kind == MARKET else target - acct.pos
    if abs(diff) < lot * 0.5:
        if kind != MARKET and abs(working) > 1e-12:
            _cancel_working(orders, acct, t, ep.cancel_latency_ns, ep.latency_jitter)  # target reached: nothing rests
        return  # no order intent: no block
    blocked = gate(t, acct.prev_ts, rs, dec.bid, dec.ask, dec.bid_size, dec.ask_size, crossed, rp, orders,
                   acct.n_orders)
    if blocked >= 0:
        blocks[blocked] += 1
        return
    side = np.sign(diff)
    price, kind = order_type(side, dec.bid, dec.ask, ep.tick)
    if kind != MARKET:
        _cancel_working(orders, acct, t, ep.cancel_latency_ns, ep.latency_jitter)  # re-priced each decision
    _submit(orders, acct, side, abs(diff), price, kind, t, ep, 0)


@nb.njit(cache=True)
def _quotes(intents, n: int, t: float, dec, crossed: bool, ep, rp, orders, blocks, acct, rs) -> None:  # noqa: ANN001
    """Quote intents: gated together, replace the working orders, each checked against max_position."""
    n_quotes = 0
    for k in range(n):
        if intents[k].kind == INTENT_QUOTE:
            n_quotes += 1
    blocked = gate(t, acct.prev_ts, rs, dec.bid, dec.ask, dec.bid_size, dec.ask_size, crossed, rp, orders,
                   acct.n_orders)
    if blocked >= 0:
        blocks[blocked] += n_quotes
        return
    _cancel_working(orders, acct, t, ep.cancel_latency_ns, ep.latency_jitter)
    for k in range(n):
        q_in = intents[k]
        if q_in.kind != INTENT_QUOTE:
            continue
        q = np.floor(q_in.qty / ep.lot + 1e-9) * ep.lot
        if q <= 0:
            blocks[B_BELOW_LOT] += 1
        elif quote_allowed(acct.pos, q_in.side, q, rp):
            _submit(orders, acct, q_in.side, q, q_in.price, LIMIT, t, ep, 0)
        else:
            blocks[B_MAXPOS] += 1


@nb.njit(cache=True)
def _decide(t: float, row: int, bp, bs, ap, as_, sig: float, fx: float, crossed: bool, ep, rp, sp, strategy,  # noqa: ANN001
            order_type, orders, blocks, acct, rs, D, intents) -> None:
    """Ask the strategy, then apply its intents (a quote among them: the quotes; else the last target)."""
    dec = D[0]
    dec.t, dec.signal = t, sig
    dec.bid, dec.ask, dec.bid_size, dec.ask_size = bp[row, 0], ap[row, 0], bs[row, 0], as_[row, 0]
    dec.mid = 0.5 * (dec.bid + dec.ask)
    dec.pos = acct.pos
    dec.working, _ = _working(orders, acct)
    dec.lot, dec.tick = ep.lot, ep.tick
    n = strategy(dec, sp, intents)
    if n == NO_SIGNAL:
        blocks[B_NOSIGNAL] += 1
        return
    n = min(n, intents.shape[0])
    last_target = -1
    for k in range(n):
        if intents[k].kind == INTENT_QUOTE:
            _quotes(intents, n, t, dec, crossed, ep, rp, orders, blocks, acct, rs)
            return
        if intents[k].kind == INTENT_TARGET:
            last_target = k
    if last_target >= 0:
        _target(intents[last_target], t, dec, fx, crossed, ep, rp, order_type, orders, blocks, acct, rs)


@nb.njit(types.float64(types.float64, types.int64, F2, F2, F2, F2, types.float64, types.float64, EXEC_T[::1],
                       RISK_T[::1], STRATEGY_T[::1], QUEUE_T[::1], STRATEGY_FN, QUEUE_FN, ORDER_TYPE_FN, ORDER_T[::1],
                       FILL_T[::1], I1, ACCOUNT_T[::1], RISK_STATE_T[::1], DECISION_T[::1], INTENT_T[::1]), cache=True)
def on_snapshot(t: float, row: int, bp, bs, ap, as_, sig: float, fx: float, E, R, SP, QP, strategy, queue_model,  # noqa: ANN001
                order_type, orders, fills, blocks, A, RS, D, intents) -> float:
    """One book snapshot (row ``row`` of the matrices): cancels, activations, resting fills, risk state,
    kill switch, then a decision when one is due. ``fx``: settlement -> quote at this snapshot.
    Returns the equity (settlement currency) marked to this snapshot's mid."""
    ep, rp, acct, rs = E[0], R[0], A[0], RS[0]
    b1 = bp[row, 0]
    a1 = ap[row, 0]
    mid = 0.5 * (a1 + b1)
    crossed = not (b1 < a1)
    _on_book(t, row, bp, bs, ap, as_, ep, queue_model, QP[0], orders, fills, acct, crossed)
    if not crossed:
        update_volatility(rs, (a1 * bs[row, 0] + b1 * as_[row, 0]) / (bs[row, 0] + as_[row, 0]), t, rp)
    track_top_of_book(rs, t, b1, a1, bs[row, 0], as_[row, 0])
    eq = acct.cash + acct.pos * value(ep, mid) if not crossed else acct.prev_eq
    if breached(rs, eq, t, acct.day_offset, fx, rp):
        for o in range(acct.first_live, acct.n_orders):
            if orders[o].status == ST_PENDING or orders[o].status == ST_RESTING:
                orders[o].cancel_ts = min(orders[o].cancel_ts, t + ep.cancel_latency_ns)
    if rs.killed == 1 and abs(acct.pos) >= ep.lot * 0.5:  # flatten, again on every snapshot until flat
        _, flattening = _working(orders, acct)
        if not flattening:
            side = -np.sign(acct.pos)
            if _submit(orders, acct, side, abs(acct.pos), side * np.inf, MARKET, t, ep, 1) >= 0:
                rs.flatten_attempts += 1
    if t >= acct.next_decision_ts:
        acct.next_decision_ts = t + SP[0].decision_ns
        _decide(t, row, bp, bs, ap, as_, sig, fx, crossed, ep, rp, SP[0], strategy, order_type, orders, blocks,
                acct, rs, D, intents)
    acct.prev_ts = t
    acct.prev_eq = eq
    if not crossed:
        acct.prev_mid = mid
    acct.seq += 1
    return eq


@nb.njit(types.void(F1, F2, F2, F2, F2, F1, F1, F1, F1, F1, F1, EXEC_T[::1], RISK_T[::1], STRATEGY_T[::1],
                    QUEUE_T[::1], STRATEGY_FN, QUEUE_FN, ORDER_TYPE_FN, ORDER_T[::1], FILL_T[::1], I1,
                    ACCOUNT_T[::1], RISK_STATE_T[::1], DECISION_T[::1], INTENT_T[::1], F1, F1, F1, types.int64),
         cache=True)
def simulate(ts, bp, bs, ap, as_, signal, fx, tr_ts, tr_px, tr_sz, tr_side, E, R, SP, QP, strategy,  # noqa: ANN001
             queue_model, order_type, orders, fills, blocks, A, RS, D, intents, position, cash, equity,
             seed: int) -> None:
    """The backtest: trades up to each snapshot's time first, then the snapshot.

    ``ts``/``tr_ts`` are float64 ns *offsets* from the first snapshot (exact to 1 ns for 104 days;
    absolute epoch ns in float64 would be 256 ns coarse); ``A`` = :func:`types.new_account` (day
    offset = first ts modulo one day); ``fx`` = settlement -> quote per snapshot.
    """
    np.random.seed(seed)
    j = 0
    nt = tr_ts.shape[0]
    for i in range(ts.shape[0]):
        while j < nt and tr_ts[j] <= ts[i]:
            on_trade(tr_ts[j], tr_px[j], tr_sz[j], tr_side[j], E, orders, fills, A)
            j += 1
        equity[i] = on_snapshot(ts[i], i, bp, bs, ap, as_, signal[i], fx[i], E, R, SP, QP, strategy, queue_model,
                                order_type, orders, fills, blocks, A, RS, D, intents)
        position[i] = A[0].pos
        cash[i] = A[0].cash
