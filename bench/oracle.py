"""hftbacktest as the independent oracle for *when* and *how* passive orders fill: the same events, the
same decisions, fills compared one by one.

    .venv/bin/python bench/oracle.py [--intervals 100,1000,5000] [--json out.json]

Data: the real BitMEX XBTUSD 2020-03-10 book (10 levels, ``../shared/data/bitmex``) and its prints,
restricted to the span the prints cover. Strategy, both engines: at each decision time cancel what is
working and post a 1-lot bid at the best bid and a 1-lot ask at the best ask (limit, good till
cancelled: a quote that crosses the book it arrives at takes); 5 ms order entry and cancel latency;
BitMEX fees -2.5 / 7.5 bps (maker / taker); a linear contract (the fills are the point, not the
inverse accounting, which ``tests/backtest/test_execution_truth.py`` checks by hand).

The conversion is faithful to what each engine needs (why it is written here: hftbacktest's own
converters read venue files, not canonical snapshots):

* **hftbacktest's feed** is the canonical snapshots as per-level *diffs*: per snapshot, a level that left
  the 10 visible is set to 0, and a level whose size changed is set to its new size -- so its queue
  models see the real previous size (PowerProb needs decreases; a clear-and-reload each snapshot makes
  every previous size 0 and PowerProb degenerates to RiskAverse). Deletions come before updates, so the
  book is never transiently crossed. Prints come before the snapshot of the same millisecond (the
  snapshot already shows them). One clock: exchange time = local time (the recording has one).
* **the same decisions**: hftbacktest decides every ``interval`` with ``elapse``; its decision times are
  handed to l2exp as decision rows (a copy of the last snapshot at or before the time, stamped with
  it) and a strategy that quotes only on those rows. Both see the book of the last snapshot at or
  before the decision and quote its best bid and ask.
* **the pairs of queue models**: l2exp ``trades_only`` <-> hftbacktest RiskAverse; l2exp ``power_prob``
  <-> hftbacktest PowerProb (power 2). l2exp runs with ``book_through_fills=true`` (hftbacktest fills a
  resting order when the opposite best reaches its price).

A fill is *matched* when the other engine has an unmatched fill of the same side and price within
+-latency (5 ms); the report gives each engine's fills (maker / taker), filled quantity per side,
equity at the end (linear, fees included) and the share of each engine's fills the other matched.
Mismatch classes are explained in ``docs/backtest.md``. Without hftbacktest (``pip install
'.[bench]'``) or without the recording the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba as nb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from l2exp.backtest.orders.join_touch import JoinTouch  # noqa: E402
from l2exp.backtest.params import ExecutionParams  # noqa: E402
from l2exp.backtest.queue.power_prob import PowerProb  # noqa: E402
from l2exp.backtest.queue.trades_only import TradesOnly  # noqa: E402
from l2exp.backtest.run import backtest_book  # noqa: E402
from l2exp.backtest.strategies import Strategy  # noqa: E402
from l2exp.backtest.strategies.quote_touch import post_touch  # noqa: E402
from l2exp.backtest.types import STRATEGY_SIG  # noqa: E402
from l2exp.risk.params import RiskParams  # noqa: E402

LEVELS = 10
TICK = 0.5
LATENCY_NS = 5_000_000
MAKER, TAKER = -2.5, 7.5  # bps, BitMEX 2020


@nb.njit(STRATEGY_SIG, cache=True)
def quote_on_signal(d, sp, intents) -> int:  # noqa: ANN001
    """Quote both touches (base_size each) on rows whose signal is set; no decision elsewhere."""
    if d.signal != d.signal:
        return 0
    return post_touch(d, sp, intents)


@dataclass
class QuoteOnSignal(Strategy):
    kernel = quote_on_signal


# ---- hftbacktest's feed ---------------------------------------------------------------------------------

@nb.njit(cache=True)
def _diffs(bp: np.ndarray, bq: np.ndarray, ap: np.ndarray, aq: np.ndarray, out_row: np.ndarray, out_kind: np.ndarray,
           out_side: np.ndarray, out_px: np.ndarray, out_qty: np.ndarray) -> int:
    """Per snapshot k and side: a level of snapshot k-1 whose price is not in snapshot k -> size 0
    (kind 1), a level of snapshot k whose size differs from k-1's at that price (or is new) -> its size
    (kind 2). Compiled: 10 levels a side, a plain double loop, millions of snapshots."""
    n, L = bp.shape
    m = 0
    for k in range(n):
        for sd in range(2):
            px = bp if sd == 0 else ap
            qt = bq if sd == 0 else aq
            if k > 0:
                for i in range(L):
                    p = px[k - 1, i]
                    if p != p:
                        continue
                    found = False
                    for j in range(L):
                        if px[k, j] == p:
                            found = True
                            break
                    if not found:
                        out_row[m], out_kind[m], out_side[m], out_px[m], out_qty[m] = k, 1, sd, p, 0.0
                        m += 1
            for j in range(L):
                p = px[k, j]
                q = qt[k, j]
                if p != p or q != q:
                    continue
                same = False
                if k > 0:
                    for i in range(L):
                        if px[k - 1, i] == p:
                            same = qt[k - 1, i] == q
                            break
                if not same:
                    out_row[m], out_kind[m], out_side[m], out_px[m], out_qty[m] = k, 2, sd, p, q
                    m += 1
    return m


def hft_events(book: pd.DataFrame, trades: pd.DataFrame) -> np.ndarray:
    """Canonical snapshots -> per-level diffs (see the module docstring), merged with the prints."""
    import hftbacktest as hb

    ts = book.timestamp.to_numpy(np.int64)
    mats = [np.ascontiguousarray(book[[f"{s}_{f}_{i}" for i in range(1, LEVELS + 1)]].to_numpy(np.float64))
            for s, f in (("bid", "price"), ("bid", "size"), ("ask", "price"), ("ask", "size"))]
    cap = 4 * LEVELS * len(book) + 1
    row, kind, side = np.zeros(cap, np.int64), np.zeros(cap, np.int64), np.zeros(cap, np.int64)
    px, qty = np.zeros(cap), np.zeros(cap)
    m = _diffs(*mats, row, kind, side, px, qty)
    base = hb.EXCH_EVENT | hb.LOCAL_EVENT
    n_tr = len(trades)
    t_all = np.r_[ts[row[:m]], trades.ts.to_numpy(np.int64)]
    k_all = np.r_[kind[:m], np.zeros(n_tr, np.int64)]  # per snapshot: deletions (1) before updates (2)
    ev_all = np.r_[np.where(side[:m] == 0, base | hb.DEPTH_EVENT | hb.BUY_EVENT, base | hb.DEPTH_EVENT | hb.SELL_EVENT),
                   np.where(trades.side.to_numpy() > 0, base | hb.TRADE_EVENT | hb.BUY_EVENT,
                            base | hb.TRADE_EVENT | hb.SELL_EVENT)].astype(np.uint64)
    r_all = np.r_[row[:m], np.full(n_tr, -1, np.int64)]  # two snapshots of one millisecond stay in order
    order = np.lexsort((np.arange(len(t_all)), k_all, r_all, t_all))
    ev = np.zeros(len(t_all), dtype=hb.event_dtype)
    ev["exch_ts"] = ev["local_ts"] = t_all[order]
    ev["ev"] = ev_all[order]
    ev["px"] = np.r_[px[:m], trades.price.to_numpy(np.float64)][order]
    ev["qty"] = np.r_[qty[:m], trades["size"].to_numpy(np.float64)][order]
    return ev


def run_hft(events: np.ndarray, interval_ns: int, queue: str, n_max: int,
            roi: tuple[float, float] | None = None) -> tuple[pd.DataFrame, np.ndarray, float]:
    """hftbacktest (no partial fills; HashMap depth, or ROIVector within ``roi`` = (low, high) price) with
    the quote strategy; returns (fills, decision times, seconds in its loop). Fills are read off the
    orders at each decision, before inactive orders are cleared."""
    import time

    import hftbacktest as hb

    @nb.njit
    def quote(h, interval, dec_ts, f_ts, f_side, f_px, f_qty, f_maker):  # noqa: ANN001, ANN202
        oid = 0
        nd = 0
        nf = 0
        while h.elapse(interval) == 0:
            values = h.orders(0).values()
            while values.has_next():
                o = values.get()
                if o.exec_qty > 0 and o.status == hb.FILLED and nf < f_ts.shape[0]:  # whole fills only
                    f_ts[nf], f_side[nf], f_px[nf] = o.exch_timestamp, o.side, o.exec_price
                    f_qty[nf], f_maker[nf] = o.exec_qty, 1 if o.arr[0].maker else 0
                    nf += 1
            h.clear_inactive_orders(0)
            values = h.orders(0).values()
            while values.has_next():
                o = values.get()
                if o.cancellable:
                    h.cancel(0, o.order_id, False)
            d = h.depth(0)
            if not (d.best_bid > 0 and d.best_ask < 1e12 and d.best_bid < d.best_ask):
                continue  # no usable book yet (l2exp decides only on snapshots too)
            if nd < dec_ts.shape[0]:
                dec_ts[nd] = h.current_timestamp
                nd += 1
            oid += 1
            h.submit_buy_order(0, oid, d.best_bid, 1.0, hb.GTC, hb.LIMIT, False)
            oid += 1
            h.submit_sell_order(0, oid, d.best_ask, 1.0, hb.GTC, hb.LIMIT, False)
        return nd, nf

    asset = (hb.BacktestAsset().data(events).linear_asset(1.0).constant_order_latency(LATENCY_NS, LATENCY_NS)
             .no_partial_fill_exchange().trading_value_fee_model(MAKER * 1e-4, TAKER * 1e-4)
             .tick_size(TICK).lot_size(1.0))
    asset = asset.risk_adverse_queue_model() if queue == "trades_only" else asset.power_prob_queue_model(2.0)
    if roi is not None:
        asset = asset.roi_lb(roi[0]).roi_ub(roi[1])
    h = (hb.ROIVectorMarketDepthBacktest if roi is not None else hb.HashMapMarketDepthBacktest)([asset])
    dec = np.zeros(n_max, np.int64)
    f = {"ts": np.zeros(n_max, np.int64), "side": np.zeros(n_max, np.int8), "price": np.zeros(n_max),
         "qty": np.zeros(n_max), "maker": np.zeros(n_max, np.int8)}
    t = time.perf_counter()
    nd, nf = quote(h, interval_ns, dec, f["ts"], f["side"], f["price"], f["qty"], f["maker"])
    seconds = time.perf_counter() - t
    h.close()
    fills = pd.DataFrame({k: v[:nf] for k, v in f.items()}).sort_values("ts", kind="stable").reset_index(drop=True)
    fills["side"] = fills.side.astype(float)
    return fills, dec[:nd], seconds


# ---- l2exp on the same decisions --------------------------------------------------------------------------

def with_decision_rows(book: pd.DataFrame, decisions: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The book with a decision row at each decision time (a copy of the last snapshot at or before it,
    stamped with the decision time; a snapshot already at that time is the decision row) and the
    signal: 1 on decision rows, NaN elsewhere."""
    ts = book.timestamp.to_numpy(np.int64)
    src = np.searchsorted(ts, decisions, side="right") - 1
    ok = src >= 0
    decisions, src = decisions[ok], src[ok]
    exact = ts[src] == decisions
    extra = book.iloc[src[~exact]].assign(timestamp=decisions[~exact])
    out = pd.concat([book.assign(_d=0), extra.assign(_d=1)], ignore_index=True)
    out = out.sort_values(["timestamp", "_d"], kind="stable").reset_index(drop=True)
    sig = np.full(len(out), np.nan)
    sig[out._d.to_numpy() == 1] = 1.0
    last_at = out.index.to_series().groupby(out.timestamp).transform("last").to_numpy()
    exact_ts = set(decisions[exact].tolist())
    is_last = last_at == np.arange(len(out))
    sig[is_last & out.timestamp.isin(exact_ts).to_numpy()] = 1.0
    return out.drop(columns="_d"), sig


