"""Small and plain inputs: correct metrics or one clear message with the counts and the fix, never a
traceback from deep inside a library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.modes.backtest import run_backtest
from l2exp.modes.promote import run_promote
from l2exp.modes.train import run_train
from l2exp.tracking.registry import load_bundle
from tests.conftest import make_cfg, run_cli


def staircase_csv(path: Path, n: int = 4000, levels: int = 5) -> Path:
    """A book whose mid never falls in its first 82 % (so training and validation never see the class
    'down') and random-walks after (the test segment has downs)."""
    rng = np.random.default_rng(5)
    k = int(n * 0.82)
    steps = np.r_[rng.choice([0, 0, 0, 1], k), rng.choice([-1, 0, 0, 1], n - k)]
    bid = 100.0 + 0.01 * np.cumsum(steps)
    df = {"timestamp": 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000,
          "symbol": "STAIR", "exchange": "test"}
    for i in range(1, levels + 1):
        df[f"bid_price_{i}"] = np.round(bid - 0.01 * (i - 1), 2)
        df[f"bid_size_{i}"] = rng.integers(1, 50, n)
        df[f"ask_price_{i}"] = np.round(bid + 0.01 * i, 2)
        df[f"ask_size_{i}"] = rng.integers(1, 50, n)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(df).to_csv(path, index=False)
    return path


def csv_cfg(workdir: Path, *extra: str):
    path = staircase_csv(workdir / "data" / "stair.csv")
    return make_cfg(["mode=train", f"workdir={workdir}", "data=canonical_csv", f"data.path={path}", "data.levels=5",
                     "features=minimal", "mode.progress=false", "model.n_estimators=30", "labels.horizon=5", *extra])


def test_a_class_missing_from_training_gives_correct_metrics(workdir):
    s = run_train(csv_cfg(workdir))
    assert s["test_metrics"]["test_support_down"] > 0  # the test segment has downs
    assert np.isfinite(s["test_metrics"]["test_log_loss"]) and s["test_metrics"]["test_recall_down"] == 0.0
    assert "val_support_down" in s["val_metrics"] and s["val_metrics"]["val_support_down"] == 0
    assert "val_roc_auc" in s["undefined_metrics"]  # one class absent on validation: AUC undefined, said so
    bundle = load_bundle(f"runs:/{s['run_id']}/model")
    X = np.zeros((3, len(bundle.feature_set.names)))
    assert bundle.predict_proba(X).shape == (3, 3)  # the fast path too has a column per class


def test_a_fold_with_too_few_rows_is_one_clear_message(workdir):
    with pytest.raises(UserError, match=r"too small .*train \d+, valid \d+, test \d+ rows") as e:
        run_train(csv_cfg(workdir, "split=walk_forward", "split.n_folds=150"))
    assert "split.n_folds" in e.value.fix


def test_a_recording_shorter_than_the_windows(workdir):
    with pytest.raises(UserError, match=r"no row has both complete feature history and a label \(150 rows: 150 "
                                        r"still warming up"):
        run_train(make_cfg(["mode=train", f"workdir={workdir}", "data.reader.n_snapshots=150",
                            "mode.progress=false"]))


@pytest.mark.slow
def test_a_data_config_without_fees_trains_and_only_the_backtest_asks(workdir):
    base = ["data.reader.n_snapshots=20000", "features=minimal", "~data.fees"]
    proc = run_cli(["mode=train", *base, "model.n_estimators=20", "mode.progress=false"], workdir)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_promote(make_cfg(["mode=promote", f"workdir={workdir}", "mode.require_beat_baseline=false"]))
    with pytest.raises(UserError, match="no venue fees") as e:
        run_backtest(make_cfg(["mode=backtest", f"workdir={workdir}", *base]))
    assert "fees: {maker_bps" in e.value.fix
    proc = run_cli(["mode=backtest", *base], workdir)
    assert proc.returncode == 2 and "no venue fees" in proc.stderr and "Traceback" not in proc.stderr
