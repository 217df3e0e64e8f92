"""``mode=sim`` and ``mode=record``: ``feed=`` (a replay of ``data=`` or a live ccxt feed) -> 100 ms sampler ->
streaming features -> the champion -> risk -> paper broker (sim); or the feed -> the ingest validator ->
the store of ``mode.into`` (record). The loop's parts live in :mod:`l2exp.sim`."""

from __future__ import annotations

import gc
import hashlib
import resource
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from l2exp.config import instantiate
from l2exp.data.validate import PLAUSIBLE, REASONS, Validator, check_row
from l2exp.errors import UserError
from l2exp.schema import BookChunk
from l2exp.sim.live import ParquetSink, RingBuffer, StopFlag
from l2exp.summary import console, money, output_dir, print_table, write_summary
from l2exp.tracking import log as tlog


def make_feed(cfg: DictConfig, levels: int, decide_from_ts: int | None = None,
              gap_ms: float | None = None) -> tuple[Any, str]:
    """The feed of ``cfg.feed`` and the symbol it trades. A replay for a model (``decide_from_ts`` = its
    test start) starts at the beginning of the session holding that time -- the earlier rows of the
    session are feature history, fed at once, never decided on -- and refuses data with no such row."""
    kind = str(cfg.feed.kind)
    if kind == "replay":
        from l2exp.features.table import choose_symbol
        from l2exp.modes.build import store_with_data as open_store
        from l2exp.sessions import session_ids
        from l2exp.sim.feeds import ReplayFeed

        store = open_store(cfg)
        symbol = choose_symbol(store.read(columns=[])["symbol"], cfg.mode.get("symbol"), str(cfg.data.name),
                               "mode.symbol")
        book = store.read(symbols=[symbol])
        if decide_from_ts is not None:
            from l2exp.backtest.signals import first_out_of_sample

            ts = book["timestamp"].to_numpy(np.int64)
            first = first_out_of_sample(ts, decide_from_ts, f"data={cfg.data.name} {symbol}", str(cfg.mode.model_uri),
                                        "mode.model_uri")
            sid = session_ids(ts, float(gap_ms)) if gap_ms else np.zeros(len(ts), dtype=np.int64)
            book = book.iloc[int(np.searchsorted(sid, sid[first])):].reset_index(drop=True)
        from omegaconf import OmegaConf

        from l2exp.backtest.trades import load_trades

        trades = load_trades(OmegaConf.to_container(cfg.data.trades, resolve=True) if cfg.data.get("trades") else None,
                             symbol, store)
        if decide_from_ts is not None:  # the prints the backtest of these rows uses
            trades = trades[trades.ts >= decide_from_ts].reset_index(drop=True)
        return ReplayFeed(book, levels, float(cfg.feed.speed), decide_from_ts, trades), symbol
    feed = instantiate(cfg.feed.client, levels=levels)
    return feed, str(cfg.feed.client.symbol)


def replay_market_events(broker: Any, prints: tuple[np.ndarray, ...], funding: tuple[np.ndarray, np.ndarray]) -> int:
    """Hand a replay's prints and funding events before one snapshot to the broker in time order (funding
    first at a tie, as ``engine.simulate`` orders them); returns the number of prints."""
    t_ts, t_px, t_sz, t_side = prints
    f_ts, f_rate = funding
    a = b = 0
    while a < len(f_ts) or b < len(t_ts):
        if a < len(f_ts) and (b >= len(t_ts) or f_ts[a] <= t_ts[b]):
            broker.on_funding(int(f_ts[a]), float(f_rate[a]))
            a += 1
        else:
            broker.on_trade(int(t_ts[b]), t_px[b], t_sz[b], t_side[b])
            b += 1
    return len(t_ts)


