"""``mode=analyze``: model analysis (predictions + SHAP, logged to the model's own run) and a
backtest report (one run or a comparison: by ids, by sweep parent, or experiment + filter) written
as one self-contained HTML artifact, so a researcher looks at pictures in the MLflow UI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from l2exp.analysis.interactive import interactive_book_html  # noqa: E402
from l2exp.analysis.plots import book_heatmap, depth_profile, figure_png, spread_imbalance  # noqa: E402
from l2exp.errors import UserError  # noqa: E402
from l2exp.tracking import log as tlog


def analyse_model(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.analysis.predictions import analyse
    from l2exp.analysis.shap_analysis import shap_figures
    from l2exp.features.table import build_feature_table
    from l2exp.tracking.registry import load_bundle

    a = cfg.mode
    bundle = load_bundle(str(a.model_uri), levels_available=int(cfg.levels))
    ft = build_feature_table(cfg, bundle.feature_set)
    ready = ft.ready.to_numpy()
    rows = np.flatnonzero(ready)
    seg = bundle.meta.get("segments") or {}
    if seg.get("test_start_ts") is not None:  # the model's own test segment: rows it never saw
        test = rows[ft.book["timestamp"].to_numpy()[rows] >= int(seg["test_start_ts"])]
    else:  # a model without recorded segments: the latest rows, as the chrono test split
        test = rows[int(len(rows) * (1 - float(a.test_fraction))):]
    if not len(test):
        raise UserError(f"the data has no row in the test segment of {a.model_uri}", where="data / mode.model_uri",
                        fix="Analyse the model on the data it was trained on (its test segment is the last part).")
    book = ft.book.iloc[test].reset_index(drop=True)
    X = ft.features.iloc[test].reset_index(drop=True)
    client = MlflowClient()
    logged = []
    if bundle.task != "regression":
        figs, metrics = analyse(book, X, bundle.predict_proba(X), bundle.labels, bundle.classes)
        for name, fig in figs:
            client.log_figure(bundle.run_id, fig, f"analysis/{name}")
            plt.close(fig)
            logged.append(f"analysis/{name}")
        for k, v in metrics.items():
            if np.isfinite(v):
                client.log_metric(bundle.run_id, f"analysis_{k}", v)
    sample = X.sample(min(int(a.shap_sample), len(X)), random_state=int(cfg.seed))
    figs, imp = shap_figures(bundle.native, sample, bundle.feature_set.families())
    for name, fig in figs:
        client.log_figure(bundle.run_id, fig, f"shap/{name}")
        plt.close(fig)
        logged.append(f"shap/{name}")
    client.log_text(bundle.run_id, imp.to_csv(), "shap/shap_importance.csv")
    return {"model_run_id": bundle.run_id, "model_uri": str(a.model_uri), "figures": logged,
            "top_features": list(imp.index[:10])}


def find_runs(cfg: DictConfig) -> list[Any]:
    a = cfg.mode
    client = MlflowClient()
    if a.get("backtest_runs"):
        return [client.get_run(r) for r in a.backtest_runs]
    if a.get("experiment"):
        exps = [client.get_experiment_by_name(str(a.experiment))]
        if exps[0] is None:
            raise UserError(f"no experiment {a.experiment!r}", where="mode.experiment",
                            fix="Run a backtest first: l2exp mode=backtest (or mode=pipeline), or leave "
                                "mode.experiment unset to search every l2exp experiment.")
    else:  # backtests live in <prefix>-backtest (mode=backtest) and <prefix>-pipeline (mode=pipeline)
        prefix = str(cfg.tracking.experiment_prefix)
        exps = [e for e in client.search_experiments() if e.name.startswith(prefix + "-")]
    flt = ["tags.`l2exp.mode` = 'backtest'"]
    if a.get("parent_run_id"):
        flt.append(f"tags.`mlflow.parentRunId` = '{a.parent_run_id}'")
    if a.get("filter"):
        flt.append(str(a.filter))
    runs = client.search_runs([e.experiment_id for e in exps], " and ".join(flt),
                              order_by=["attributes.start_time DESC"], max_results=int(a.max_runs))
    if not runs:
        where = a.experiment or ", ".join(e.name for e in exps) or "no l2exp experiment"
        raise UserError(f"no backtest run found in {where} ({' and '.join(flt)})", where="mode",
                        fix="Run a backtest first, or point mode.backtest_runs / mode.parent_run_id at one.")
    return runs


def _attribution(pos: pd.DataFrame, book: pd.DataFrame | None) -> dict[str, pd.Series]:
    eq = pos.set_index(pd.to_datetime(pos.ts)).equity
    d = eq.diff().fillna(0.0)
    out = {"by hour (UTC)": d.groupby(d.index.hour).sum()}
    mid = pos.mid.to_numpy()
    vol = pd.Series(np.log(mid)).diff().abs().rolling(200, min_periods=10).mean().to_numpy() * 1e4
    out["by volatility quintile"] = pd.Series(d.to_numpy()).groupby(
        pd.qcut(pd.Series(vol).fillna(0), 5, labels=False, duplicates="drop").to_numpy()).sum()
    if book is not None and len(book) == len(pos):
        spread = ((book.ask_price_1 - book.bid_price_1) / ((book.ask_price_1 + book.bid_price_1) / 2) * 1e4)
        out["by spread quintile"] = pd.Series(d.to_numpy()).groupby(
            pd.qcut(spread.reset_index(drop=True), 5, labels=False, duplicates="drop").to_numpy()).sum()
    return out


def backtest_report(cfg: DictConfig) -> tuple[str, dict[str, Any]]:
    from l2exp.features.table import open_store

    runs = find_runs(cfg)
    rows, sections, equity = [], [], {}
    interactive: dict[str, str] = {}
    store = open_store(cfg)
    for r in runs:
        rid = r.info.run_id
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(f"runs:/{rid}/tables", dst_path=tmp)
            fills = pd.read_parquet(Path(local) / "fills.parquet")
            pos = pd.read_parquet(Path(local) / "positions.parquet")
        symbol = r.data.tags.get("l2exp.symbol")
        book = store.read(symbols=[symbol]) if symbol else None
        m = r.data.metrics
        slip = fills.side * (fills.price - fills.mid) / fills.mid * 1e4 if len(fills) else pd.Series(dtype=float)
        rows.append({"run": rid[:8], "name": r.info.run_name, "risk": r.data.tags.get("l2exp.risk"),
                     "pnl_net": m.get("pnl_net"), "fees": m.get("fees"), "sharpe": m.get("sharpe"),
                     "max_drawdown": m.get("max_drawdown"), "fills": m.get("n_fills"), "orders": m.get("n_orders"),
                     "maker_share": float(fills.maker.mean()) if len(fills) else np.nan,
                     "slippage_bps_mean": float(slip.mean()) if len(slip) else np.nan,
                     "slippage_bps_p95": float(slip.quantile(0.95)) if len(slip) else np.nan,
                     **{k.replace("risk_block_", "block_"): v for k, v in m.items()
                        if k.startswith("risk_block_") and v}})
        equity[f"{rid[:8]} {r.data.tags.get('l2exp.risk', '')}"] = pos.set_index(pd.to_datetime(pos.ts)).equity
        attr = _attribution(pos, book)
        fig, axes = plt.subplots(1, len(attr), figsize=(4 * len(attr), 3))
        for ax, (name, ser) in zip(np.atleast_1d(axes), attr.items(), strict=True):
            ax.bar(ser.index.astype(str), ser.to_numpy(), color=np.where(ser.to_numpy() >= 0, "#2a6f2a", "#b33"))
            ax.set_title(f"PnL {name}", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.tight_layout()
        parts = [f"<h3>run {rid} ({r.info.run_name})</h3>", f"<img src='data:image/png;base64,{figure_png(fig)}'>"]
        if book is not None and len(book):
            heat = book_heatmap(book, int(cfg.levels), fills, title=f"{symbol}: book and fills")
            parts.append(f"<img src='data:image/png;base64,{figure_png(heat)}'>")
            interactive[f"interactive/book_{rid[:8]}.html"] = interactive_book_html(
                book, fills, title=f"{symbol}: book and fills (run {rid[:8]})")
        sections.append("\n".join(parts))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name, ser in equity.items():
        ax.plot(ser.index, ser.to_numpy(), lw=0.8, label=name)
    ax.set_xlabel("time")
    ax.set_ylabel("equity (quote)")
    ax.legend(fontsize=7)
    table = pd.DataFrame(rows)
    sym0 = runs[0].data.tags.get("l2exp.symbol")
    book0 = store.read(symbols=[sym0]) if sym0 else None
    extra = ""
    if book0 is not None and len(book0):
        extra = (f"<img src='data:image/png;base64,{figure_png(depth_profile(book0, int(cfg.levels)))}'>"
                 f"<img src='data:image/png;base64,{figure_png(spread_imbalance(book0))}'>")
    html = ("<html><head><meta charset='utf-8'><title>l2exp backtest report</title><style>body{font-family:sans-serif}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:12px}</style></head>"
            f"<body><h2>Backtest report: {len(runs)} run(s), data={cfg.data.name}</h2>"
            f"{table.to_html(index=False, float_format=lambda v: f'{v:.4g}')}"
            f"<h3>equity</h3><img src='data:image/png;base64,{figure_png(fig)}'>{extra}"
            + "".join(sections) + "</body></html>")
    return html, {"runs": [r.info.run_id for r in runs], "table": rows, "interactive": interactive}


def run_analyze(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure, run_url, ui_hint

    uri = configure(cfg)
    what = list(cfg.mode.what)
    out: dict[str, Any] = {"mode": "analyze"}
    if "model" in what:
        out["model"] = analyse_model(cfg)
    if "backtest" in what:
        html, info = backtest_report(cfg)
        with tracked_run(cfg, "analyze", run_name=f"report {len(info['runs'])} backtest run(s)") as run:
            tlog.log_text(html, "report.html")
            for path, page in info.pop("interactive").items():  # zoomable views, one per run
                tlog.log_text(page, path)
            tlog.log_text(json.dumps(info, indent=1, default=str), "report.json")
            out["report_run_id"] = run.info.run_id
        out["backtest_runs"] = info["runs"]
    print_table("analyze", [("model run (analysis/, shap/)", out.get("model", {}).get("model_run_id", "-")),
                            ("report run (report.html)", out.get("report_run_id", "-")),
                            ("top features", ", ".join(out.get("model", {}).get("top_features", [])[:5]))])
    if out.get("report_run_id"):
        console.print(f"report: {run_url(out['report_run_id'])}")
    console.print(f"open them: {ui_hint(uri)}")
    write_summary(out)
    return out
