"""``mode=sim`` and ``mode=record``: ``feed=`` (a replay of ``data=`` or a live ccxt feed) -> 100 ms sampler ->
streaming features -> the champion -> risk -> paper broker (sim); or the feed -> the ingest validator ->
the store of ``mode.into`` (record). The loop's parts live in :mod:`l2exp.sim`."""

from __future__ import annotations

import gc
import hashlib
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from rich.markup import escape

from l2exp.config import instantiate
from l2exp.data.validate import PLAUSIBLE, REASONS, Validator, check_row
from l2exp.errors import UserError
from l2exp.progress import LineProgress
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


@dataclass
class SimSpec:
    """What to paper trade (``conf/mode/sim.yaml``, ``feed=`` and the groups they read), as objects.

    Args:
        data_name / levels: the ``data=`` name and canonical depth.
        model_uri: the model (``models:/<name>@champion`` by default).
        feed_kind: ``replay`` (the stored recording) or a live feed's kind; ``live`` = not a replay.
        sample_ms: the live sampler's interval (one poll per interval of wall-clock time).
        stale_ms: no decision on a live book older than this.
        ring_capacity / flush_every / log_every: the bounded book ring, decision-sink flush and metric cadence.
        max_snapshots / duration_s: stop conditions (0: none).
        max_price / max_size: the ingest's plausibility bounds, applied to every live snapshot.
        open_feed: (decide-from ts or None, session gap ms) -> (feed, symbol), bound to ``feed=``.
        trading: (symbol, required) -> ``TradingSpec``.
        declared: the symbols ``data.instruments`` declares.
    """

    data_name: str
    levels: int
    model_uri: str
    feed_kind: str
    live: bool
    sample_ms: float
    stale_ms: float
    ring_capacity: int
    flush_every: int
    log_every: int
    max_snapshots: int
    duration_s: float
    max_price: float
    max_size: float
    open_feed: Any
    trading: Any
    declared: frozenset[str]


def sim_spec(cfg: DictConfig) -> SimSpec:
    from l2exp.modes.trading import trading_spec

    mode = cfg.mode
    plausible = {**PLAUSIBLE, **dict(cfg.validation.get("plausible") or {})}
    levels = int(cfg.levels)
    return SimSpec(data_name=str(cfg.data.name), levels=levels, model_uri=str(mode.model_uri),
                   feed_kind=str(cfg.feed.kind), live=str(cfg.feed.kind) != "replay",
                   sample_ms=float(mode.sample_ms), stale_ms=float(mode.stale_ms),
                   ring_capacity=int(mode.ring_capacity), flush_every=int(mode.flush_every),
                   log_every=int(mode.log_every), max_snapshots=int(mode.max_snapshots or 0),
                   duration_s=float(mode.duration_s or 0), max_price=float(plausible["max_price"]),
                   max_size=float(plausible["max_size"]),
                   open_feed=lambda decide_from, gap_ms: make_feed(cfg, levels, decide_from, gap_ms),
                   trading=lambda sym, required: trading_spec(cfg, sym, required),
                   declared=frozenset(cfg.data.get("instruments") or {}))


@dataclass
class SimSession:
    """Everything one paper-trading run holds: the model, the feed, streaming features, the broker."""

    trading: Any  # TradingSpec
    bundle: Any
    feed: Any
    features: Any
    broker: Any
    decide_from: int  # no decision before it (a replay: the model's test start)
    out: Any  # the run's local output folder


@dataclass
class SimLoop:
    """What the loop counted: snapshots, decisions, guards; and the latest tick -> decision latencies."""

    counts: dict[str, int]
    rejected_by: dict[str, int]
    latencies_ms: np.ndarray
    ring_size: int
    stop: str
    seconds: float


def prepare(spec: SimSpec) -> SimSession:
    """The model, the feed (a replay starts at the session holding the model's test start: the rows before are
    feature history, never decided on), streaming features, the instrument and the paper broker."""
    from l2exp.backtest.funding import funding_events
    from l2exp.backtest.signals import test_start_of
    from l2exp.modes.trading import say_funding
    from l2exp.sim.broker import PaperBroker
    from l2exp.tracking.registry import load_bundle

    bundle = load_bundle(spec.model_uri, levels_available=spec.levels)
    replay = not spec.live
    # a replay decides only on rows the model never saw (its test segment, as a backtest would); a model
    # without recorded segments is refused, as the backtest refuses it
    decide_from = test_start_of(bundle, spec.model_uri) if replay else np.iinfo(np.int64).min
    feed, symbol = spec.open_feed(decide_from if replay else None, bundle.feature_set.params.reset_gap_ms)
    features = bundle.feature_set.streaming(spec.levels, symbol if isinstance(bundle.feature_set.params.tick_size,
                                                                              dict) else None)
    # a replay trades recorded data: its instrument must be declared, as in a backtest; a live feed's symbol
    # may not be in the data config: then linear, multiplier 1, the data's tick -- said loudly, once
    trading = spec.trading(symbol, replay)
    if symbol not in spec.declared:
        console.print(f"[bold yellow]no instrument declared for {escape(str(symbol))} in "
                      f"data={escape(str(spec.data_name))}: the paper broker "
                      "books it as linear, multiplier 1, with the data config's tick and lot; declare "
                      f"data.instruments.{escape(str(symbol))} for the venue's contract[/]")
    inst = trading.instrument
    has_trades = bool(getattr(feed, "tr", None) is not None and len(feed.tr[0]))
    # a replay knows the span its prints cover, as the backtest does (book-through fills outside it)
    span = (int(feed.tr[0].min()), int(feed.tr[0].max())) if replay and has_trades else None
    broker = PaperBroker(trading.execution, trading.strategy, trading.risk, spec.levels, inst, has_trades,
                         print_span=span)
    if replay and len(feed.ts):
        feed.funding = funding_events(inst.funding, int(feed.ts[0]), int(feed.ts[-1]), symbol)
    say_funding(inst, live=spec.live)
    return SimSession(trading, bundle, feed, features, broker, decide_from, output_dir() / "sim")


