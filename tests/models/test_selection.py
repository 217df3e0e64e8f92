"""The evaluation protocol's pieces: test metrics never select unless overridden, "beats" is a
statistical statement, probabilities always have a column per class."""

from __future__ import annotations

import numpy as np
import pytest

from l2exp.errors import UserError
from l2exp.models.base import expand_proba
from l2exp.models.lightgbm import LightGBMModel
from l2exp.models.metrics import evaluate
from l2exp.models.selection import (
    beats,
    check_selection_metric,
    default_selection,
    direction_of,
    paired_gain,
    per_row_loss,
    significantly_better,
)


def test_selection_never_reads_test_unless_told():
    assert default_selection("classification") == ("val_log_loss", "min")
    assert default_selection("regression") == ("val_rmse", "min")
    assert check_selection_metric("val_macro_f1", False, "k") is False
    for m in ("test_log_loss", "test_macro_f1", "baseline_best_test_log_loss"):
        with pytest.raises(UserError, match="untouched holdout"):
            check_selection_metric(m, False, "mode.metric")
        assert check_selection_metric(m, True, "mode.metric") is True  # allowed, and reported as on test
    assert direction_of("val_log_loss") == "min" and direction_of("val_rmse") == "min"
    assert direction_of("val_macro_f1") == "max" and direction_of("val_ic") == "max"
    assert beats(0.3, 0.4, "min") and not beats(0.4, 0.4, "min") and not beats(float("nan"), 0.4, "min")


def test_significance_uses_blocks_of_the_horizon():
    rng = np.random.default_rng(0)
    n, h = 20_000, 50
    base = 1.0 + rng.normal(0, 0.1, n)
    # overlapping labels make per-row errors move together: h rows share one draw of the difference
    model = base - 0.01 + np.repeat(rng.normal(0, 0.5, n // h), h)
    gain, se_blocks = paired_gain(model, base, h)
    _, se_rows = paired_gain(model, base, 1)  # as if rows were independent
    assert gain == pytest.approx(-0.01, abs=0.05)
    assert se_blocks == pytest.approx(0.5 / np.sqrt(n // h), rel=0.15)  # 0.025
    assert se_rows < se_blocks / 5  # the iid formula would understate the noise ~7x
    assert not significantly_better(0.01, 0.006) and significantly_better(0.013, 0.006)
    y = np.array([0, 1, 2, 1])
    p = np.array([[0.5, 0.25, 0.25], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]])
    ll = per_row_loss("log_loss", y, p.argmax(1), p)
    assert ll[:3] == pytest.approx(-np.log([0.5, 0.6, 0.8])) and ll[3] == pytest.approx(-np.log(1e-12), rel=1e-3)
    assert ll.mean() == pytest.approx(evaluate("classification", y, p.argmax(1), p, ["d", "f", "u"])["log_loss"])


def test_a_class_absent_from_training_still_gives_every_column_and_metric():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3))
    y = (X[:, 0] > 0).astype(float) + 1.0  # classes 1 and 2 only: "down" never seen
    import pandas as pd

    Xd = pd.DataFrame(X, columns=["a", "b", "c"])
    m = LightGBMModel(n_estimators=20, min_child_samples=10).fit(Xd, y, None, None, "classification")
    p = m.predict_proba(Xd.head(50))
    assert p.shape == (50, 3) and np.allclose(p[:, 0], 0) and np.allclose(p.sum(1), 1)
    y_test = np.r_[0.0, y[:49]]  # the test segment has a "down" the model never saw
    out = evaluate("classification", y_test, m.predict(Xd.head(50)), p, ["down", "flat", "up"])
    assert np.isfinite(out["log_loss"]) and out["recall_down"] == 0.0
    assert np.allclose(expand_proba(np.array([0.3, 0.9]), np.array([0, 1]), 2), [[0.7, 0.3], [0.1, 0.9]])
