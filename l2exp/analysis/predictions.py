"""Prediction analysis of a registered model on its test rows: calibration, confusion per horizon,
accuracy by spread / volatility / imbalance bucket, signal decay over horizons (rank IC), rolling
accuracy, predicted signal vs realised move. Returned as (section, Plotly figures) for one
interactive page (``analysis/predictions.html``) and the figures' numbers as metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from scipy.stats import spearmanr
from sklearn.metrics import confusion_matrix

from l2exp.analysis import charts
from l2exp.labels import LabelSpec


def analyse(book: pd.DataFrame, features: pd.DataFrame, proba: np.ndarray, spec: LabelSpec,
            classes: list[str]) -> tuple[list[tuple[str, list[go.Figure]]], dict[str, float]]:
    sections: list[tuple[str, list[go.Figure]]] = []
    metrics: dict[str, float] = {}
    lab = spec.compute(book)
    ok = lab.valid
    y = lab.y[ok].astype(int)
    p = proba[ok]
    pred = p.argmax(1)
    # calibration of P(last class): mean predicted probability vs observed frequency per decile
    up = p[:, -1]
    hit = (y == len(classes) - 1).astype(float)
    cal = pd.DataFrame({"bin": np.clip((up * 10).astype(int), 0, 9), "p": up, "y": hit}).groupby("bin").mean()
    sections.append(("calibration", [charts.line_chart(cal.p, {"model": cal.y}, "calibration (deciles of P)",
                                                       f"predicted P({classes[-1]})", "observed frequency",
                                                       diagonal=True)]))
    # confusion per horizon: the label's horizon, a fifth of it and four times it
    figs = []
    for h in (spec.horizon / 5, spec.horizon, spec.horizon * 4):
        s2 = LabelSpec(h if spec.unit == "ms" else max(1, round(h)), spec.unit, spec.kind, spec.threshold,
                       spec.threshold_unit)
        l2 = s2.compute(book)
        m = l2.valid
        cm = confusion_matrix(l2.y[m].astype(int), proba[m].argmax(1), labels=list(range(len(classes))))
        figs.append(charts.confusion_chart(cm, classes, f"horizon {h:g} {spec.unit}"))
        metrics[f"accuracy_h{h:g}"] = float((l2.y[m] == proba[m].argmax(1)).mean())
    sections.append(("confusion per horizon", figs))
    # accuracy by regime bucket (quintiles; label = lower edge)
    mid = (book.bid_price_1 + book.ask_price_1).to_numpy() / 2
    spread = (book.ask_price_1 - book.bid_price_1).to_numpy() / mid * 1e4
    vol = pd.Series(np.log(mid)).diff().abs().rolling(200, min_periods=20).mean().to_numpy() * 1e4
    imb = ((book.bid_size_1 - book.ask_size_1) / (book.bid_size_1 + book.ask_size_1)).to_numpy()
    panels = {}
    for name, v in (("spread (bps)", spread), ("volatility (bps)", vol), ("imbalance_1", imb)):
        q = pd.qcut(pd.Series(v[ok]), 5, duplicates="drop")
        acc = pd.Series(pred == y).groupby(q.to_numpy(), observed=True).mean()
        acc.index = [f"{iv.left:.3g}" for iv in acc.index]
        panels[f"{name} quintile"] = acc
    sections.append(("accuracy by regime", [charts.bars_by_bucket(panels, "accuracy by regime quintile (lower edge)",
                                                                  "accuracy")]))
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
    metrics.update({f"ic_h{h}": float(v) for h, v in zip(hs, ics, strict=True)})
    roll = pd.Series((pred == y).astype(float)).rolling(max(50, len(y) // 50), min_periods=10).mean()
    i = charts.even_index(len(roll), charts.LINES)
    step = max(1, int(ok.sum()) // 3000)
    sections.append(("signal", [
        charts.line_chart(hs, {"rank IC": ics}, "signal decay: rank IC of P(up) - P(down) vs the future move",
                          f"horizon ({spec.unit})", "rank IC", log_x=True),
        charts.line_chart(charts.ms(book.timestamp.to_numpy()[ok][i]), {"rolling accuracy": roll.to_numpy()[i]},
                          "rolling accuracy", "time (UTC)", "accuracy", date_x=True),
        charts.scatter_chart(signal[ok][::step], lab.future_ret_bps[ok][::step], "predicted signal vs realised move",
                             "P(up) - P(down)", "realised move (bps)")]))
    return sections, metrics
