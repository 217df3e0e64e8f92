"""mode=analyze on real runs in a temporary tracking store: every figure non-empty with the expected
axes; the HTML report self-contained."""

from __future__ import annotations

import matplotlib.image as mpimg
import mlflow
import pandas as pd
from mlflow import MlflowClient

from l2exp.analysis.plots import book_heatmap, depth_profile
from l2exp.analysis.report import run_analyze
from l2exp.backtest.run import run_backtest
from l2exp.models.train import run_train
from l2exp.tracking.registry import run_promote
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
    for name in ("analysis/calibration.png", "analysis/signal_decay.png", "analysis/accuracy_by_bucket.png",
                 "analysis/rolling_accuracy.png", "analysis/probability_vs_move.png", "shap/shap_importance.png",
                 "shap/shap_beeswarm.png", "shap/shap_families.png"):
        assert name in arts, name
        img = mpimg.imread(mlflow.artifacts.download_artifacts(f"runs:/{model_run}/{name}"))
        assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0.01, name  # non-empty picture
    assert any(a.startswith("shap/shap_dependence_") for a in arts)
    assert len(s["backtest_runs"]) == 2
    html = mlflow.artifacts.load_text(f"runs:/{s['report_run_id']}/report.html")
    assert html.count("data:image/png;base64,") >= 5 and "pnl_net" in html and "http" not in html.replace(
        "http-equiv", "")  # self-contained: no external resource
    assert "<td>moderate</td>" in html and "<td>aggressive</td>" in html  # the side-by-side table
    pages = [a.path for a in c.list_artifacts(s["report_run_id"], "interactive")]
    assert len(pages) == 2
    page = mlflow.artifacts.load_text(f"runs:/{s['report_run_id']}/{pages[0]}")
    assert "<canvas" in page and "onwheel" in page and '"fills": [[' in page and "src=" not in page


def test_plots_have_the_expected_axes(workdir):
    book = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=50, freq="100ms").astype("int64"),
                         **{f"bid_price_{i}": 100.0 - i for i in range(1, 4)},
                         **{f"ask_price_{i}": 100.0 + i for i in range(1, 4)},
                         **{f"bid_size_{i}": 5.0 * i for i in range(1, 4)},
                         **{f"ask_size_{i}": 4.0 * i for i in range(1, 4)}})
    fig = book_heatmap(book, 3)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time" and ax.get_ylabel() == "price" and len(ax.collections) >= 1
    fig = depth_profile(book, 3)
    assert fig.axes[0].get_ylabel() == "mean size" and len(fig.axes[0].patches) == 6
