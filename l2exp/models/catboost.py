"""CatBoost (ordered boosting, symmetric trees), early-stopped on the validation fold."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostRegressor

from l2exp.models.base import L2Model
from l2exp.models.progress import CatBoostCallback, FitProgress


class CatBoostModel(L2Model):
    flavor = "catboost"

    def __init__(self, iterations: int = 500, learning_rate: float = 0.08, depth: int = 6,
                 l2_leaf_reg: float = 3.0, early_stopping_rounds: int = 50, **kw: Any) -> None:
        super().__init__(**kw)
        self.params = dict(iterations=iterations, learning_rate=learning_rate, depth=depth, l2_leaf_reg=l2_leaf_reg)
        self.early_stopping_rounds = early_stopping_rounds
        self.model: CatBoostClassifier | CatBoostRegressor | None = None

    def fit(self, X, y, X_valid, y_valid, task):  # noqa: ANN001 - see L2Model.fit
        self.task = task
        common = dict(random_seed=self.seed, thread_count=self.threads, verbose=False, allow_writing_files=False,
                      **self.params)
        if task == "regression":
            self.model = CatBoostRegressor(loss_function="RMSE", **common)
        else:
            self.model = CatBoostClassifier(loss_function="MultiClass" if task == "classification" else "Logloss",
                                            **common)
        eval_set = (X_valid, y_valid) if X_valid is not None and len(X_valid) else None
        progress = FitProgress(f"CatBoost fit ({len(X):,} rows)", self.params["iterations"])
        self.model.fit(X, y, sample_weight=self.sample_weight(y), eval_set=eval_set,
                       early_stopping_rounds=(self.early_stopping_rounds or None) if eval_set else None,
                       callbacks=[CatBoostCallback(progress)])
        best = self.model.get_best_iteration()
        self.best_iteration = int(best) if best is not None else self.params["iterations"]
        progress.done(self.best_iteration)
        if task != "regression":
            self.classes_ = np.asarray(self.model.classes_)
        return self

    def native(self) -> CatBoostClassifier | CatBoostRegressor:
        assert self.model is not None, "fit first"
        return self.model

    def feature_importance(self) -> pd.Series:
        m = self.native()
        return pd.Series(m.get_feature_importance(), index=m.feature_names_).sort_values(ascending=False)