def run(spec: SimSpec, s: SimSession, stop: Any) -> SimLoop:
    """The live loop until ``stop``, the feed's end, ``max_snapshots`` or ``duration_s``: every snapshot checked
    (the ingest's rules, the stale guard), fed to the features and the broker; the model asked only when the
    strategy decides (every ``strategy.decision_ms``, exactly as in the backtest)."""
    from l2exp.backtest.signals import model_signal

    feed, features, broker, bundle = s.feed, s.features, s.broker, s.bundle
    ring = RingBuffer(spec.ring_capacity, spec.levels)
    decisions = ParquetSink(s.out / "decisions.parquet", spec.flush_every)
    lat_ns = np.zeros(200_000, dtype=np.int64)
    n_lat = 0
    rejected_by: dict[str, int] = {}
    counts = {"snapshots": 0, "decisions": 0, "stale_skips": 0, "schema_rejects": 0, "trades": 0,
              "warmup_snapshots": 0}
    sample_ns, stale_ns, live = spec.sample_ms * 1e6, spec.stale_ms * 1e6, spec.live
    last_ts = np.iinfo(np.int64).min
    next_sample = -np.inf
    t_start = time.perf_counter()
    # another thread (the websocket feed, a monitor) may hold the GIL for the 5 ms default switch
    # interval, which would land in a decision's latency; hand it over within 0.5 ms instead
    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    # everything built so far (model, replayed book, config) is long-lived: collect once and move it out of
    # the collector's reach, so no full collection walks it during the loop (measured in bench/features.py:
    # a full collection after loading a 2 M-row book stalled one tick for 4 s)
    gc.collect()
    gc.freeze()
    prog = LineProgress()
    settle = s.trading.instrument.settle

    def status() -> str:
        return (f"sim ({spec.feed_kind}): {counts['snapshots']:,} snapshots, {counts['decisions']:,} decisions, "
                f"{broker.n_fills():,} fills, pnl {money(float(broker.equity), settle)}, {prog.elapsed():,.0f} s")

    try:
        while not stop.stop:
            if spec.max_snapshots and counts["snapshots"] >= spec.max_snapshots:
                stop.reason = "max_snapshots"
                break
            if spec.duration_s and time.perf_counter() - t_start >= spec.duration_s:
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
            if tick.ts < s.decide_from:  # feature history before the model's test start: never decided on
                features.update_book(tick.ts, tick.book)
                counts["warmup_snapshots"] += 1
                continue
            counts["snapshots"] += 1
            if (live or not counts["snapshots"] & 1023) and prog.due():  # one clock read per 1,024 replayed
                prog.show(status())
            ring.push(tick.ts, tick.book)
            if live and sample_ns > 0:  # the sampler, live: one poll per sample interval of wall-clock time
                now = time.perf_counter_ns()
                next_sample = max(next_sample + sample_ns, now) if next_sample > 0 else now + sample_ns
                time.sleep(max(0.0, (next_sample - now) / 1e9))
            bk = tick.book
            code = check_row(tick.ts, last_ts, bk[0], bk[1], bk[2], bk[3], spec.max_price, spec.max_size)
            if code != 0:  # the ingest's rules
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
            if counts["decisions"] % spec.log_every == 0:
                tlog.log_metrics({"equity": equity, "position": broker.position, "decisions": counts["decisions"],
                                  "fills": broker.n_fills()}, step=counts["decisions"])
    finally:
        sys.setswitchinterval(switch)
        gc.unfreeze()
        feed.close()
        decisions.close()
        prog.done(status())
    return SimLoop(counts, rejected_by, lat_ns[: min(n_lat, len(lat_ns))].astype(float) / 1e6, len(ring),
                   str(stop.reason), time.perf_counter() - t_start)


