"""Test metrics for models and baselines alike (scikit-learn implementations)."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_squared_error,
    precision_recall_fscore_support,
    roc_auc_score,
)


def classification_metrics(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                           class_names: list[str]) -> dict[str, float]:
    labels = list(range(len(class_names)))
    out = {"accuracy": float(accuracy_score(y, pred)),
           "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0))}
    prec, rec, _, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for k, name in enumerate(class_names):
        out[f"precision_{name}"] = float(prec[k])
        out[f"recall_{name}"] = float(rec[k])
        out[f"support_{name}"] = float(support[k])
    if proba is not None:
        p = np.clip(proba, 1e-12, 1.0)
        p = p / p.sum(1, keepdims=True)
        out["log_loss"] = float(log_loss(y, p, labels=labels))
        present = np.unique(y)
        try:
            if len(class_names) == 2:
                out["roc_auc"] = float(roc_auc_score(y, p[:, 1]))
            elif len(present) == len(class_names):
                out["roc_auc"] = float(roc_auc_score(y, p, multi_class="ovr", labels=labels))
            else:
                out["roc_auc"] = float("nan")
        except ValueError:
            out["roc_auc"] = float("nan")
    return out


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    ic = spearmanr(pred, y).statistic if np.std(pred) > 0 else float("nan")
    return {"rmse": float(np.sqrt(mean_squared_error(y, pred))), "ic": float(ic),
            "hit_rate": float(np.mean(np.sign(pred) == np.sign(y)))}


def evaluate(task: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
             class_names: list[str]) -> dict[str, float]:
    if task == "regression":
        return regression_metrics(y, pred)
    return classification_metrics(y, pred, proba, class_names)
