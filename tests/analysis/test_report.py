"""mode=analyze on real runs in a temporary tracking store: every figure non-empty with the expected
axes; the HTML report self-contained."""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import mlflow
import numpy as np
from mlflow import MlflowClient

from l2exp.analysis import charts
from l2exp.analysis.backtest_page import BacktestView
from l2exp.modes.analyze import run_analyze
from l2exp.modes.backtest import run_backtest
from l2exp.modes.promote import run_promote
from l2exp.modes.train import run_train
from tests.conftest import make_cfg

SMALL = ["data.reader.n_snapshots=20000", "features=minimal"]


def test_analyze_model_and_backtest_report(workdir):
    cfg = lambda *a: make_cfg([f"workdir={workdir}", *SMALL, *a])  # noqa: E731
    run_train(cfg("mode=train", "model.n_estimators=40"))
    run_promote(cfg("mode=promote", "mode.require_beat_baseline=false"))
    run_backtest(cfg("mode=backtest"))
    run_backtest(cfg("mode=backtest", "risk=aggressive"))
    s = run_analyze(cfg("mode=analyze", "mode.shap_sample=300"))
    mlflow.set_tracking_uri(f"sqlite:///{workdir}/mlruns/mlflow.db")
    c = MlflowClient()
    model_run = s["model"]["model_run_id"]
    arts = {a.path for d in ("analysis", "shap") for a in c.list_artifacts(model_run, d)}
    for name in ("shap/shap_importance.png", "shap/shap_beeswarm.png"):  # quick previews
        assert name in arts, name
        img = mpimg.imread(mlflow.artifacts.download_artifacts(f"runs:/{model_run}/{name}"))
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01, name  # non-empty picture
    pred = mlflow.artifacts.load_text(f"runs:/{model_run}/analysis/predictions.html")
    for title in ("calibration (deciles of P)", "horizon 50 events", "accuracy by regime quintile", "signal decay",
                  "rolling accuracy", "predicted signal vs realised move"):
        assert title in pred, title
    shap_page = mlflow.artifacts.load_text(f"runs:/{model_run}/shap/shap.html")
    assert "SHAP values per feature (beeswarm)" in shap_page and shap_page.count("dependence: ") >= 3
    assert len(s["backtest_runs"]) == 2
    html = mlflow.artifacts.load_text(f"runs:/{s['report_run_id']}/report.html")
    assert html.count("class='chart'") >= 8 and "pnl_net" in html and "<script src" not in html
    assert "moderate</td>" in html and "aggressive</td>" in html  # the side-by-side table
    for rid in s["backtest_runs"]:  # every backtest run carries its own interactive report
        own = mlflow.artifacts.load_text(f"runs:/{rid}/report.html")
        assert own.count("class='chart'") == 5 and "fills over the book" in own
    # the comparison's numbers are the runs' own: PnL and fills against the engine's counters, and the
    # per-clock-bucket bars (rebuilt from the logged equity) against pnl_net
    rows = json.loads(mlflow.artifacts.load_text(f"runs:/{s['report_run_id']}/report.json"))["table"]
    for rid, row in zip(s["backtest_runs"], rows, strict=True):
        run = c.get_run(rid)
        m = run.data.metrics
        assert row["run"] == BacktestView.label(rid, run.data.tags["l2exp.risk"])
        assert row["fills"] == m["n_fills"] and row["pnl_net"] == m["pnl_net"]
        view = BacktestView.from_run(run)
        size, _ = charts.bucket_for(int(view.ts[-1] - view.ts[0]))
        assert np.isclose(charts.pnl_bucket(view.ts, view.equity, size).sum(), m["pnl_net"])
        assert np.isclose(view.by_session.pnl.sum(), m["pnl_net"])
