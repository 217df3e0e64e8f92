"""Static plots (matplotlib, Agg backend) returned as figures for ``mlflow.log_figure``."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix  # noqa: E402


def confusion_figure(y: np.ndarray, pred: np.ndarray, class_names: list[str], title: str) -> plt.Figure:
    cm = confusion_matrix(y, pred, labels=list(range(len(class_names))))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{cm[i, j]}\n{norm[i, j]:.0%}", ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(class_names)), class_names)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def importance_figure(importance: pd.Series, title: str, top: int = 25) -> plt.Figure:
    imp = importance.head(top)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.25 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy(), color="#3b75af")
    ax.set_xlabel("importance (gain)")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig
