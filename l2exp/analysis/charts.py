"""Interactive charts (Plotly) for the HTML reports. Every function takes columns and returns a
``plotly.graph_objects.Figure``; :mod:`l2exp.analysis.pages` puts figures into one self-contained page.

Why Plotly: zoom, pan, hover read-outs, legends and real UTC date axes come with the library, it
works offline (plotly.js embedded once per page) and MLflow's artifact view previews HTML. Times go
to the browser as epoch milliseconds on a date axis (13-digit numbers, a third of ISO strings).
Long series are thinned for drawing only (``minmax_index`` keeps each bucket's extremes so a
drawdown is never drawn shallower than it was); every figure says how many points it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from l2exp.backtest.results import slippage_bps

BUY, SELL, NEUTRAL = "#1b7f3b", "#c62828", "#3b75af"
LINES = 20_000   # points per drawn line
DEPTH = 1_500    # snapshots sampled for the depth cloud (x 2 sides x levels markers)
BUCKETS_NS = [(60, "1 min"), (300, "5 min"), (900, "15 min"), (3_600, "hour"), (14_400, "4 h"), (86_400, "day")]


def ms(ts_ns: np.ndarray) -> np.ndarray:
    """Epoch ns -> epoch ms (float) for a Plotly date axis."""
    return np.asarray(ts_ns, np.int64) / 1e6


def even_index(n: int, max_points: int) -> np.ndarray:
    """At most ~``max_points`` evenly spaced row indices, the last row always included."""
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.r_[np.linspace(0, n - 1, max_points).astype(np.int64), n - 1])


def minmax_index(values: np.ndarray, max_points: int) -> np.ndarray:
    """Row indices keeping, in each of ``max_points // 2`` buckets, the rows of the bucket's minimum and
    maximum (and the first and last row): a thinned equity line keeps its peaks and troughs. The deepest
    drawdown's trough and its peak are kept too: with ties a bucket's minimum can be an earlier row than
    the trough after the peak (hypothesis found [-1, 1, -1, 0, 0])."""
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    v = pd.Series(np.nan_to_num(np.asarray(values, float), nan=0.0))
    g = v.groupby(np.arange(n) * (max_points // 2) // n)
    trough = int(np.argmin(drawdown(v.to_numpy())))
    peak = int(np.argmax(v.to_numpy()[: trough + 1]))
    return np.unique(np.r_[0, g.idxmin().to_numpy(), g.idxmax().to_numpy(), peak, trough, n - 1])


def _layout(fig: go.Figure, title: str, height: int = 420, **kw: object) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, template="plotly_white",
                      height=height, margin={"l": 70, "r": 20, "t": 60, "b": 45}, hovermode="closest",
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"}, **kw)
    return fig


def _empty(title: str, why: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=why, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, title, height=220)


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Equity minus its running peak, the peak starting at 0 (the metric ``max_drawdown`` is -min of this)."""
    eq = np.asarray(equity, float)
    return eq - np.maximum.accumulate(np.maximum(np.nan_to_num(eq, nan=0.0), 0.0))


def equity_chart(ts: np.ndarray, equity: np.ndarray, position: np.ndarray, settle: str,
                 title: str = "equity, drawdown and position") -> go.Figure:
    """Three stacked panels on one time axis: equity and drawdown in the settlement currency, position
    in contracts (a step line: it holds until the next fill)."""
    if not len(ts):
        return _empty(title, "no snapshot was traded")
    idx = minmax_index(np.asarray(equity, float), LINES)
    x = ms(np.asarray(ts)[idx])
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.04, row_heights=[0.5, 0.25, 0.25])
    fig.add_trace(go.Scattergl(x=x, y=np.asarray(equity)[idx], name=f"equity ({settle})", line={"color": BUY}),
                  1, 1)
    fig.add_trace(go.Scattergl(x=x, y=drawdown(equity)[idx], name=f"drawdown ({settle})", fill="tozeroy",
                               line={"color": SELL, "width": 1}), 2, 1)
    fig.add_trace(go.Scattergl(x=x, y=np.asarray(position)[idx], name="position (contracts)",
                               line={"color": NEUTRAL, "shape": "hv", "width": 1}), 3, 1)
    fig.update_yaxes(title_text=f"equity ({settle})", row=1, col=1)
    fig.update_yaxes(title_text="drawdown", row=2, col=1)
    fig.update_yaxes(title_text="position", row=3, col=1)
    fig.update_xaxes(type="date")  # every panel: matched axes must share a type
    fig.update_xaxes(title_text="time (UTC)", row=3, col=1)
    shown = f" ({len(idx):,} of {len(ts):,} points, extremes kept)" if len(idx) < len(ts) else ""
    return _layout(fig, title + shown, height=560)


