"""Naive baselines computed on the same test rows as every model.

* ``majority``: always the most frequent class of the given labels, with their class frequencies as
  probabilities (for regression: their mean). ``mode=train`` passes the scored segment's own labels:
  its climatology in hindsight, the strongest constant forecast (see ``models.train._scores``).
* ``persistence``: the last move repeats -- the label recomputed *backwards* (mid now vs. mid one
  horizon ago, same threshold) is the prediction (for regression: the past return). Probabilities:
  0.9 on that class, the rest spread evenly (a hard guess would make log loss infinite).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from l2exp.labels import LabelSpec


def majority(y_train: np.ndarray, n_test: int, task: str, n_classes: int) -> tuple[np.ndarray, np.ndarray | None]:
    if task == "regression":
        return np.full(n_test, float(np.mean(y_train))), None
    freq = np.bincount(y_train.astype(int), minlength=n_classes) / len(y_train)
    return np.full(n_test, float(np.argmax(freq))), np.tile(freq, (n_test, 1))


def past_move(book: pd.DataFrame, spec: LabelSpec, gap_ms: float | None = None) -> np.ndarray:
    """The label recomputed backwards (mid now vs. one horizon ago, within the session) for every row."""
    mid = 0.5 * (book["bid_price_1"].to_numpy(float) + book["ask_price_1"].to_numpy(float))
    spread_bps = (book["ask_price_1"].to_numpy(float) - book["bid_price_1"].to_numpy(float)) / mid * 1e4
    return spec.classify(spec.past_returns(book, gap_ms), spread_bps)


def persistence(past: np.ndarray, task: str, n_classes: int, fallback: float) -> tuple[np.ndarray, np.ndarray | None]:
    pred = np.where(np.isnan(past), fallback, past)
    if task == "regression":
        return pred, None
    proba = np.full((len(pred), n_classes), 0.1 / max(n_classes - 1, 1))
    proba[np.arange(len(pred)), pred.astype(int)] = 0.9
    return pred, proba
