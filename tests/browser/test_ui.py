"""What a researcher sees after the demo, checked in Chromium: the links l2exp printed open the MLflow
UI on the runs table with the metrics that matter, two runs compare in three clicks, every backtest's
own report opens in the UI's artifact preview, and every report page (per-run, comparison, predictions,
SHAP) renders all its charts offline with no console error; zoom works on the book chart."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from l2exp.analysis.pages import _plotly_js
from tests.browser.conftest import BITMEX_DAY
from tests.conftest import SHARED

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]

PAGE_DATA_BYTES = 3_000_000  # a report's own data beside plotly.js: thinned series, not every snapshot
RUN_REPORT = ["equity, drawdown and position", "book and fills", "PnL by time", "slippage vs mid",
              "risk manager: decisions blocked"]


def _artifact(demo, url: str, tmp: Path) -> Path:  # noqa: ANN001
    """Download the artifact a printed UI link points at (``#/experiments/<e>/runs/<run>/artifacts/<path>``)."""
    m = re.search(r"/runs/([0-9a-f]{32})/artifacts/([^?]+)", url)
    assert m, url
    mlflow.set_tracking_uri(demo.uri)
    return Path(mlflow.artifacts.download_artifacts(run_id=m.group(1), artifact_path=m.group(2), dst_path=str(tmp)))


def _titles(frame) -> list[str]:  # noqa: ANN001
    return frame.locator(".js-plotly-plot .gtitle").all_text_contents()  # SVG text: no innerText


def _rendered(frame) -> tuple[int, int]:  # noqa: ANN001
    """(charts, charts that drew their SVG layer)."""
    charts = frame.locator(".js-plotly-plot")
    return charts.count(), charts.evaluate_all("els => els.filter(e => e.querySelector('.main-svg')).length")


def test_the_printed_link_opens_the_comparison(demo, watched):
    page = watched.page
    page.goto(demo.links["catboost compare runs"])
    page.wait_for_selector(".ag-center-cols-container .ag-row")
    assert "workflowType=machine_learning" in page.url  # the model-training pages, not the GenAI overview
    watched.close_assistant()
    cols = ["val_log_loss", "test_log_loss", "baseline_best_val_log_loss", "val_beats_baseline", "pnl_net",
            "l2exp.data", "l2exp.features", "l2exp.model"]
    # the grid renders only the columns in view: wait until the panel's room went to the columns
    page.wait_for_function("cols => { const h = [...document.querySelectorAll('.ag-header-cell')]"
                           ".map(e => e.innerText.trim()); return cols.every(c => h.includes(c)); }", arg=cols)
    headers = page.locator(".ag-header-cell").all_inner_texts()
    for col in cols:
        assert col in headers, headers
    names = " ".join(page.locator(".ag-pinned-left-cols-container .ag-row").all_inner_texts())
    assert "pipeline synthetic LightGBM | model=lightgbm" in names and "pipeline synthetic CatBoost" in names
    cells = " ".join(page.locator(".ag-center-cols-container .ag-row").all_inner_texts())
    client = MlflowClient(demo.uri)
    exp = client.get_experiment_by_name("l2exp-pipeline")
    parents = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" not in r.data.tags
               and r.data.tags.get("l2exp.data") == "synthetic"]  # the demo's two (a BitMEX pipeline follows them)
    assert len(parents) == 2
    for r in parents:  # the numbers in the table are the runs' own
        assert str(r.data.metrics["val_log_loss"]) in cells
    watched.shot("ui-runs")
    watched.assert_clean()


def test_two_runs_compare_in_three_clicks(demo, watched):
    page = watched.page
    page.goto(demo.links["catboost compare runs"])
    page.wait_for_selector(".ag-center-cols-container .ag-row")
    boxes = page.locator(".ag-pinned-left-cols-container .ag-row .ag-checkbox-input")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.get_by_role("button", name="Compare").first.click()
    page.get_by_text("Comparing 2 Runs").wait_for()
    assert "compare-runs" in page.url
    page.get_by_text("val_log_loss").first.wait_for()
    watched.shot("ui-compare")
    watched.assert_clean()