def book_fills_chart(book: pd.DataFrame, fills: pd.DataFrame, levels: int, title: str, depth: int = DEPTH,
                     lines: int = LINES) -> go.Figure:
    """The recorded book over the whole traded span -- best bid/ask as step lines (at most ``lines``
    points), every displayed level of ``depth`` sampled snapshots as a marker coloured by ln(1 + size) --
    with every fill on top (buys ▲, sells ▼; filled = maker, open = taker; hover: quantity, price, fee,
    level, slippage vs mid). A page with several of these passes smaller budgets so it stays light."""
    if not len(book):
        return _empty(title, "no book rows")
    ts = book["timestamp"].to_numpy(np.int64)
    fig = go.Figure()
    d = even_index(len(book), depth)
    for side, scale, show in (("bid", "Greens", False), ("ask", "Reds", True)):
        px_cols = [f"{side}_price_{i}" for i in range(1, levels + 1) if f"{side}_price_{i}" in book]
        sz_cols = [c.replace("_price_", "_size_") for c in px_cols]
        px = book[px_cols].to_numpy(float)[d].ravel()
        sz = book[sz_cols].to_numpy(float)[d].ravel()
        x = np.repeat(ms(ts[d]), len(px_cols))
        ok = np.isfinite(px) & np.isfinite(sz)
        fig.add_trace(go.Scattergl(
            x=x[ok], y=px[ok], mode="markers", name=f"{side} depth (levels 1-{len(px_cols)})",
            # the colour is a log scale: 4-byte floats draw the same and halve what the page carries
            marker={"symbol": "square", "size": 4, "color": np.log1p(sz[ok]).astype(np.float32), "colorscale": scale,
                    "opacity": 0.55,
                    "showscale": show, "colorbar": {"title": "ln(1+size)", "len": 0.6} if show else None},
            customdata=sz[ok], hovertemplate="%{x}<br>price %{y}<br>size %{customdata}<extra>" + side + "</extra>"))
    i = even_index(len(book), lines)
    for side, colour in (("bid", BUY), ("ask", SELL)):
        fig.add_trace(go.Scattergl(x=ms(ts[i]), y=book[f"{side}_price_1"].to_numpy(float)[i], name=f"best {side}",
                                   mode="lines", line={"color": colour, "shape": "hv", "width": 1.2}))
    if len(fills):
        f = fills.iloc[even_index(len(fills), LINES)]
        slip = slippage_bps(f)
        for sign, name, symbol, colour in ((1, "buy fill", "triangle-up", BUY), (-1, "sell fill", "triangle-down",
                                                                                  SELL)):
            g = f[f.side == sign]
            s = slip[f.side == sign]
            fig.add_trace(go.Scattergl(
                x=ms(g.ts.to_numpy()), y=g.price, mode="markers", name=name,
                marker={"symbol": np.where(g.maker.to_numpy() > 0, symbol, symbol + "-open"), "size": 10,
                        "color": colour, "line": {"width": 1, "color": "black"}},
                customdata=np.c_[g.qty, g.fee, g.level, s, g.maker],
                hovertemplate=("%{x}<br>" + name + " %{customdata[0]} @ %{y}<br>fee %{customdata[1]:.6g}"
                               "<br>level %{customdata[2]}, slippage %{customdata[3]:.2f} bps vs mid"
                               "<br>maker %{customdata[4]}<extra></extra>")))
    fig.update_xaxes(type="date", title_text="time (UTC)")
    fig.update_yaxes(title_text="price")
    shown = f"; {len(fills):,} fills" + (f" ({LINES:,} drawn)" if len(fills) > LINES else "")
    return _layout(fig, f"{title}{shown}", height=560)