def record(spec: SimSpec, s: SimSession, loop: SimLoop, run_id: str) -> dict[str, Any]:
    """The fills, orders and decisions into the MLflow run, the summary's figures as metrics; returns the
    summary."""
    broker, feed, inst = s.broker, s.feed, s.trading.instrument
    fills, orders = broker.tables()
    from l2exp.modes.trading import save_tables

    save_tables(s.out, fills, orders)
    tlog.log_artifacts(str(s.out), "sim")
    blocks = broker.blocks_dict()
    counts, lat = loop.counts, loop.latencies_ms
    modelled = inst.funding_status != "not modelled" and not (spec.live and inst.perpetual)
    summary = {
        "mode": "sim", "run_id": run_id, "model_uri": spec.model_uri, "symbol": s.trading.symbol,
        "feed": spec.feed_kind, "stop": loop.stop, "snapshots": counts["snapshots"],
        "decisions": counts["decisions"], "orders": broker.n_orders(), "fills": broker.n_fills(),
        "n_fills": broker.n_fills(), "pnl": broker.equity, "pnl_net": broker.equity,
        "funding": broker.funding if modelled else "not modelled",
        "settle_currency": inst.settle, "quote_currency": inst.quote, "pnl_net_quote": broker.pnl_quote,
        "trades": counts["trades"],
        "position": broker.position, "reconnects": feed.stats.reconnects,
        "feed_errors": feed.stats.errors, "stale_skips": counts["stale_skips"] + blocks.get("stale_book", 0),
        "schema_rejects": counts["schema_rejects"] + feed.stats.schema_rejects,
        "rejected_snapshots": counts["schema_rejects"], "rejected_by_reason": loop.rejected_by,
        "warmup_snapshots": counts["warmup_snapshots"],
        "decide_from_ts": None if s.decide_from == np.iinfo(np.int64).min else s.decide_from,
        "latency_ms_p50": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "risk_blocks": blocks,
        "ring_size": loop.ring_size, "seconds": round(loop.seconds, 2),
    }
    tlog.log_metrics({k: float(v) for k, v in summary.items()
                      if isinstance(v, int | float) and not isinstance(v, bool) and v is not None})
    return summary


def _sim_value(key: str, v: Any, summary: dict[str, Any]) -> Any:
    """The PnL with its currency (settle, and quote beside it when they differ: ``pnl -0.0000`` said nothing)."""
    if key == "pnl":
        settle, quote = summary.get("settle_currency", ""), summary.get("quote_currency", "")
        text = money(float(v), settle)
        q = summary.get("pnl_net_quote")
        if quote and quote != settle and isinstance(q, float):
            text += f" ({money(q, quote)})"
        return text
    return money(v) if isinstance(v, float) else v


def report(spec: SimSpec, s: SimSession, summary: dict[str, Any]) -> dict[str, Any]:
    """The console table and ``summary.json``; a live feed that never delivered a snapshot is exit 2."""
    from l2exp.tracking.setup import print_links, run_url

    print_table(f"sim ({summary['feed']}, paper broker): {summary['symbol']}, stopped: {summary['stop']}", [
        (k, _sim_value(k, v, summary)) for k, v in summary.items()
        if k in ("snapshots", "decisions", "orders", "fills", "pnl", "reconnects", "stale_skips", "schema_rejects",
                 "latency_ms_p50", "latency_ms_p99", "max_rss_mb")])
    write_summary(summary)
    print_links([("run", run_url(summary["run_id"]))])
    feed = s.feed
    if not summary["snapshots"] and feed.stats.errors:  # a feed that never delivered is no successful run
        raise UserError(f"the {summary['feed']} feed delivered no snapshot: {feed.stats.errors} request(s) failed, "
                        f"last: {feed.stats.last_error or '?'}", where=f"feed ({spec.feed_kind})",
                        fix="Check the network and the exchange/symbol (feed.client.*); the run is in MLflow with "
                            "feed_errors, nothing was traded.")
    return summary


def run_sim(cfg: DictConfig) -> dict[str, Any]:
    """Paper trading: :func:`sim_spec` -> :func:`prepare` -> :func:`run` -> :func:`record` -> :func:`report`."""
    from l2exp.modes.build import run_context, tracking_settings
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure

    spec = sim_spec(cfg)
    configure(tracking_settings(cfg))
    s = prepare(spec)
    tags = {"l2exp.model_uri": spec.model_uri, "l2exp.model_run_id": str(s.bundle.run_id),
            "l2exp.symbol": s.trading.symbol, "l2exp.feed": spec.feed_kind, "l2exp.paper": "true"}
    name = f"sim {spec.feed_kind} {s.trading.symbol}"
    with tracked_run(run_context(cfg), "sim", run_name=name, tags=tags) as mlrun, StopFlag() as stop:
        loop = run(spec, s, stop)
        summary = record(spec, s, loop, mlrun.info.run_id)
    return report(spec, s, summary)


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
    if not summary["rows_in"] and feed.stats.errors:  # a feed that never delivered is no successful recording
        raise UserError(f"the {cfg.feed.kind} feed delivered no snapshot: {feed.stats.errors} request(s) failed, "
                        f"last: {feed.stats.last_error or '?'}", where=f"feed ({cfg.feed.kind})",
                        fix="Check the network and the exchange/symbol (feed.client.*); nothing was recorded.")
    console.print(f"train on it: l2exp mode=train data={escape(str(record_into(cfg)))} "
                  f"(store {escape(str(store.location()))})")
    return summary
