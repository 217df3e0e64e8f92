"""One fit/predict interface for every model, so train/backtest/sim never branch on the library.

``task`` is ``classification`` (3 classes), ``binary`` or ``regression`` (see :mod:`l2exp.labels`).
Classifiers return probabilities with one column per class in label order (0..C-1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd

N_CLASSES = {"classification": 3, "binary": 2}


def expand_proba(proba: np.ndarray, present: np.ndarray | None, n_classes: int) -> np.ndarray:
    """Probabilities with one column per class of the task, in label order.

    A classifier trained on rows where a class never occurs (a short fold, a quiet market) knows only
    the classes it saw, so its ``predict_proba`` has fewer columns; every consumer (metrics, signal,
    backtest) needs all of them. The absent classes get probability 0 -- what the model believes.
    A binary booster's 1-d output P(class 1) becomes two columns.
    """
    p = np.asarray(proba, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.shape[1] == n_classes:
        return p
    out = np.zeros((len(p), n_classes))
    cols = np.arange(p.shape[1]) if present is None else np.asarray(present).astype(int)
    out[:, cols] = p
    return out


class L2Model(ABC):
    flavor: str = ""  # the MLflow flavour module name (lightgbm, catboost)

    def __init__(self, seed: int = 7, class_weight: str | None = None, threads: int = 2) -> None:
        self.seed = int(seed)
        self.class_weight = class_weight
        self.threads = int(threads)
        self.task = "classification"
        self.classes_: np.ndarray | None = None
        self.best_iteration: int | None = None

    @abstractmethod
    def fit(self, X: pd.DataFrame, y: np.ndarray, X_valid: pd.DataFrame | None, y_valid: np.ndarray | None,
            task: str) -> L2Model: ...

    @abstractmethod
    def native(self) -> Any:
        """The library's own model object (what the MLflow flavour logs)."""

    def logged(self) -> Any:
        """What the MLflow flavour saves and the registry hands back: the native model by default."""
        return self.native()

    @abstractmethod
    def feature_importance(self) -> pd.Series: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """One column per class of the task (see :func:`expand_proba`)."""
        return expand_proba(np.asarray(self.native().predict_proba(X)), self.classes_, N_CLASSES[self.task])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            return np.asarray(self.native().predict(X), dtype=float).ravel()
        return np.argmax(self.predict_proba(X), axis=1).astype(float)

    def sample_weight(self, y: np.ndarray) -> np.ndarray | None:
        if self.class_weight != "balanced" or self.task == "regression":
            return None
        classes, counts = np.unique(y, return_counts=True)
        w = {c: len(y) / (len(classes) * n) for c, n in zip(classes, counts, strict=True)}
        return np.asarray([w[v] for v in y])

    def describe(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "seed": self.seed, "class_weight": self.class_weight,
                "best_iteration": self.best_iteration}