def bucket_for(span_ns: int) -> tuple[int, str]:
    """The clock bucket for PnL bars: the smallest of 1 min / 5 min / 15 min / hour / 4 h / day giving at
    most 48 bars over the span -- a one-hour session gets 5-minute bars, not one bar labelled 0."""
    return next(((s, lab) for s, lab in BUCKETS_NS if span_ns / 1e9 / s <= 48), BUCKETS_NS[-1])


def pnl_bucket(ts: np.ndarray, equity: np.ndarray, size_s: int) -> pd.Series:
    """PnL per clock bucket of ``size_s`` seconds (the equity change inside it), indexed by the bucket's
    UTC start in epoch ms. The bars add up to the last equity."""
    d = np.diff(np.asarray(equity, float), prepend=0.0)
    key = (np.asarray(ts, np.int64) // (size_s * 1_000_000_000)) * size_s * 1000
    return pd.Series(d).groupby(key).sum()


def pnl_bars(ts: np.ndarray, equity: np.ndarray, by_session: pd.DataFrame | None, settle: str) -> go.Figure:
    """Left: PnL per clock bucket; right: PnL per session (rows add up to the run's pnl_net)."""
    size, label = bucket_for(int(ts[-1]) - int(ts[0]) if len(ts) else 0)
    ser = pnl_bucket(ts, equity, size)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3],
                        subplot_titles=(f"PnL per {label} (UTC)", "PnL per session"))
    fig.add_trace(go.Bar(x=ser.index.to_numpy(), y=ser.to_numpy(), name=f"per {label}", showlegend=False,
                         marker_color=np.where(ser.to_numpy() >= 0, BUY, SELL)), 1, 1)
    if by_session is not None and len(by_session):
        names = [f"#{int(s)} {str(a)[:16]}" for s, a in zip(by_session["session"], by_session["start"], strict=True)]
        p = by_session["pnl"].to_numpy(float)
        fig.add_trace(go.Bar(x=names, y=p, showlegend=False, marker_color=np.where(p >= 0, BUY, SELL),
                             customdata=by_session["snapshots"],
                             hovertemplate="%{x}<br>pnl %{y:.6g}<br>%{customdata} snapshots<extra></extra>"), 1, 2)
    fig.update_xaxes(type="date", row=1, col=1)
    fig.update_yaxes(title_text=f"PnL ({settle})", row=1, col=1)
    return _layout(fig, "PnL by time", height=360)


def slippage_chart(fills: pd.DataFrame) -> go.Figure:
    title = "slippage vs mid at the fill (bps; > 0 costs)"
    if not len(fills):
        return _empty(title, "no fills")
    s = slippage_bps(fills)
    fig = go.Figure()
    for maker, name, colour in ((0, "taker", SELL), (1, "maker", BUY)):
        part = s[fills.maker.to_numpy() == maker]
        if len(part):
            fig.add_trace(go.Histogram(x=part, name=f"{name} ({len(part):,}, mean {part.mean():.2f})",
                                       marker_color=colour, opacity=0.65, nbinsx=60))
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="bps")
    fig.update_yaxes(title_text="fills")
    return _layout(fig, title, height=340)


def risk_blocks_chart(blocks: Mapping[str, float],
                      title: str = "risk manager: decisions blocked, by reason") -> go.Figure:
    """Every reason the risk manager knows, zeros included (a reason that never fired is information)."""
    if not blocks:
        return _empty(title, "no risk manager")
    items = sorted(blocks.items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[float(v) for _, v in items], y=[k for k, _ in items], orientation="h",
                           marker_color=[SELL if v else "#bbb" for _, v in items], showlegend=False,
                           text=[f"{int(v):,}" for _, v in items], textposition="outside"))
    fig.update_xaxes(title_text="blocked decisions")
    return _layout(fig, title, height=120 + 24 * len(items))


# --- comparisons (mode=analyze) ---------------------------------------------------------------------------

