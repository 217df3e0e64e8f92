"""``mode=analyze``: the model's prediction and SHAP pages (:mod:`l2exp.analysis.predictions`,
:mod:`l2exp.analysis.shap_analysis`) and a comparison page of several backtest runs
(:mod:`l2exp.analysis.backtest_page`), logged to one tracked run."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from omegaconf import DictConfig

from l2exp.analysis.backtest_page import BacktestView, comparison_page
from l2exp.analysis.pages import page
from l2exp.errors import UserError
from l2exp.tracking import log as tlog


def analyse_model(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.analysis.predictions import analyse
    from l2exp.analysis.shap_analysis import shap_figures
    from l2exp.modes.build import feature_table as build_feature_table
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
    title = f"{a.model_uri} (run {bundle.run_id}) on its test rows"
    sub = f"{len(book):,} rows from {pd.Timestamp(int(book.timestamp.iloc[0]), tz='UTC')}; data={cfg.data.name}"
    if bundle.task != "regression":
        sections, metrics = analyse(book, X, bundle.predict_proba(X), bundle.labels, bundle.classes)
        client.log_text(bundle.run_id, page(f"predictions: {title}", sections, sub), "analysis/predictions.html")
        logged.append("analysis/predictions.html")
        for k, v in metrics.items():
            if np.isfinite(v):
                client.log_metric(bundle.run_id, f"analysis_{k}", v)
    sample = X.sample(min(int(a.shap_sample), len(X)), random_state=int(cfg.seed))
    sections, previews, imp = shap_figures(bundle.native, sample, bundle.feature_set.families())
    client.log_text(bundle.run_id, page(f"SHAP: {title}", sections, f"{len(sample):,} sampled rows; {sub}"),
                    "shap/shap.html")
    logged.append("shap/shap.html")
    for name, fig in previews:
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
                              order_by=["attributes.start_time DESC"], max_results=int(a.max_runs) * 10)
    if not runs:
        where = a.experiment or ", ".join(e.name for e in exps) or "no l2exp experiment"
        raise UserError(f"no backtest run found in {where} ({' and '.join(flt)})", where="mode",
                        fix="Run a backtest first, or point mode.backtest_runs / mode.parent_run_id at one.")
    return runs


def comparable(runs: list[Any], data_name: str, explicit: bool, limit: int) -> tuple[list[Any], list[tuple[Any, str]]]:
    """The runs one page can compare, and those left out with the reason.

    A comparison of a BitMEX XBTUSD backtest settled in XBT with synthetic runs in USD put both on one
    y-axis ("equity (USD, XBT)") and one time axis spanning four years. Kept: the backtests of this
    command's ``data=`` (unless runs were named one by one, ``mode.backtest_runs``), then those settled
    in the currency most of them share; at most ``limit``, newest first."""
    left: list[tuple[Any, str]] = []
    kept = []
    for r in runs:
        d = r.data.tags.get("l2exp.data", "?")
        if not explicit and d != data_name:
            left.append((r, f"data={d}, not this command's data={data_name}"))
        else:
            kept.append(r)
    currency = {r.info.run_id: r.data.tags.get("l2exp.settle_currency", "?") for r in kept}
    if kept:  # the currency most of them share (a tie: the newest run's)
        main = Counter(currency.values()).most_common(1)[0][0]
        left += [(r, f"settles in {currency[r.info.run_id]}, the page's runs in {main}") for r in kept
                 if currency[r.info.run_id] != main]
        kept = [r for r in kept if currency[r.info.run_id] == main]
    for r in kept[limit:]:
        left.append((r, f"older than the {limit} newest (mode.max_runs)"))
    return kept[:limit], left


def backtest_report(cfg: DictConfig) -> tuple[str, dict[str, Any]]:
    """The comparison page of the comparable runs ``find_runs`` finds (:func:`comparable`), rebuilt from their
    logged tables; the runs left out are named on the page with the reason."""
    from l2exp.modes.build import store_with_data as open_store

    found = find_runs(cfg)
    runs, left = comparable(found, str(cfg.data.name), bool(cfg.mode.get("backtest_runs")), int(cfg.mode.max_runs))
    if not runs:
        others = sorted({r.data.tags.get("l2exp.data", "?") for r in found})
        raise UserError(f"no backtest of data={cfg.data.name} to compare (found backtests of {', '.join(others)})",
                        where="data", fix=f"Run the analysis with the data of those runs (data={others[0]}), or "
                                          "name runs one by one: mode.backtest_runs=[<run id>,...]")
    views = [BacktestView.from_run(r) for r in runs]
    store = open_store(cfg)
    books = {}
    for sym in dict.fromkeys(v.symbol for v in views):
        book = store.read(symbols=[sym])
        if len(book):
            books[sym] = book
    left_out = [f"{r.info.run_name or r.info.run_id} ({r.info.run_id[:8]}): {why}" for r, why in left]
    html = comparison_page(views, books, int(cfg.levels), f"backtest comparison: {len(runs)} run(s), "
                                                          f"data={cfg.data.name}", left_out=left_out)
    return html, {"runs": [r.info.run_id for r in runs], "left_out": left_out,
                  "table": [v.headline() for v in views]}


def run_analyze(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.modes.build import run_context, tracking_settings
    from l2exp.summary import print_table, write_summary
    from l2exp.tracking.runs import tracked_run
    from l2exp.tracking.setup import configure, print_links, run_url

    configure(tracking_settings(cfg))
    what = list(cfg.mode.what)
    out: dict[str, Any] = {"mode": "analyze"}
    if "model" in what:
        out["model"] = analyse_model(cfg)
    if "backtest" in what:
        html, info = backtest_report(cfg)
        with tracked_run(run_context(cfg), "analyze", run_name=f"report {len(info['runs'])} backtest run(s)") as run:
            tlog.log_text(html, "report.html")
            tlog.log_text(json.dumps(info, indent=1, default=str), "report.json")
            out["report_run_id"] = run.info.run_id
        out["backtest_runs"] = info["runs"]
        out["left_out"] = info["left_out"]
    print_table("analyze", [("model run (analysis/, shap/)", out.get("model", {}).get("model_run_id", "-")),
                            ("report run (report.html: comparison)", out.get("report_run_id", "-")),
                            ("backtests compared / left out (named on the page, with why)",
                             f"{len(out.get('backtest_runs', []))} / {len(out.get('left_out', []))}"),
                            ("top features", ", ".join(out.get("model", {}).get("top_features", [])[:5]))])
    links = []
    if out.get("model"):
        rid = out["model"]["model_run_id"]
        links += [("predictions", run_url(rid, "analysis/predictions.html")), ("SHAP", run_url(rid, "shap/shap.html"))]
    if out.get("report_run_id"):
        links.append(("backtest comparison", run_url(out["report_run_id"], "report.html")))
    print_links(links)
    write_summary(out)
    return out