def run_l2exp(book: pd.DataFrame, trades: pd.DataFrame, decisions: np.ndarray, queue: str) -> pd.DataFrame:
    b, sig = with_decision_rows(book, decisions)
    ex = ExecutionParams(latency_ms=LATENCY_NS / 1e6, cancel_latency_ms=LATENCY_NS / 1e6, maker_fee_bps=MAKER,
                         taker_fee_bps=TAKER, tick_size=TICK, lot_size=1.0,
                         queue_model=TradesOnly() if queue == "trades_only" else PowerProb(power=2.0),
                         order_type=JoinTouch(), book_through_fills=True)
    res = backtest_book(b, sig, trades, ex, QuoteOnSignal(decision_ms=0, base_size=1.0), RiskParams.of(enabled=False),
                        LEVELS)
    return res.fills


# ---- comparison -------------------------------------------------------------------------------------------

def match(a: pd.DataFrame, b: pd.DataFrame, tol_ns: int = LATENCY_NS) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one: each fill of ``a`` in time order takes the nearest unmatched fill of ``b`` of the
    same side and price within +-tol. Returns the matched flags of a and of b."""
    ma, mb = np.zeros(len(a), bool), np.zeros(len(b), bool)
    bt = b.ts.to_numpy(np.int64)
    for i, (t, s, p) in enumerate(zip(a.ts.to_numpy(np.int64), a.side, a.price, strict=True)):
        lo, hi = np.searchsorted(bt, t - tol_ns), np.searchsorted(bt, t + tol_ns, side="right")
        cand = [j for j in range(lo, hi) if not mb[j] and b.side.iat[j] == s and abs(b.price.iat[j] - p) < TICK / 4]
        if cand:
            j = min(cand, key=lambda j: abs(bt[j] - t))
            ma[i] = mb[j] = True
    return ma, mb


def summary(f: pd.DataFrame, last_mid: float) -> dict:
    fee = f.qty * f.price * np.where(f.maker == 1, MAKER, TAKER) * 1e-4
    pos = float((f.side * f.qty).sum())
    cash = float(-(f.side * f.qty * f.price).sum() - fee.sum())
    return {"fills": len(f), "maker": int((f.maker == 1).sum()), "taker": int((f.maker == 0).sum()),
            "bought": float(f.qty[f.side > 0].sum()), "sold": float(f.qty[f.side < 0].sum()),
            "equity_usd": round(cash + pos * last_mid, 2)}


def compare(book: pd.DataFrame, trades: pd.DataFrame, events: np.ndarray, interval_ms: int, queue: str) -> dict:
    hf, decisions, _ = run_hft(events, interval_ms * 1_000_000, queue, 4 * len(book) + 1000)
    lf = run_l2exp(book, trades, decisions, queue)
    ml, mh = match(lf, hf)
    last_mid = float(0.5 * (book.bid_price_1.iloc[-1] + book.ask_price_1.iloc[-1]))
    rules = lf.fill_rule.value_counts().to_dict() if len(lf) and "fill_rule" in lf else {}
    return {"interval_ms": interval_ms, "queue": queue, "decisions": len(decisions),
            "l2exp": {**summary(lf, last_mid), "by_rule": {str(k): int(v) for k, v in rules.items()}},
            "hftbacktest": summary(hf, last_mid),
            "l2exp_matched": round(float(ml.mean()), 4) if len(ml) else float("nan"),
            "hftbacktest_matched": round(float(mh.mean()), 4) if len(mh) else float("nan"),
            "fill_count_ratio": round(len(lf) / len(hf), 4) if len(hf) else float("nan"),
            "unmatched_l2exp": lf[~ml].head(20).assign(ts=lambda d: d.ts.astype(str)).to_dict("records"),
            "unmatched_hftbacktest": hf[~mh].head(20).assign(ts=lambda d: d.ts.astype(str)).to_dict("records")}


def load() -> tuple[pd.DataFrame, pd.DataFrame]:
    from bench.backtest import xbt_trades
    from bench.features import real_xbt

    book = real_xbt()
    trades = xbt_trades()
    lo, hi = int(trades.ts.min()), int(trades.ts.max())
    book = book[(book.timestamp >= lo) & (book.timestamp <= hi)].reset_index(drop=True)
    return book, trades[(trades.ts >= lo) & (trades.ts <= hi)].reset_index(drop=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--intervals", default="100,1000,5000")
    ap.add_argument("--queues", default="trades_only,power_prob")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        print("bench/oracle.py: hftbacktest is not installed (pip install '.[bench]'): nothing compared")
        return
    from l2exp.config import shared_data_dir

    if not (shared_data_dir() / "bitmex").exists():
        print(f"bench/oracle.py: no BitMEX recording under {shared_data_dir()}: nothing compared")
        return
    book, trades = load()
    events = hft_events(book, trades)
    out = {"snapshots": len(book), "prints": len(trades), "hft_events": len(events), "runs": []}
    for queue in args.queues.split(","):
        for iv in map(int, args.intervals.split(",")):
            r = compare(book, trades, events, iv, queue)
            out["runs"].append(r)
            print(f"{queue:>12} {iv:>5} ms: l2exp {r['l2exp']['fills']} ({r['l2exp']['maker']}/{r['l2exp']['taker']})"
                  f" hftbacktest {r['hftbacktest']['fills']} ({r['hftbacktest']['maker']}/{r['hftbacktest']['taker']})"
                  f" matched {r['l2exp_matched']:.3f} / {r['hftbacktest_matched']:.3f}; equity "
                  f"{r['l2exp']['equity_usd']} / {r['hftbacktest']['equity_usd']} USD", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