def equity_overlay(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], settle: str,
                   elapsed: bool = False) -> go.Figure:
    """Equity and drawdown of several backtests on one time axis: the clock (UTC), or ``elapsed`` hours from
    each run's own start when the runs cover different times."""
    title = "equity and drawdown, all runs" + (" (from each run's start)" if elapsed else "")
    if not curves:
        return _empty(title, "no runs")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.05, row_heights=[0.65, 0.35])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    for k, (name, (ts, eq)) in enumerate(curves.items()):
        idx = minmax_index(np.asarray(eq, float), LINES // 2)
        c = palette[k % len(palette)]
        t = np.asarray(ts)[idx]
        x = (t - int(np.asarray(ts)[0])) / 3.6e12 if elapsed and len(t) else ms(t)
        fig.add_trace(go.Scattergl(x=x, y=np.asarray(eq)[idx], name=name, legendgroup=name,
                                   line={"color": c, "width": 1.2}), 1, 1)
        fig.add_trace(go.Scattergl(x=x, y=drawdown(eq)[idx], name=name, legendgroup=name,
                                   showlegend=False, line={"color": c, "width": 1}), 2, 1)
    fig.update_yaxes(title_text=f"equity ({settle})", row=1, col=1)
    fig.update_yaxes(title_text=f"drawdown ({settle})", row=2, col=1)
    if elapsed:
        fig.update_xaxes(title_text="hours from each run's start", row=2, col=1)
    else:
        fig.update_xaxes(type="date")
        fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    return _layout(fig, title, height=520)


def grouped_bars(table: pd.DataFrame, title: str, y_title: str) -> go.Figure:
    """One bar group per row of ``table`` (index = category), one bar per column (= run)."""
    if table.empty:
        return _empty(title, "nothing to compare")
    fig = go.Figure([go.Bar(x=[str(i) for i in table.index], y=table[c].to_numpy(float), name=str(c))
                     for c in table.columns])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, height=380)


def slippage_boxes(fills_by_run: Mapping[str, pd.DataFrame]) -> go.Figure:
    title = "slippage vs mid per run (bps; > 0 costs)"
    data = {k: slippage_bps(f) for k, f in fills_by_run.items() if len(f)}
    if not data:
        return _empty(title, "no fills in any run")
    fig = go.Figure([go.Box(y=s.to_numpy(), name=k, boxmean=True) for k, s in data.items()])
    fig.update_yaxes(title_text="bps")
    return _layout(fig, title, height=380, showlegend=False)


# --- the book itself -------------------------------------------------------------------------------------

def depth_profile_chart(book: pd.DataFrame, levels: int) -> go.Figure:
    """Mean displayed size per level, bids to the left (negative level), asks to the right."""
    k = np.arange(1, levels + 1)
    bid = [float(book[f"bid_size_{i}"].mean()) for i in k]
    ask = [float(book[f"ask_size_{i}"].mean()) for i in k]
    fig = go.Figure([go.Bar(x=-k, y=bid, name="bid", marker_color=BUY), go.Bar(x=k, y=ask, name="ask",
                                                                                marker_color=SELL)])
    fig.update_xaxes(title_text="level (bids negative)")
    fig.update_yaxes(title_text="mean size")
    return _layout(fig, "depth profile", height=340)


def spread_imbalance_chart(book: pd.DataFrame, max_points: int = LINES) -> go.Figure:
    """Quoted spread (bps of mid) and touch imbalance (bid-ask)/(bid+ask), mean of 50 snapshots; at most
    ``max_points`` snapshots drawn (both are 4-byte floats: bps and a ratio need no more digits)."""
    i = even_index(len(book), max_points)
    b = book.iloc[i]
    mid = (b.bid_price_1 + b.ask_price_1) / 2
    imb = ((book.bid_size_1 - book.ask_size_1) / (book.bid_size_1 + book.ask_size_1)).rolling(50, min_periods=1).mean()
    x = ms(b.timestamp.to_numpy())
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06)
    spread = ((b.ask_price_1 - b.bid_price_1) / mid * 1e4).to_numpy(np.float32)
    fig.add_trace(go.Scattergl(x=x, y=spread, name="spread (bps)", line={"width": 1}), 1, 1)
    fig.add_trace(go.Scattergl(x=x, y=imb.to_numpy(np.float32)[i], name="imbalance_1 (mean of 50)",
                               line={"width": 1, "color": NEUTRAL}), 2, 1)
    fig.update_yaxes(title_text="spread (bps)", row=1, col=1)
    fig.update_yaxes(title_text="imbalance", row=2, col=1)
    fig.update_xaxes(type="date")
    fig.update_xaxes(title_text="time (UTC)", row=2, col=1)
    shown = f" ({len(i):,} of {len(book):,} snapshots drawn)" if len(i) < len(book) else ""
    return _layout(fig, "spread and touch imbalance" + shown, height=420)


