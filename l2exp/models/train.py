"""``mode=train``: data -> features -> labels -> split -> model(s) -> metrics beside baselines -> MLflow.

Walk-forward splits train one model per fold and report per-fold and mean metrics; the model
registered is the last fold's (trained on the most recent data). Every metric of the model has its
baselines' twins on the same test rows (``baseline_majority_test_*``, ``baseline_persistence_test_*``
and ``baseline_best_test_*``, the better of the two), so promotion can require beating them.
"""

from __future__ import annotations

import json
import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig

from l2exp.analysis.plots import confusion_figure, importance_figure
from l2exp.config import instantiate
from l2exp.errors import UserError
from l2exp.features.registry import FeatureSet
from l2exp.features.table import build_feature_table, open_store
from l2exp.labels import LabelSpec
from l2exp.models.base import L2Model
from l2exp.models.baselines import majority, past_move, persistence
from l2exp.models.metrics import evaluate
from l2exp.summary import console, print_table, write_summary
from l2exp.tracking.lineage import log_dataset
from l2exp.tracking.registry import log_model
from l2exp.tracking.runs import tracked_run
from l2exp.tracking.setup import ui_hint

LOWER_IS_BETTER = {"log_loss", "rmse"}


def _best_baseline(m: dict[str, float], p: dict[str, float]) -> dict[str, float]:
    out = {}
    for k in m:
        if k.startswith("support_"):
            continue
        a, b = m[k], p.get(k, np.nan)
        pick = np.nanmin if k in LOWER_IS_BETTER else np.nanmax
        out[k] = float(pick([a, b])) if not (np.isnan(a) and np.isnan(b)) else float("nan")
    return out


def prepare(cfg: DictConfig) -> dict[str, Any]:
    """Everything before fitting: feature table, labels, usable rows, folds."""
    fs: FeatureSet = instantiate(cfg.features)
    spec: LabelSpec = instantiate(cfg.labels)
    splitter = instantiate(cfg.split)
    store = open_store(cfg)
    ft = build_feature_table(cfg, fs, store)
    lab = spec.compute(ft.book)
    ready = ft.ready.to_numpy()
    usable = ready & lab.valid
    rows = np.flatnonzero(usable)
    if len(rows) == 0:
        raise UserError("no row has both complete feature history and a label", where="features / labels",
                        fix="Use more data, shorter feature windows or a shorter label horizon.")
    ts = ft.book["timestamp"].to_numpy()[rows]
    folds = splitter.folds(ts, lab.label_end_ts[rows])
    past = past_move(ft.book, spec)[rows]
    return {"fs": fs, "spec": spec, "store": store, "ft": ft, "lab": lab, "rows": rows, "folds": folds,
            "X": ft.features.iloc[rows].reset_index(drop=True), "y": lab.y[rows], "past": past,
            "counts": {"rows_in": len(ready), "warmup_rows": int((~ready).sum()),
                       "no_label_rows": int((ready & ~lab.valid).sum()), "usable_rows": len(rows)}}


