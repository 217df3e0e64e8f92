"""A model fit shows its progress on a (pseudo-)terminal and stays one line in a log (l2exp/models/progress.py)."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from l2exp.models.catboost import CatBoostModel
from l2exp.models.lightgbm import LightGBMModel
from l2exp.models.progress import FitProgress
from tests.pty_capture import pseudo_terminal


def data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    y = (X.a + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy() + (X.b > 1).astype(int).to_numpy()
    return X, y


@pytest.mark.parametrize("model", [LightGBMModel(n_estimators=40, early_stopping_rounds=0, threads=1),
                                   CatBoostModel(iterations=40, early_stopping_rounds=0, threads=1)],
                         ids=["lightgbm", "catboost"])
def test_a_fit_redraws_its_iteration_and_validation_loss_on_a_pseudo_terminal(model, monkeypatch):
    with pseudo_terminal() as term:
        monkeypatch.setattr("sys.stderr", term.tty)
        monkeypatch.setattr(FitProgress.__init__, "__defaults__", (0.0, None))  # redraw on every iteration
        X, y = data(600, 1)
        Xv, yv = data(200, 2)
        model.fit(X, y, Xv, yv, "classification")
    out = term.text
    assert out.startswith("\r") and "iteration 40/40" in out and "iteration 41" not in out
    assert "validation MultiClass" in out or "validation multi_logloss" in out
    assert out.rstrip().endswith("best iteration 40") or "best iteration" in out.rstrip().rsplit("\r", 1)[-1]


def test_in_a_log_a_fit_is_one_line_at_its_end_or_nothing():
    log = io.StringIO()
    p = FitProgress("fit", 10, every_s=0.0, stream=log)
    for i in range(1, 11):
        p.update(i, "multi_logloss", 1.0 / i)
    p.done(7)
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert "iteration 10/10, validation multi_logloss 0.1" in log.getvalue() and "best iteration 7" in log.getvalue()
    quick = io.StringIO()
    q = FitProgress("fit", 10, every_s=60.0, stream=quick)
    q.update(10)
    q.done(10)
    assert quick.getvalue() == ""  # under every_s and not a terminal: silent