def run_sim(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.backtest.funding import funding_events
    from l2exp.backtest.signals import model_signal, test_start_of
    from l2exp.modes.build import run_context, tracking_settings
    from l2exp.modes.trading import instrument_of, say_funding, trading_params
    from l2exp.sim.broker import PaperBroker
    from l2exp.tracking.registry import load_bundle
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure

    configure(tracking_settings(cfg))
    levels = int(cfg.levels)
    mode = cfg.mode
    bundle = load_bundle(str(mode.model_uri), levels_available=levels)
    # a replay decides only on rows the model never saw (its test segment, as a backtest would); a model
    # without recorded segments is refused, as the backtest refuses it
    replay = str(cfg.feed.kind) == "replay"
    decide_from = test_start_of(bundle, str(mode.model_uri)) if replay else np.iinfo(np.int64).min
    feed, symbol = make_feed(cfg, levels, decide_from if replay else None, bundle.feature_set.params.reset_gap_ms)
    features = bundle.feature_set.streaming(levels, symbol if isinstance(bundle.feature_set.params.tick_size, dict)
                                            else None)
    # a replay trades recorded data: its instrument must be declared, as in a backtest; a live feed's symbol
    # may not be in the data config: then linear, multiplier 1, the data's tick -- said loudly, once
    inst = instrument_of(cfg, symbol, required=replay)
    declared = symbol in (cfg.data.get("instruments") or {})
    if not declared:
        console.print(f"[bold yellow]no instrument declared for {symbol} in data={cfg.data.name}: the paper broker "
                       "books it as linear, multiplier 1, with the data config's tick and lot; declare "
                       f"data.instruments.{symbol} for the venue's contract[/]")
    ex, st, rk = trading_params(cfg, symbol, inst)
    has_trades = bool(getattr(feed, "tr", None) is not None and len(feed.tr[0]))
    # a replay knows the span its prints cover, as the backtest does (book-through fills outside it)
    span = (int(feed.tr[0].min()), int(feed.tr[0].max())) if replay and has_trades else None
    broker = PaperBroker(ex, st, rk, levels, inst, has_trades, print_span=span)
    if replay and len(feed.ts):
        feed.funding = funding_events(inst.funding, int(feed.ts[0]), int(feed.ts[-1]), symbol)
    say_funding(inst, live=not replay)
    last_ts = np.iinfo(np.int64).min
    ring = RingBuffer(int(mode.ring_capacity), levels)
    out = output_dir() / "sim"
    decisions = ParquetSink(out / "decisions.parquet", int(mode.flush_every))
    lat_ns = np.zeros(200_000, dtype=np.int64)
    n_lat = 0
    rejected_by: dict[str, int] = {}
    counts = {"snapshots": 0, "decisions": 0, "stale_skips": 0, "schema_rejects": 0, "trades": 0,
              "warmup_snapshots": 0}
    sample_ns = float(mode.sample_ms) * 1e6
    stale_ns = float(mode.stale_ms) * 1e6
    live = str(cfg.feed.kind) != "replay"
    next_sample = -np.inf
    plausible = {**PLAUSIBLE, **dict(cfg.validation.get("plausible") or {})}
    max_price, max_size = float(plausible["max_price"]), float(plausible["max_size"])
    t_start = time.perf_counter()
    tags = {"l2exp.model_uri": str(mode.model_uri), "l2exp.model_run_id": str(bundle.run_id), "l2exp.symbol": symbol,
            "l2exp.feed": str(cfg.feed.kind), "l2exp.paper": "true"}
    # another thread (the websocket feed, a monitor) may hold the GIL for the 5 ms default switch
    # interval, which would land in a decision's latency; hand it over within 0.5 ms instead
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    # everything built so far (model, replayed book, config) is long-lived: collect once and move it out of
    # the collector's reach, so no full collection walks it during the loop (measured in bench/features.py:
    # a full collection after loading a 2 M-row book stalled one tick for 4 s)
    gc.collect()
    gc.freeze()
    name = f"sim {cfg.feed.kind} {symbol}"
    with tracked_run(run_context(cfg), "sim", run_name=name, tags=tags) as run, StopFlag() as stop:
        while not stop.stop:
            if mode.max_snapshots and counts["snapshots"] >= int(mode.max_snapshots):
                stop.reason = "max_snapshots"
                break
            if mode.duration_s and time.perf_counter() - t_start >= float(mode.duration_s):
                stop.reason = "duration"
                break
            if feed.exhausted:
                stop.reason = "feed exhausted"
                break
            tick = feed.poll()
            if tick is None:
                if live:
                    time.sleep(0.005)
                continue
            if tick.ts < decide_from:  # feature history before the model's test start: never decided on
                features.update_book(tick.ts, tick.book)
                counts["warmup_snapshots"] += 1
                continue
            counts["snapshots"] += 1
            ring.push(tick.ts, tick.book)
            if live and sample_ns > 0:  # the sampler, live: one poll per sample interval of wall-clock time
                now = time.perf_counter_ns()
                next_sample = max(next_sample + sample_ns, now) if next_sample > 0 else now + sample_ns
                time.sleep(max(0.0, (next_sample - now) / 1e9))
            bk = tick.book
            code = check_row(tick.ts, last_ts, bk[0], bk[1], bk[2], bk[3], max_price, max_size)  # ingest's rules
            if code != 0:
                counts["schema_rejects"] += 1
                rejected_by[REASONS[code - 1]] = rejected_by.get(REASONS[code - 1], 0) + 1
                continue
            last_ts = tick.ts
            if live and time.time_ns() - tick.ts > stale_ns:
                counts["stale_skips"] += 1  # stale-book guard: no decision on an old book
                continue
            if not live:  # the recording's prints (and funding) up to this snapshot, in time order, as backtested
                counts["trades"] += replay_market_events(broker, feed.trades_until(tick.ts),
                                                         feed.funding_until(tick.ts))
            # every snapshot feeds the features and the broker (fills, risk state); the model runs
            # only when the strategy decides (every strategy.decision_ms), exactly as in the backtest
            vec, ready = features.update_book(tick.ts, tick.book)
            due = broker.decision_due(tick.ts)
            sig = float(model_signal(bundle.predict_proba(vec.reshape(1, -1)), bundle.task)[0]) \
                if due and ready else np.nan
            equity = broker.on_book(tick.ts, tick.book, sig)
            if not due:
                continue
            lat = time.perf_counter_ns() - tick.received_ns
            lat_ns[n_lat % len(lat_ns)] = lat  # bounded ring of the latest latencies
            n_lat += 1
            counts["decisions"] += 1
            decisions.add(tick.ts, sig, broker.position, equity, lat / 1e3)
            if counts["decisions"] % int(mode.log_every) == 0:
                tlog.log_metrics({"equity": equity, "position": broker.position, "decisions": counts["decisions"],
                                    "fills": broker.n_fills()}, step=counts["decisions"])
        sys.setswitchinterval(switch)
        gc.unfreeze()
        feed.close()
        decisions.close()
        fills, orders = broker.tables()
        out.mkdir(parents=True, exist_ok=True)
        fills.to_parquet(out / "fills.parquet")
        orders.to_parquet(out / "orders.parquet")
        tlog.log_artifacts(str(out), "sim")
        blocks = broker.blocks_dict()
        counts["stale_skips"] += blocks.get("stale_book", 0)
        lat = lat_ns[: min(n_lat, len(lat_ns))].astype(float) / 1e6
        summary = {
            "mode": "sim", "run_id": run.info.run_id, "model_uri": str(mode.model_uri), "symbol": symbol,
            "feed": str(cfg.feed.kind), "stop": stop.reason, "snapshots": counts["snapshots"],
            "decisions": counts["decisions"], "orders": broker.n_orders(), "fills": broker.n_fills(),
            "n_fills": broker.n_fills(), "pnl": broker.equity, "pnl_net": broker.equity,
            "funding": broker.funding if inst.funding_status != "not modelled" and not (live and inst.perpetual)
            else "not modelled",
            "settle_currency": inst.settle, "pnl_net_quote": broker.pnl_quote, "trades": counts["trades"],
            "position": broker.position, "reconnects": feed.stats.reconnects,
            "feed_errors": feed.stats.errors, "stale_skips": counts["stale_skips"],
            "schema_rejects": counts["schema_rejects"] + feed.stats.schema_rejects,
            "rejected_snapshots": counts["schema_rejects"], "rejected_by_reason": rejected_by,
            "warmup_snapshots": counts["warmup_snapshots"],
            "decide_from_ts": None if decide_from == np.iinfo(np.int64).min else decide_from,
            "latency_ms_p50": float(np.percentile(lat, 50)) if len(lat) else None,
            "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else None,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "risk_blocks": blocks,
            "ring_size": len(ring), "seconds": round(time.perf_counter() - t_start, 2),
        }
        tlog.log_metrics({k: float(v) for k, v in summary.items()
                            if isinstance(v, int | float) and not isinstance(v, bool) and v is not None})
    print_table(f"sim ({summary['feed']}, paper broker): {symbol}, stopped: {summary['stop']}", [
        (k, money(v) if isinstance(v, float) else v) for k, v in summary.items()
        if k in ("snapshots", "decisions", "orders", "fills", "pnl", "reconnects", "stale_skips", "schema_rejects",
                 "latency_ms_p50", "latency_ms_p99", "max_rss_mb")])
    write_summary(summary)
    from l2exp.tracking.setup import print_links, run_url

    print_links([("run", run_url(summary["run_id"]))])
    if not counts["snapshots"] and feed.stats.errors:  # a feed that never delivered is no successful run
        raise UserError(f"the {summary['feed']} feed delivered no snapshot: {feed.stats.errors} request(s) failed, "
                        f"last: {feed.stats.last_error or '?'}", where=f"feed ({cfg.feed.kind})",
                        fix="Check the network and the exchange/symbol (feed.client.*); the run is in MLflow with "
                            "feed_errors, nothing was traded.")
    return summary


def record_into(cfg: DictConfig) -> str:
    return str(cfg.mode.get("into") or ("recorded" if str(cfg.feed.kind) == "replay" else cfg.data.name))


def record_store(cfg: DictConfig) -> Any:
    """The store a recording goes to: the store of data name ``mode.into`` (default: the data name
    for a live feed, ``recorded`` for a replay) -- never the store a replay reads."""
    from omegaconf import OmegaConf, open_dict

    replay = str(cfg.feed.kind) == "replay"
    into = record_into(cfg)
    dest_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(dest_cfg):
        dest_cfg.data.name = str(into)
    dest = instantiate(dest_cfg.store)
    if replay and dest.location() == instantiate(cfg.store).location():
        raise UserError(f"mode=record would write into the store it replays ({dest.location()})",
                        where="mode.into",
                        fix="Record into another data name: mode.into=<name> (then train with a data "
                            "config of that name, e.g. conf/data/recorded.yaml)")
    return dest


def run_record(cfg: DictConfig) -> dict[str, Any]:
    """Feed -> the ingest validator -> the store, rotated into a new committed part every
    ``mode.rotate_rows`` snapshots or ``mode.rotate_s`` seconds (rejects kept, as in ingest)."""
    from l2exp.data.ingest import IngestStats, _rejects_table

    levels = int(cfg.levels)
    store = record_store(cfg)
    feed, symbol = make_feed(cfg, levels)
    validator = Validator(dict(cfg.validation.rules), dict(cfg.validation.get("plausible") or {}))
    rec = cfg.mode
    total = IngestStats()
    buf: list[Any] = []
    t_start = time.perf_counter()
    last_rotate = t_start
    parts = 0

    def rotate() -> None:
        nonlocal buf, parts, last_rotate
        if not buf:
            return
        n = len(buf)
        chunk = BookChunk(np.array([t.ts for t in buf], dtype=np.int64), pd.Categorical([symbol] * n),
                          pd.Categorical([str(cfg.feed.get("exchange_name", cfg.feed.kind))] * n),
                          *(np.asfortranarray(np.stack([t.book[k] for t in buf])) for k in range(4)))
        label = f"live:{cfg.feed.kind}:{symbol}:{buf[0].ts}:{n}"
        digest = hashlib.blake2b(label.encode(), digest_size=16).hexdigest()  # stores name parts by its prefix
        writer = store.begin(digest, label)
        reason, keys = validator.check(chunk, np.zeros(n, dtype=bool))
        ok = np.flatnonzero(reason == 0)
        bad = np.flatnonzero(reason != 0)
        st = IngestStats(rows_in=n, accepted=len(ok), rejected=len(bad))
        for code in reason[bad]:
            st.by_reason[REASONS[int(code) - 1]] += 1
        st.inserted = writer.write(chunk.take(ok).to_arrow(), keys[ok])
        if len(bad):
            writer.write_rejects(_rejects_table(chunk, bad, reason, np.arange(1, n + 1), {}, digest, levels))
        writer.commit({"path": label, "digest": digest, "stats": st.to_json(),
                       "validation_state": validator.state.to_json()})
        total.add(st)
        parts += 1
        buf = []
        last_rotate = time.perf_counter()

    with store.writer_lock(), StopFlag() as stop:
        store.recover()
        while not stop.stop and not feed.exhausted:
            if rec.max_snapshots and total.rows_in + len(buf) >= int(rec.max_snapshots):
                break
            if rec.duration_s and time.perf_counter() - t_start >= float(rec.duration_s):
                break
            tick = feed.poll()
            if tick is None:
                time.sleep(0.005)
                continue
            buf.append(tick)
            if len(buf) >= int(rec.rotate_rows) or time.perf_counter() - last_rotate >= float(rec.rotate_s):
                rotate()
        rotate()
        feed.close()
    summary = {"mode": "record", "symbol": symbol, "rows_in": total.rows_in, "accepted": total.accepted,
               "rejected": total.rejected, "rejected_by_reason": dict(total.by_reason), "parts": parts,
               "reconnects": feed.stats.reconnects, "feed_errors": feed.stats.errors, "store": store.location(),
               "store_rows": store.count(), "seconds": round(time.perf_counter() - t_start, 2)}
    assert summary["rows_in"] == summary["accepted"] + summary["rejected"]
    print_table(f"record: {symbol} -> {store.location()}", [(k, v) for k, v in summary.items() if k != "mode"])
    write_summary(summary)
    console.print(f"train on it: l2exp mode=train data={record_into(cfg)} (store {store.location()})")
    return summary
