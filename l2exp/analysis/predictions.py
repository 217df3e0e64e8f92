"""Prediction analysis of a registered model on its test rows: calibration, confusion per horizon,
accuracy by spread / volatility / imbalance bucket, signal decay over horizons (rank IC), rolling
accuracy. Every figure returned as (name, matplotlib figure)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from l2exp.analysis.plots import confusion_figure  # noqa: E402
from l2exp.labels import LabelSpec  # noqa: E402


def analyse(book: pd.DataFrame, features: pd.DataFrame, proba: np.ndarray, spec: LabelSpec,
            classes: list[str]) -> tuple[list[tuple[str, plt.Figure]], dict[str, float]]:
    figs: list[tuple[str, plt.Figure]] = []
    metrics: dict[str, float] = {}
    lab = spec.compute(book)
    ok = lab.valid
    y = lab.y[ok].astype(int)
    p = proba[ok]
    pred = p.argmax(1)
    # calibration of P(up) (last class)
    up = p[:, -1]
    hit = (y == len(classes) - 1).astype(float)
    bins = np.clip((up * 10).astype(int), 0, 9)
    cal = pd.DataFrame({"bin": bins, "p": up, "y": hit}).groupby("bin").mean()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.plot(cal.p, cal.y, "o-")
    ax.set_xlabel(f"predicted P({classes[-1]})")
    ax.set_ylabel("observed frequency")
    ax.set_title("calibration", fontsize=9)
    fig.tight_layout()
    figs.append(("calibration.png", fig))
    # confusion per horizon
    for h in (spec.horizon / 5, spec.horizon, spec.horizon * 4):
        s2 = LabelSpec(h if spec.unit == "ms" else max(1, round(h)), spec.unit, spec.kind, spec.threshold,
                       spec.threshold_unit)
        l2 = s2.compute(book)
        m = l2.valid
        figs.append((f"confusion_h{h:g}.png", confusion_figure(l2.y[m].astype(int), proba[m].argmax(1), classes,
                                                               f"horizon {h:g} {spec.unit}")))
        metrics[f"accuracy_h{h:g}"] = float((l2.y[m] == proba[m].argmax(1)).mean())
    # accuracy by regime bucket
    mid = (book.bid_price_1 + book.ask_price_1).to_numpy() / 2
    spread = (book.ask_price_1 - book.bid_price_1).to_numpy() / mid * 1e4
    vol = pd.Series(np.log(mid)).diff().abs().rolling(200, min_periods=20).mean().to_numpy() * 1e4
    imb = ((book.bid_size_1 - book.ask_size_1) / (book.bid_size_1 + book.ask_size_1)).to_numpy()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (name, v) in zip(axes, (("spread (bps)", spread), ("volatility (bps)", vol),
                                    ("imbalance_1", imb)), strict=True):
        q = pd.qcut(pd.Series(v[ok]), 5, duplicates="drop")
        acc = pd.Series(pred == y).groupby(q.to_numpy(), observed=True).mean()
        ax.bar(range(len(acc)), acc.to_numpy(), color="#3b75af")
        ax.set_xticks(range(len(acc)), [f"{iv.left:.2g}" for iv in acc.index], fontsize=7)
        ax.set_xlabel(f"{name} quintile (lower edge)")
        ax.set_ylabel("accuracy")
    fig.tight_layout()
    figs.append(("accuracy_by_bucket.png", fig))
    # signal decay: rank IC of P(up) - P(down) against the future move at several horizons, per symbol
    # (count-weighted mean): pooled across instruments it would reward knowing which symbol drifted
    signal = proba[:, -1] - proba[:, 0]
    hs = [max(1, round(spec.horizon * f)) for f in (0.1, 0.25, 0.5, 1, 2, 4, 8)]
    sym = book["symbol"].astype(str).to_numpy()
    ics = []
    for h in hs:
        r = LabelSpec(h, spec.unit, "regression").compute(book)
        vals, weights = [], []
        for s_ in np.unique(sym):
            m = r.valid & (sym == s_)
            if m.sum() > 10 and np.std(signal[m]) > 0 and np.std(r.y[m]) > 0:
                vals.append(spearmanr(signal[m], r.y[m]).statistic)
                weights.append(m.sum())
        ics.append(float(np.average(vals, weights=weights)) if vals else np.nan)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(hs, ics, "o-")
    ax.set_xscale("log")
    ax.set_xlabel(f"horizon ({spec.unit})")
    ax.set_ylabel("rank IC")
    ax.set_title("signal decay", fontsize=9)
    fig.tight_layout()
    figs.append(("signal_decay.png", fig))
    metrics.update({f"ic_h{h}": float(v) for h, v in zip(hs, ics, strict=True)})
    # rolling accuracy
    roll = pd.Series((pred == y).astype(float)).rolling(max(50, len(y) // 50), min_periods=10).mean()
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(pd.to_datetime(book.timestamp.to_numpy()[ok]), roll.to_numpy(), lw=0.7)
    ax.set_xlabel("time")
    ax.set_ylabel("rolling accuracy")
    fig.tight_layout()
    figs.append(("rolling_accuracy.png", fig))
    # predicted probability vs realised move
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(signal[ok][:: max(1, ok.sum() // 3000)], lab.future_ret_bps[ok][:: max(1, ok.sum() // 3000)], s=3,
               alpha=0.4)
    ax.set_xlabel("P(up) - P(down)")
    ax.set_ylabel("realised move (bps)")
    fig.tight_layout()
    figs.append(("probability_vs_move.png", fig))
    return figs, metrics
