"""LightGBM (gradient-boosted trees), early-stopped on the validation fold."""

from __future__ import annotations

import inspect
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from l2exp.models.base import L2Model
from l2exp.models.progress import FitProgress, lightgbm_callback


class LightGBMModel(L2Model):
    flavor = "lightgbm"

    def __init__(self, n_estimators: int = 500, learning_rate: float = 0.05, num_leaves: int = 31,
                 min_child_samples: int = 100, subsample: float = 0.8, colsample_bytree: float = 0.8,
                 reg_lambda: float = 1.0, early_stopping_rounds: int = 50, **kw: Any) -> None:
        super().__init__(**kw)
        self.params = dict(n_estimators=n_estimators, learning_rate=learning_rate, num_leaves=num_leaves,
                           min_child_samples=min_child_samples, subsample=subsample, subsample_freq=1,
                           colsample_bytree=colsample_bytree, reg_lambda=reg_lambda)
        self.early_stopping_rounds = early_stopping_rounds
        self.model: lgb.LGBMModel | None = None

    def fit(self, X, y, X_valid, y_valid, task):  # noqa: ANN001 - see L2Model.fit
        self.task = task
        common = dict(random_state=self.seed, n_jobs=self.threads, deterministic=True, force_row_wise=True,
                      verbose=-1, **self.params)
        self.model = lgb.LGBMRegressor(**common) if task == "regression" else lgb.LGBMClassifier(**common)
        callbacks = []
        evals: dict[str, Any] = {}
        if X_valid is not None and len(X_valid):  # scored every iteration: early stopping and the progress line
            # LightGBM >= 4.6 takes eval_X/eval_y; older releases only eval_set
            new_api = "eval_X" in inspect.signature(self.model.fit).parameters
            evals = {"eval_X": (X_valid,), "eval_y": (y_valid,)} if new_api else {"eval_set": [(X_valid, y_valid)]}
            if self.early_stopping_rounds:
                callbacks.append(lgb.early_stopping(self.early_stopping_rounds, verbose=False))
        progress = FitProgress(f"LightGBM fit ({len(X):,} rows)", self.params["n_estimators"])
        callbacks.append(lightgbm_callback(progress))
        self.model.fit(X, y, sample_weight=self.sample_weight(y), callbacks=callbacks, **evals)
        self.best_iteration = int(self.model.best_iteration_ or self.params["n_estimators"])
        progress.done(self.best_iteration)
        if task != "regression":
            self.classes_ = np.asarray(self.model.classes_)
        return self

    def native(self) -> lgb.LGBMModel:
        assert self.model is not None, "fit first"
        return self.model

    def logged(self) -> lgb.Booster:
        """The booster, saved as LightGBM's own model file (``model.lgb``, up to the best iteration). MLflow
        saves the scikit-learn wrapper through skops instead: a dump and a verifying load, and skops'
        import (it lists every scikit-learn estimator) costs ~1.5 s in each process that saves or loads
        one. The wrapper's one extra -- which classes the model saw -- is in the l2exp metadata."""
        return self.native().booster_

    def feature_importance(self) -> pd.Series:
        booster = self.native().booster_
        return pd.Series(booster.feature_importance("gain"), index=booster.feature_name()).sort_values(ascending=False)
