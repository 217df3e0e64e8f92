"""The evaluation protocol in code: which metric selects, in which direction, and on which segment.

Segments (docs/evaluation.md): *train* fits, *validation* early-stops and **selects** (promotion,
sweeps, pipeline), *test* is **reported only**. Every metric ``<segment>_<name>`` of a model has
baseline twins on the same rows (``baseline_majority_<segment>_<name>``,
``baseline_persistence_…``, ``baseline_best_…`` = the better of the two), so "beats the baseline"
is always judged on identical rows.

Selecting on a ``test_*`` metric is refused unless ``allow_test_selection=true`` is passed, and a run
chosen that way is flagged (``l2exp.selected_on_test``): a test score that chose the model is no
longer an unbiased estimate of it.
"""

from __future__ import annotations

import math

import numpy as np

from l2exp.errors import UserError

LOWER_IS_BETTER = {"log_loss", "rmse"}


def default_selection(task: str) -> tuple[str, str]:
    """(metric, direction) a run of this task is selected on by default: a proper score on validation.

    Log loss, not accuracy: on L2 labels one class ("flat") often holds 90 % of the rows, so a model
    can have high accuracy and no skill; log loss rewards calibrated probabilities of every class.
    """
    return ("val_rmse", "min") if task == "regression" else ("val_log_loss", "min")


def direction_of(metric: str) -> str:
    """min for losses and errors (log loss, RMSE), max for everything else (F1, AUC, IC, accuracy)."""
    return "min" if metric.endswith(tuple(LOWER_IS_BETTER)) else "max"


def beats(value: float, baseline: float, direction: str) -> bool:
    """Strictly better than the baseline; undefined (NaN) on either side is *not* better."""
    if value is None or baseline is None or math.isnan(value) or math.isnan(baseline):
        return False
    return value < baseline if direction == "min" else value > baseline


def check_selection_metric(metric: str, allow_test_selection: bool, where: str) -> bool:
    """Refuse a test-segment metric for selection unless explicitly allowed; returns True when the
    selection reads the test set (the caller flags the run)."""
    on_test = metric.startswith("test_") or "_test_" in metric
    if on_test and not allow_test_selection:
        raise UserError(f"selection on a test metric ({metric!r}) would leave no untouched holdout: the test "
                        "score of the chosen model would be optimistically biased", where=where,
                        fix=f"Select on validation: {metric.replace('test_', 'val_', 1)} (the default), or pass "
                            "allow_test_selection=true to do it anyway (the run is then flagged).")
    return on_test


# ---- "beats the baseline" as a statistical statement, not a rounding accident --------------------
# A model with no skill (the permuted-label control) can still land a hair below the baseline's log
# loss: early stopping on validation shrinks its class prior toward the validation frequencies. A
# strict "<" would call that skill. So for metrics that are a mean over rows, "beats" means the mean
# per-row improvement over the best baseline exceeds Z standard errors. L2 labels overlap (each row
# looks ``horizon`` rows ahead), so per-row errors are autocorrelated: the standard error is taken over
# means of non-overlapping blocks of ``horizon`` rows (the batch-means estimator), not over rows.
Z_BEATS = 2.0
PER_ROW = ("log_loss", "rmse", "accuracy", "hit_rate")


def per_row_loss(name: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None) -> np.ndarray | None:
    """Per-row loss (lower is better) whose mean is the metric (or a monotone transform of it:
    squared error for RMSE, minus the hit for accuracy); ``None`` for metrics that are not row means."""
    if name == "log_loss" and proba is not None:
        p = np.clip(proba, 1e-12, 1.0)
        p = p / p.sum(1, keepdims=True)  # the same clipping as models.metrics
        return -np.log(p[np.arange(len(y)), y.astype(int)])
    if name == "rmse":
        return (pred - y) ** 2
    if name == "accuracy":
        return -(pred == y).astype(float)
    if name == "hit_rate":
        return -(np.sign(pred) == np.sign(y)).astype(float)
    return None


def paired_gain(model_loss: np.ndarray, base_loss: np.ndarray, block: int) -> tuple[float, float]:
    """(mean improvement of the model over the baseline per row, its batch-means standard error)."""
    d = base_loss - model_loss
    block = max(int(block), 1)
    nb = len(d) // block
    if nb < 2:
        return float(d.mean()) if len(d) else float("nan"), float("nan")
    means = d[: nb * block].reshape(nb, block).mean(1)
    return float(d.mean()), float(means.std(ddof=1) / np.sqrt(nb))


def significantly_better(gain: float, se: float) -> bool:
    return bool(np.isfinite(gain) and np.isfinite(se) and gain > Z_BEATS * se)
