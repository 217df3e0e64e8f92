"""SHAP (TreeExplainer) for LightGBM and CatBoost on a sample of rows: global importance, beeswarm,
importance per feature family, dependence of the top features -- as an interactive page, plus the
two classic PNGs (importance bar, shap's own beeswarm) for a quick preview. TreeExplainer on 20k x 48
features and 200 trees takes ~13 s here, so it runs on ``sample`` rows."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from l2exp.analysis import charts  # noqa: E402


def shap_values(native: object, X: pd.DataFrame, class_index: int = -1) -> np.ndarray:
    """(rows, features) SHAP values of one class (the last: "up") whatever shape the explainer returns."""
    import shap

    values = shap.TreeExplainer(native).shap_values(X)
    if isinstance(values, list):  # per-class list (older shap)
        values = values[class_index]
    values = np.asarray(values)
    return values[:, :, class_index] if values.ndim == 3 else values  # (n, features, classes)


def shap_figures(native: object, X: pd.DataFrame, families: dict[str, str], class_index: int = -1,
                 top: int = 3) -> tuple[list[tuple[str, list[go.Figure]]], list[tuple[str, plt.Figure]], pd.Series]:
    """(page sections, PNG previews, mean |SHAP| per feature sorted descending)."""
    import shap

    values = shap_values(native, X, class_index)
    imp = pd.Series(np.abs(values).mean(0), index=X.columns).sort_values(ascending=False)
    fam = imp.groupby(pd.Series(families)).sum().sort_values(ascending=False)
    sections = [
        ("importance", [charts.importance_chart(imp, "global importance: mean |SHAP| (top 25)", "mean |SHAP|"),
                        charts.importance_chart(fam, "importance by feature family (sum of mean |SHAP|)",
                                                "sum of mean |SHAP|")]),
        ("beeswarm", [charts.shap_swarm(values, X, list(imp.index))]),
        ("dependence", [charts.scatter_chart(X[name].to_numpy(), values[:, X.columns.get_loc(name)],
                                             f"dependence: {name}", name, "SHAP value") for name in imp.index[:top]]),
    ]
    fig, ax = plt.subplots(figsize=(6, 0.25 * min(len(imp), 25) + 1))
    imp.head(25)[::-1].plot.barh(ax=ax, color=charts.NEUTRAL)
    ax.set_xlabel("mean |SHAP|")
    ax.set_title("global importance (SHAP)", fontsize=9)
    fig.tight_layout()
    previews = [("shap_importance.png", fig)]
    plt.figure()  # shap draws on the current figure: give it a fresh one
    shap.summary_plot(values, X, show=False, max_display=20)
    fig = plt.gcf()
    fig.set_size_inches(7, 6)
    fig.tight_layout()
    previews.append(("shap_beeswarm.png", fig))
    return sections, previews, imp