def run_train(cfg: DictConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    prep = prepare(cfg)
    fs, spec, X, y = prep["fs"], prep["spec"], prep["X"], prep["y"]
    task, classes = spec.kind, spec.classes
    n_classes = len(classes)
    model_name = str(cfg.tracking.model_name)
    model_label = str(cfg.model._target_).rsplit(".", 1)[-1]
    tags = {"l2exp.model_name": model_name, "l2exp.model": model_label, "l2exp.features": fs.name,
            "l2exp.labels": f"{spec.kind}@{spec.horizon:g}{spec.unit}", "l2exp.split": type(instantiate(
                cfg.split)).__name__, "data_digest": prep["ft"].data_digest}
    with tracked_run(cfg, "train", run_name=f"{model_label} {fs.name} {cfg.data.name}", tags=tags) as run:
        lineage = log_dataset(prep["store"], prep["ft"].book, str(cfg.data.name), prep["ft"].data_digest,
                              extra={"rows_usable": len(X)})
        mlflow.log_metrics({k: float(v) for k, v in prep["counts"].items()})
        mlflow.log_text(json.dumps(fs.describe(), indent=1, default=str), "features.json")
        fold_rows: list[dict[str, Any]] = []
        model: L2Model | None = None
        all_y, all_pred = [], []
        for fold in prep["folds"]:
            model = instantiate(cfg.model)
            ft0 = time.perf_counter()
            model.fit(X.iloc[fold.train], y[fold.train], X.iloc[fold.valid], y[fold.valid], task)
            fit_s = time.perf_counter() - ft0
            Xt, yt = X.iloc[fold.test], y[fold.test]
            pred = model.predict(Xt)
            proba = model.predict_proba(Xt) if task != "regression" else None
            m = evaluate(task, yt, pred, proba, classes)
            maj_pred, maj_proba = majority(y[fold.train], len(yt), task, n_classes)
            fallback = float(maj_pred[0]) if len(maj_pred) else 1.0
            per_pred, per_proba = persistence(prep["past"][fold.test], task, n_classes, fallback)
            bm = evaluate(task, yt, maj_pred, maj_proba, classes)
            bp = evaluate(task, yt, per_pred, per_proba, classes)
            row = {"fold": fold.name, "train_rows": len(fold.train), "valid_rows": len(fold.valid),
                   "test_rows": len(fold.test), "purged_rows": fold.purged, "fit_seconds": round(fit_s, 3),
                   "best_iteration": model.best_iteration,
                   **{f"test_{k}": v for k, v in m.items()},
                   **{f"baseline_majority_test_{k}": v for k, v in bm.items()},
                   **{f"baseline_persistence_test_{k}": v for k, v in bp.items()},
                   **{f"baseline_best_test_{k}": v for k, v in _best_baseline(bm, bp).items()}}
            fold_rows.append(row)
            all_y.append(yt)
            all_pred.append(pred)
        assert model is not None
        table = pd.DataFrame(fold_rows)
        mlflow.log_text(table.to_csv(index=False), "fold_metrics.csv")
        numeric = table.drop(columns=["fold"]).mean(numeric_only=True)
        metrics = {k: float(v) for k, v in numeric.items() if np.isfinite(v)}
        mlflow.log_metrics(metrics)
        if len(fold_rows) > 1:
            for i, r in enumerate(fold_rows):
                mlflow.log_metrics({k: float(v) for k, v in r.items() if k.startswith("test_")
                                    and isinstance(v, float) and np.isfinite(v)}, step=i)
        if task != "regression":
            fig = confusion_figure(np.concatenate(all_y), np.concatenate(all_pred), classes,
                                   f"{model_label} on test ({len(fold_rows)} fold(s))")
            mlflow.log_figure(fig, "plots/confusion_matrix.png")
        imp = model.feature_importance()
        mlflow.log_figure(importance_figure(imp, f"{model_label} feature importance (last fold)"),
                          "plots/feature_importance.png")
        mlflow.log_text(imp.to_csv(), "feature_importance.csv")
        meta = {"feature_set": fs.describe(), "levels": int(cfg.levels), "labels": spec.describe(), "task": task,
                "flavor": model.flavor, "data": str(cfg.data.name), "data_digest": prep["ft"].data_digest,
                "train_run_id": run.info.run_id}
        info = log_model(model, X.iloc[prep["folds"][-1].train].head(200), meta, model_name)
        version = str(info.registered_model_version)
        mlflow.set_tags({"l2exp.model_version": version})
        run_id = run.info.run_id
        uri = mlflow.get_tracking_uri()
    key = "test_macro_f1" if task != "regression" else "test_ic"
    summary = {
        "mode": "train", "run_id": run_id, "model_name": model_name, "model_version": version, "model": model_label,
        "task": task, "classes": classes, "features": fs.name, "n_features": len(fs.names),
        "folds": len(fold_rows), **prep["counts"],
        "test_metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
        "baseline_metrics": {k: v for k, v in metrics.items() if k.startswith("baseline_")},
        "fit_seconds": float(table["fit_seconds"].sum()), "seconds": round(time.perf_counter() - t0, 2),
        "tracking_uri": uri, "data_digest": lineage["data.digest"],
    }
    show = ["accuracy", "macro_f1", "log_loss", "roc_auc"] if task != "regression" else ["rmse", "ic", "hit_rate"]
    c = prep["counts"]
    rows = [("run", run_id), ("registered", f"{model_name} v{version}"),
            ("rows (usable / warm-up / no label)",
             f"{c['usable_rows']:,} / {c['warmup_rows']:,} / {c['no_label_rows']:,}"),
            ("folds", len(fold_rows))]
    for k in show:
        rows.append((f"test {k}", f"{metrics.get('test_' + k, float('nan')):.4f}   baselines: majority "
                     f"{metrics.get('baseline_majority_test_' + k, float('nan')):.4f}, persistence "
                     f"{metrics.get('baseline_persistence_test_' + k, float('nan')):.4f}"))
    rows.append(("fit seconds", f"{summary['fit_seconds']:.1f}"))
    print_table(f"train: {model_label} on {cfg.data.name} ({fs.name}, {spec.kind})", rows)
    beat = metrics.get(key, np.nan) > metrics.get(f"baseline_best_{key}", np.nan)
    console.print(f"{key}: {'beats' if beat else '[bold red]does not beat[/]'} the best naive baseline")
    console.print(f"compare runs: {ui_hint(uri)}")
    write_summary(summary)
    return summary