def test_backtest_report_opens_in_the_ui(demo, watched):
    page = watched.page
    page.goto(demo.links["catboost backtest report"])
    # the preview is a frame of its own (an iframe on a blob: URL); waited for until it draws a chart
    page.frame_locator("iframe[src^='blob:']").locator(".js-plotly-plot .main-svg").first.wait_for()
    frame = next((f for f in page.frames if f.url.startswith("blob:") and
                  f.locator(".js-plotly-plot .main-svg").count()), None)
    assert frame is not None, "the report did not render in the artifact preview"
    frame.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 15")
    assert _rendered(frame) == (5, 5)
    titles = " ".join(_titles(frame))
    for t in RUN_REPORT:
        assert t in titles, titles
    watched.shot("ui-report")
    watched.assert_clean()


@pytest.mark.parametrize("link, charts, titles", [
    ("catboost backtest report", 5, RUN_REPORT),
    ("analyze backtest comparison", 8, ["equity and drawdown, all runs", "PnL per", "slippage vs mid per run",
                                        "depth profile", "spread and touch imbalance", "book and fills"]),
    ("analyze predictions", 8, ["calibration", "horizon", "accuracy by regime quintile", "signal decay",
                                "rolling accuracy", "predicted signal vs realised move"]),
    ("analyze SHAP", 6, ["global importance", "importance by feature family", "beeswarm", "dependence: "]),
])
def test_report_pages_render_offline_without_errors(demo, watched, tmp_path, link, charts, titles):
    path = _artifact(demo, demo.links[link], tmp_path)
    # the page stays small: plotly.js once, every long series thinned for drawing
    assert path.stat().st_size < len(_plotly_js()) + PAGE_DATA_BYTES, (path.name, path.stat().st_size)
    page = watched.page
    page.goto(path.as_uri(), wait_until="domcontentloaded")
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}")
    assert _rendered(page) == (charts, charts)
    found = " ".join(_titles(page))
    for t in titles:
        assert t in found, (t, found)
    watched.shot(f"report-{link.replace(' ', '-')}")
    watched.assert_clean()


def test_the_comparison_shows_only_comparable_runs_with_their_units(demo, watched, tmp_path):
    """After the README's steps (the synthetic demo, then a BitMEX backtest settled in XBT), ``mode=analyze``
    compared all of them on one axis "equity (USD, XBT)" spanning 2020-2024. Now: the synthetic runs only,
    the BitMEX run named in a "left out" table with why, every equity axis in one currency."""
    if not any(k.startswith("bitmex ") for k in demo.links):
        pytest.skip(f"{SHARED / BITMEX_DAY} absent: no run of another data source to leave out")
    page = watched.page
    page.goto(_artifact(demo, demo.links["analyze backtest comparison"], tmp_path).as_uri(),
              wait_until="domcontentloaded")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length >= 2")
    text = page.locator("body").inner_text()
    assert "left out" in text and "data=bitmex_ob10, not this command's data=synthetic" in text
    assert "XBTUSD" not in page.locator("table").first.inner_text()  # the runs table: synthetic runs only
    axes = page.locator(".js-plotly-plot .ytitle").all_text_contents()
    equity = [a for a in axes if a.startswith(("equity", "drawdown"))]
    assert equity and all(a.endswith("(USD)") for a in equity), axes
    watched.assert_clean()


def test_book_chart_zooms_on_its_time_axis(demo, watched, tmp_path):
    page = watched.page
    page.goto(_artifact(demo, demo.links["catboost backtest report"], tmp_path).as_uri())
    chart = page.locator(".js-plotly-plot").nth(1)  # fills over the book
    chart.scroll_into_view_if_needed()
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot')[1].querySelector('.main-svg')")
    before = page.evaluate("document.querySelectorAll('.js-plotly-plot')[1]._fullLayout.xaxis.range.slice()")
    assert page.evaluate("document.querySelectorAll('.js-plotly-plot')[1]._fullLayout.xaxis.type") == "date"
    box = chart.locator(".nsewdrag").first.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=8)
    page.mouse.up()
    # the drag zoomed into a shorter span of time (waited for, not slept on)
    page.wait_for_function("b => JSON.stringify(document.querySelectorAll('.js-plotly-plot')[1]"
                           "._fullLayout.xaxis.range) !== JSON.stringify(b)", arg=before)
    watched.shot("report-book-zoomed")
    watched.assert_clean()