# --- predictions and SHAP --------------------------------------------------------------------------------

def line_chart(x: Sequence[float], ys: Mapping[str, Sequence[float]], title: str, x_title: str, y_title: str,
               log_x: bool = False, date_x: bool = False, diagonal: bool = False) -> go.Figure:
    fig = go.Figure()
    if diagonal:
        fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dash",
                                                                                       "color": "grey"}))
    for name, y in ys.items():
        fig.add_trace(go.Scattergl(x=np.asarray(x), y=np.asarray(y), name=name,
                                   mode="lines" if date_x else "lines+markers"))
    fig.update_xaxes(title_text=x_title, type="log" if log_x else ("date" if date_x else None))
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, height=360)


def confusion_chart(cm: np.ndarray, classes: Sequence[str], title: str) -> go.Figure:
    """Counts, coloured by the share of each actual class (rows)."""
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    text = [[f"{cm[i, j]:,}<br>{norm[i, j]:.0%}" for j in range(len(classes))] for i in range(len(classes))]
    fig = go.Figure(go.Heatmap(z=norm, x=list(classes), y=list(classes), text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=1, colorbar={"title": "row share"}))
    fig.update_xaxes(title_text="predicted")
    fig.update_yaxes(title_text="actual", autorange="reversed")
    return _layout(fig, title, height=360, width=460)


def bars_by_bucket(panels: Mapping[str, pd.Series], title: str, y_title: str) -> go.Figure:
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels))
    for k, ser in enumerate(panels.values(), start=1):
        fig.add_trace(go.Bar(x=[str(i) for i in ser.index], y=ser.to_numpy(float), showlegend=False,
                             marker_color=NEUTRAL), 1, k)
    fig.update_yaxes(title_text=y_title, row=1, col=1)
    return _layout(fig, title, height=340)


def scatter_chart(x: np.ndarray, y: np.ndarray, title: str, x_title: str, y_title: str,
                  color: np.ndarray | None = None) -> go.Figure:
    marker: dict[str, object] = {"size": 4, "opacity": 0.5}
    if color is not None:
        marker.update(color=color, colorscale="RdBu_r", showscale=True)
    fig = go.Figure(go.Scattergl(x=x, y=y, mode="markers", marker=marker, showlegend=False))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, height=360)


def importance_chart(importance: pd.Series, title: str, x_title: str, top: int = 25) -> go.Figure:
    imp = importance.head(top)[::-1]
    fig = go.Figure(go.Bar(x=imp.to_numpy(float), y=[str(i) for i in imp.index], orientation="h",
                           marker_color=NEUTRAL, showlegend=False))
    fig.update_xaxes(title_text=x_title)
    return _layout(fig, title, height=120 + 20 * len(imp))


def shap_swarm(values: np.ndarray, X: pd.DataFrame, order: Sequence[str], top: int = 15) -> go.Figure:
    """The beeswarm: one row per feature (most important on top), a dot per sampled row at its SHAP value,
    coloured by the feature's value as a within-feature percentile (blue low, red high)."""
    fig = go.Figure()
    rng = np.random.default_rng(0)
    names = list(order[:top])
    for k, name in enumerate(names):
        j = X.columns.get_loc(name)
        v = values[:, j]
        pct = X[name].rank(pct=True).to_numpy()
        y = len(names) - 1 - k + rng.uniform(-0.3, 0.3, len(v))
        fig.add_trace(go.Scattergl(
            x=v, y=y, mode="markers", showlegend=False, name=name,
            marker={"size": 4, "color": pct, "colorscale": "RdBu_r", "cmin": 0, "cmax": 1, "opacity": 0.6,
                    "showscale": k == 0, "colorbar": {"title": "feature value<br>(percentile)"}},
            customdata=X[name].to_numpy(), hovertemplate=name + "<br>SHAP %{x:.4f}<br>value %{customdata:.4g}"
                                                              "<extra></extra>"))
    fig.update_yaxes(tickvals=list(range(len(names))), ticktext=names[::-1])
    fig.update_xaxes(title_text="SHAP value (impact on the model output)")
    return _layout(fig, "SHAP values per feature (beeswarm)", height=140 + 28 * len(names))
