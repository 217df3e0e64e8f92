"""Static plots (matplotlib, Agg backend) returned as figures for ``mlflow.log_figure``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402


def confusion_figure(y: np.ndarray, pred: np.ndarray, class_names: list[str], title: str) -> plt.Figure:
    cm = confusion_matrix(y, pred, labels=list(range(len(class_names))))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series, title: str, top: int = 25) -> plt.Figure:
    imp = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy(), color="#3b75af")
    ax.set_xlabel("importance (gain)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def equity_figure(res) -> plt.Figure:  # noqa: ANN001 - BacktestResult
    t = pd.to_datetime(res.ts)
    eq = pd.Series(res.equity, index=t)
    dd = eq - eq.cummax()
    fig, axes = plt.subplots(3, 1, figsize=(8, 6), sharex=True, height_ratios=[2, 1, 1])
    axes[0].plot(t, res.equity, lw=0.8, color="#2a6f2a")
    axes[0].set_ylabel("equity (quote)")
    axes[1].fill_between(t, dd.to_numpy(), 0, color="#b33", lw=0)
    axes[1].set_ylabel("drawdown")
    axes[2].plot(t, res.position, lw=0.8, color="#345")
    axes[2].set_ylabel("position")
    axes[0].set_title(f"{res.symbol}: equity, drawdown, position", fontsize=9)
    fig.tight_layout()
    return fig


def fills_figure(book: pd.DataFrame, res, levels: int, window: int = 3000) -> plt.Figure:  # noqa: ANN001
    """Best bid/ask and fills (buys ^, sells v) over the busiest stretch of the backtest."""
    f = res.fills
    n = len(book)
    centre = int(np.searchsorted(book.timestamp.to_numpy(), f.ts.iloc[len(f) // 2])) if len(f) else n // 2
    lo, hi = max(0, centre - window // 2), min(n, centre + window // 2)
    part = book.iloc[lo:hi]
    t = pd.to_datetime(part.timestamp)
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.step(t, part.bid_price_1, where="post", lw=0.7, color="#2a6f2a", label="best bid")
    ax.step(t, part.ask_price_1, where="post", lw=0.7, color="#b33", label="best ask")
    if len(f):
        sel = f[(f.ts >= part.timestamp.iloc[0]) & (f.ts <= part.timestamp.iloc[-1])]
        buys, sells = sel[sel.side > 0], sel[sel.side < 0]
        for part_f, mark, colour, label in ((buys, "^", "#1b5e20", "buy fill"), (sells, "v", "#8e0000", "sell fill")):
            ax.scatter(pd.to_datetime(part_f.ts), part_f.price, marker=mark, s=18, color=colour, label=label, zorder=3)
    ax.set_ylabel("price")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{res.symbol}: fills over the book", fontsize=9)
    fig.tight_layout()
    return fig
