"""Training (``mode=train``, :mod:`l2exp.modes.train`): features -> labels -> split -> model(s) -> metrics
beside baselines -> MLflow.

The evaluation protocol (docs/evaluation.md): each fold's model is fitted on its *train* rows,
early-stopped on its *validation* rows, and scored on validation (``val_*``, what selection reads)
and on test (``test_*``, reported only). Every metric has baseline twins on the same rows
(``baseline_majority_…``, ``baseline_persistence_…``, ``baseline_best_…``).

Walk-forward splits train one model per fold and report per-fold and mean metrics; the model
registered is the last fold's (trained on the most recent data). Every run logs its *out-of-sample
predictions* (``oos/predictions.parquet``: each fold's model on its own purged test segment,
stitched), which ``mode=backtest mode.signal=oos`` trades; the registered model's segment boundaries
(``train_end_ts``, ``valid_end_ts``, ``test_start_ts``) go into its registry metadata, so a backtest
of that model refuses rows it was trained or selected on.

``labels.permute=true`` is the leakage control: the training labels of every fold are shuffled,
everything else unchanged. Such a model must not beat the baselines on validation or test; if it
does, something in the pipeline leaks the target. Its runs are tagged and never promoted.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from l2exp.analysis.plots import confusion_figure, importance_figure
from l2exp.data.stores.base import L2Store
from l2exp.errors import UserError
from l2exp.features.partitioned import RowWindow
from l2exp.features.registry import FeatureSet
from l2exp.features.table import FeatureTable
from l2exp.labels import Labels, LabelSpec
from l2exp.models.base import L2Model
from l2exp.models.baselines import majority, past_move, persistence
from l2exp.models.metrics import evaluate
from l2exp.models.selection import (
    LOWER_IS_BETTER,
    Z_BEATS,
    default_selection,
    paired_gain,
    per_row_loss,
    significantly_better,
)
from l2exp.split import Fold
from l2exp.summary import console, print_table, write_summary
from l2exp.tracking import log as tlog
from l2exp.tracking.context import RunContext
from l2exp.tracking.lineage import log_dataset
from l2exp.tracking.registry import log_model
from l2exp.tracking.runs import tracked_run
from l2exp.tracking.setup import experiment_url, print_links, run_url

MIN_TRAIN_ROWS = 50  # below this no tree learner says anything meaningful
MIN_EVAL_ROWS = 10  # below this a test metric is noise


@dataclass
class Prepared:
    """Everything before fitting: feature table, labels, usable rows, folds."""

    fs: FeatureSet
    spec: LabelSpec
    store: L2Store
    ft: FeatureTable
    lab: Labels
    rows: np.ndarray  # positions in the feature table of the usable rows (ready and labelled)
    folds: list[Fold]
    X: pd.DataFrame
    y: np.ndarray
    past: np.ndarray
    ts: np.ndarray
    counts: dict[str, int]
    window: RowWindow | None = None  # the rows read (mode.rows), None = the whole table


def _best_baseline(m: dict[str, float], p: dict[str, float]) -> dict[str, float]:
    out = {}
    for k in m:
        if k.startswith("support_"):
            continue
        a, b = m[k], p.get(k, np.nan)
        pick = np.nanmin if k in LOWER_IS_BETTER else np.nanmax
        out[k] = float(pick([a, b])) if not (np.isnan(a) and np.isnan(b)) else float("nan")
    return out


@dataclass
class TrainSpec:
    """What to train (``conf/mode/train.yaml`` and the groups it reads), as objects.

    Args:
        data_name: the ``data=`` name (tags, run name, the registered model's metadata).
        levels: canonical book depth.
        features / labels / splitter: the feature set, label definition and split.
        make_model: a fresh, unfitted model (one per fold).
        model_name: the registered model's name (``tracking.model_name``).
        seed: the permuted-label control's shuffle.
        window: the rows read (``mode.rows``); None = the whole table.
    """

    data_name: str
    levels: int
    features: FeatureSet
    labels: LabelSpec
    splitter: Any
    make_model: Callable[[], L2Model]
    model_name: str
    seed: int = 7
    window: RowWindow | None = None

    @property
    def model_label(self) -> str:
        return type(self.make_model()).__name__


def prepare(job: TrainSpec, store: L2Store, ft: FeatureTable) -> Prepared:
    """Labels, usable rows and folds of the feature table ``ft`` (read from ``store``)."""
    fs, spec, splitter, window = job.features, job.labels, job.splitter, job.window
    if len(ft.book) == 0:
        raise UserError(f"mode.rows selects no row of data={job.data_name} ({window})", where="mode.rows",
                        fix="Widen mode.rows.start / end (the store's days: l2exp mode=features prints them).")
    gap_ms = fs.params.reset_gap_ms  # labels end where the features restart: one definition of a session
    lab = spec.compute(ft.book, gap_ms)
    ready = ft.ready.to_numpy()
    usable = ready & lab.valid
    rows = np.flatnonzero(usable)
    counts = {"rows_in": len(ready), "warmup_rows": int((~ready).sum()),
              "no_label_rows": int((ready & ~lab.valid).sum()), "label_cut_by_gap_rows": lab.cut_by_gap,
              "usable_rows": len(rows)}
    if len(rows) == 0:
        raise UserError(f"no row has both complete feature history and a label ({counts['rows_in']:,} rows: "
                        f"{counts['warmup_rows']:,} still warming up, {counts['no_label_rows']:,} without a label)",
                        where="features / labels",
                        fix="Use more data, shorter feature windows (features.params.windows) or a shorter label "
                            "horizon (labels.horizon).")
    ts = ft.book["timestamp"].to_numpy()[rows]
    folds = splitter.folds(ts, lab.label_end_ts[rows])
    past = past_move(ft.book, spec, gap_ms)[rows]
    return Prepared(fs, spec, store, ft, lab, rows, folds, ft.features.iloc[rows].reset_index(drop=True),
                    lab.y[rows], past, ts, counts, window if window not in (None, RowWindow()) else None)


def _check_fold(fold: Fold, y_fit: np.ndarray, task: str, classes: list[str]) -> None:
    """A fold too small to fit or score, or a classifier with one class to learn: one clear message."""
    sizes = f"train {len(fold.train)}, valid {len(fold.valid)}, test {len(fold.test)} rows"
    fix = "Use a longer recording, fewer folds (split.n_folds), or a shorter label horizon (labels.horizon)."
    if len(fold.train) < MIN_TRAIN_ROWS or len(fold.test) < MIN_EVAL_ROWS:
        raise UserError(f"split {fold.name} is too small to fit and score a model ({sizes}; needs >= "
                        f"{MIN_TRAIN_ROWS} train and >= {MIN_EVAL_ROWS} test rows)", where="split", fix=fix)
    if task != "regression":
        present = np.unique(y_fit)
        if len(present) < 2:
            counts = {classes[int(c)]: int((y_fit == c).sum()) for c in present}
            raise UserError(f"split {fold.name}: the training rows hold one class only ({counts}); a classifier "
                            "needs at least two", where="split / labels",
                            fix="Use more data, or a smaller labels.threshold so that moves are not all 'flat'.")


def _scores(task: str, classes: list[str], y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
            y_fit: np.ndarray, past: np.ndarray, seg: str,
            sel_name: str) -> tuple[dict[str, float], dict[str, np.ndarray | None]]:
    """The model's metrics on one segment and its baselines' on the same rows, all prefixed; and the
    per-row losses of the selection metric (model, majority, persistence) for the significance test.

    The majority baseline is the scored segment's own *climatology*: its class frequencies (regression:
    its mean), known in hindsight -- the best constant forecast there is for those rows. Beating it
    means skill beyond knowing the class balance; a model without skill cannot beat it by a prior
    shift between segments (which a training-frequency baseline lets it do: on BitMEX "flat" is 88 %
    of training rows and 92 % of validation rows). ``y_fit`` only supplies persistence's fallback class.
    """
    n_classes = len(classes)
    m = evaluate(task, y, pred, proba, classes)
    maj_pred, maj_proba = majority(y, len(y), task, n_classes)
    fallback = float(majority(y_fit, 1, task, n_classes)[0][0])
    per_pred, per_proba = persistence(past, task, n_classes, fallback)
    bm = evaluate(task, y, maj_pred, maj_proba, classes)
    bp = evaluate(task, y, per_pred, per_proba, classes)
    losses = {"model": per_row_loss(sel_name, y, pred, proba),
              "majority": per_row_loss(sel_name, y, maj_pred, maj_proba),
              "persistence": per_row_loss(sel_name, y, per_pred, per_proba)}
    return {**{f"{seg}_{k}": v for k, v in m.items()},
            **{f"baseline_majority_{seg}_{k}": v for k, v in bm.items()},
            **{f"baseline_persistence_{seg}_{k}": v for k, v in bp.items()},
            **{f"baseline_best_{seg}_{k}": v for k, v in _best_baseline(bm, bp).items()}}, losses


def _significance(losses: dict[str, list[np.ndarray]], seg: str, sel_name: str, block: int) -> dict[str, float]:
    """Pooled over folds: the model's per-row gain over the better baseline and whether it is > Z s.e."""
    if not losses["model"] or losses["model"][0] is None:
        return {}
    pooled = {k: np.concatenate(v) for k, v in losses.items()}
    best = min(("majority", "persistence"), key=lambda k: pooled[k].mean())
    gain, se = paired_gain(pooled["model"], pooled[best], block)
    return {f"{seg}_{sel_name}_gain": gain, f"{seg}_{sel_name}_gain_se": se,
            f"{seg}_beats_baseline": float(significantly_better(gain, se))}


def _block_rows(spec: LabelSpec, ts: np.ndarray) -> int:
    """Rows per label horizon: the block length of the batch-means standard error."""
    if spec.unit == "events":
        return max(int(round(spec.horizon)), 1)
    dt_ms = float(np.median(np.diff(np.sort(ts)))) / 1e6 if len(ts) > 1 else 0.0
    return max(int(round(spec.horizon / dt_ms)), 1) if dt_ms > 0 else 1


def _oos_frame(prep: Prepared, fold: Fold, k: int, pred: np.ndarray, proba: np.ndarray | None,
               classes: list[str]) -> pd.DataFrame:
    """One fold's out-of-sample predictions: its model on its own test rows, keyed by feature-table row."""
    rows = prep.rows[fold.test]
    book = prep.ft.book
    out = pd.DataFrame({"row": rows.astype(np.int64), "timestamp": book["timestamp"].to_numpy()[rows],
                        "symbol": book["symbol"].to_numpy()[rows].astype(str),
                        "fold": np.full(len(rows), k, dtype=np.int32),
                        "fold_test_start_ts": np.full(len(rows), fold.test_start_ts, dtype=np.int64),
                        "y": prep.y[fold.test], "prediction": pred})
    if proba is not None:
        for j, c in enumerate(classes):
            out[f"p_{c}"] = proba[:, j]
    return out


def _segments(prep: Prepared, fold: Fold) -> dict[str, Any]:
    """The registered model's segment boundaries (epoch ns), kept in its registry metadata."""
    ts, end = prep.ts, prep.lab.label_end_ts[prep.rows]
    seen = np.r_[fold.train, fold.valid]
    seg = {"train_start_ts": int(ts[fold.train].min()), "train_end_ts": int(ts[fold.train].max()),
           "valid_end_ts": int(ts[fold.valid].max()) if len(fold.valid) else None,
           "label_end_max_ts": int(end[seen].max()), "test_start_ts": int(fold.test_start_ts),
           "test_end_ts": int(fold.test_end_ts), "label_horizon": prep.spec.horizon,
           "label_unit": prep.spec.unit, "split": fold.name}
    if seg["label_end_max_ts"] >= seg["test_start_ts"]:  # purging guarantees this; a bug otherwise
        raise AssertionError(f"a training label window reaches the test segment: {seg}")
    return seg


def train(job: TrainSpec, store: L2Store, ft: FeatureTable, ctx: RunContext) -> dict[str, Any]:
    """Fit ``job``'s model on every fold beside the naive baselines, log everything to the tracked run of
    ``ctx``, register the last fold's model; print the report, write ``summary.json``, return it."""
    t0 = time.perf_counter()
    prep = prepare(job, store, ft)
    fs, spec, X, y = prep.fs, prep.spec, prep.X, prep.y
    task, classes = spec.kind, spec.classes
    permute = spec.permute
    sel_metric, sel_dir = default_selection(task)
    model_name = job.model_name
    model_label = job.model_label
    tags = {"l2exp.model_name": model_name, "l2exp.model": model_label, "l2exp.features": fs.name,
            "l2exp.labels": f"{spec.kind}@{spec.horizon:g}{spec.unit}", "l2exp.split": type(job.splitter).__name__,
            "data_digest": prep.ft.data_digest, "l2exp.task": task,
            "l2exp.selection_metric": sel_metric, "l2exp.selection_direction": sel_dir,
            "l2exp.permuted_labels": str(permute).lower()}
    rng = np.random.default_rng(int(job.seed))
    run_name = f"{model_label} {fs.name} {job.data_name}" + (" PERMUTED-LABEL CONTROL" if permute else "")
    with tracked_run(ctx, "train", run_name=run_name, tags=tags) as run:
        lineage = log_dataset(prep.store, prep.ft.book, job.data_name, prep.ft.data_digest,
                              extra={"rows_usable": len(X)})
        tlog.log_metrics({k: float(v) for k, v in prep.counts.items()})
        tlog.log_text(json.dumps(fs.describe(), indent=1, default=str), "features.json")
        fold_rows: list[dict[str, Any]] = []
        oos: list[pd.DataFrame] = []
        model: L2Model | None = None
        all_y, all_pred = [], []
        sel_name = sel_metric.split("_", 1)[1]
        seg_losses: dict[str, dict[str, list]] = {seg: {"model": [], "majority": [], "persistence": []}
                                                  for seg in ("val", "test")}
        for k, fold in enumerate(prep.folds):
            y_fit = y[fold.train]
            if permute:  # the control: same rows, same features, labels shuffled among training rows
                y_fit = rng.permutation(y_fit)
            _check_fold(fold, y_fit, task, classes)
            model = job.make_model()
            ft0 = time.perf_counter()
            model.fit(X.iloc[fold.train], y_fit, X.iloc[fold.valid], y[fold.valid], task)
            fit_s = time.perf_counter() - ft0
            row: dict[str, Any] = {"fold": fold.name, "train_rows": len(fold.train), "valid_rows": len(fold.valid),
                                   "test_rows": len(fold.test), "purged_rows": fold.purged,
                                   "fit_seconds": round(fit_s, 3), "best_iteration": model.best_iteration}
            for seg, idx in (("val", fold.valid), ("test", fold.test)):
                if not len(idx):
                    continue
                Xs, ys = X.iloc[idx], y[idx]
                pred = model.predict(Xs)
                proba = model.predict_proba(Xs) if task != "regression" else None
                scores, losses = _scores(task, classes, ys, pred, proba, y_fit, prep.past[idx], seg, sel_name)
                row.update(scores)
                for who, v in losses.items():
                    seg_losses[seg][who].append(v)
                if seg == "test":
                    oos.append(_oos_frame(prep, fold, k, pred, proba, classes))
                    all_y.append(ys)
                    all_pred.append(pred)
            fold_rows.append(row)
        assert model is not None
        table = pd.DataFrame(fold_rows)
        tlog.log_text(table.to_csv(index=False), "fold_metrics.csv")
        numeric = table.drop(columns=["fold"]).mean(numeric_only=True)
        metrics = {k: float(v) for k, v in numeric.items()}
        block = _block_rows(spec, prep.ts)
        for seg in ("val", "test"):
            metrics.update(_significance(seg_losses[seg], seg, sel_name, block))
        tlog.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        if len(fold_rows) > 1:
            # per-fold curves under their own keys: on the same key, MLflow's "latest" value (the one
            # runs are compared and promoted on) would be the last fold's, not the mean over folds
            for i, r in enumerate(fold_rows):
                tlog.log_metrics({f"fold_{k}": float(v) for k, v in r.items() if k.startswith(("test_", "val_"))
                                  and isinstance(v, float) and np.isfinite(v)}, step=i)
        with tempfile.TemporaryDirectory() as tmp:
            pd.concat(oos, ignore_index=True).to_parquet(Path(tmp) / "predictions.parquet")
            tlog.log_artifact(str(Path(tmp) / "predictions.parquet"), "oos")
        if task != "regression":
            fig = confusion_figure(np.concatenate(all_y), np.concatenate(all_pred), classes,
                                   f"{model_label} on test ({len(fold_rows)} fold(s))")
            tlog.log_figure(fig, "plots/confusion_matrix.png")
        imp = model.feature_importance()
        tlog.log_figure(importance_figure(imp, f"{model_label} feature importance (last fold)"),
                          "plots/feature_importance.png")
        tlog.log_text(imp.to_csv(), "feature_importance.csv")
        segments = _segments(prep, prep.folds[-1])
        sel_value = metrics.get(sel_metric, float("nan"))
        sel_base = metrics.get(f"baseline_best_{sel_metric}", float("nan"))
        beat = bool(metrics.get("val_beats_baseline", 0.0))
        tlog.log_metric("beats_baseline", float(beat))
        meta = {"feature_set": fs.describe(), "levels": job.levels, "labels": spec.describe(), "task": task,
                "flavor": model.flavor, "data": job.data_name, "data_digest": prep.ft.data_digest,
                "train_run_id": run.info.run_id, "segments": segments, "permuted_labels": permute,
                "session_gap_ms": fs.params.reset_gap_ms,
                "model_classes": None if model.classes_ is None else [int(c) for c in model.classes_]}
        version = log_model(model, X.iloc[prep.folds[-1].train].head(200), meta, model_name) or tlog.PENDING
        tlog.set_tags({"l2exp.model_version": version, "l2exp.test_start_ts": str(segments["test_start_ts"])})
        run_id = run.info.run_id
        uri = mlflow.get_tracking_uri()
    undefined = sorted(k for k, v in metrics.items() if k.startswith(("val_", "test_")) and not np.isfinite(v))
    summary = {
        "mode": "train", "run_id": run_id, "model_name": model_name, "model_version": version, "model": model_label,
        "task": task, "classes": classes, "features": fs.name, "n_features": len(fs.names),
        "folds": len(fold_rows), **prep.counts, "permuted_labels": permute,
        "rows_window": None if prep.window is None else prep.window.__dict__,
        "selection": {"metric": sel_metric, "direction": sel_dir, "value": sel_value, "baseline_best": sel_base,
                      "gain": metrics.get(f"val_{sel_name}_gain"), "gain_se": metrics.get(f"val_{sel_name}_gain_se"),
                      "block_rows": block, "z": Z_BEATS},
        "beats_baseline": beat, "test_beats_baseline": bool(metrics.get("test_beats_baseline", 0.0)),
        "val_metrics": {k: v for k, v in metrics.items() if k.startswith("val_")},
        "test_metrics": {k: v for k, v in metrics.items() if k.startswith("test_")},
        "baseline_metrics": {k: v for k, v in metrics.items() if k.startswith("baseline_")},
        "undefined_metrics": undefined, "segments": segments,
        "fit_seconds": float(table["fit_seconds"].sum()), "seconds": round(time.perf_counter() - t0, 2),
        "tracking_uri": uri, "data_digest": lineage["data.digest"],
    }
    _print(summary, metrics, model_label, job.data_name, fs.name, spec.kind)
    print_links([("run", run_url(run_id)), ("compare runs", experiment_url(mlflow.get_run(run_id).info.experiment_id))])
    write_summary(summary)
    return summary


def _print(summary: dict[str, Any], metrics: dict[str, float], model_label: str, data: str, features: str,
           kind: str) -> None:
    """Lead with the honest bars: macro-F1 and log loss beside the best baseline, accuracy beside the
    majority baseline (on L2 labels "flat" can be 90 % of rows: accuracy alone flatters)."""
    c = summary
    rows: list[tuple[str, Any]] = [
        ("run", c["run_id"]), ("registered", f"{c['model_name']} v{c['model_version']}"),
        ("rows (usable / warm-up / no label, of which cut by a session gap)",
         f"{c['usable_rows']:,} / {c['warmup_rows']:,} / {c['no_label_rows']:,}, {c['label_cut_by_gap_rows']:,}"),
        ("folds", c["folds"])]

    def fmt(seg: str, k: str, base: str) -> str:
        v = metrics.get(f"{seg}_{k}", float("nan"))
        b = metrics.get(f"baseline_{base}_{seg}_{k}", float("nan"))
        return f"{v:.4f}   ({base} baseline {b:.4f})"

    shown = [("macro_f1", "best"), ("log_loss", "best"), ("accuracy", "majority")] if kind != "regression" else \
        [("rmse", "best"), ("ic", "best"), ("hit_rate", "best")]
    for seg, label in (("val", "validation (selects)"), ("test", "test (reported only)")):
        for k, base in shown:
            rows.append((f"{label} {k}", fmt(seg, k, base)))
    if c["undefined_metrics"]:
        rows.append(("undefined (NaN) metrics", ", ".join(c["undefined_metrics"])))
    rows.append(("fit seconds", f"{c['fit_seconds']:.1f}"))
    title = f"train: {model_label} on {data} ({features}, {kind})"
    print_table(title + ("  [PERMUTED-LABEL CONTROL]" if c["permuted_labels"] else ""), rows)
    s = {k: (float("nan") if v is None else v) for k, v in c["selection"].items()}
    verdict = "beats" if c["beats_baseline"] else "[bold red]does not beat[/]"
    console.print(f"selection metric {s['metric']} = {s['value']:.5g}: {verdict} the best naive baseline "
                  f"({s['baseline_best']:.5g}; gain {s['gain']:.3g} per row, needs > {s['z']:g} x s.e. "
                  f"{s['gain_se']:.3g} over blocks of {s['block_rows']} rows)")
    if kind != "regression":  # both verdicts, never only the flattering one
        for seg, label in (("val", "validation"), ("test", "test")):
            acc, maj = metrics.get(f"{seg}_accuracy"), metrics.get(f"baseline_majority_{seg}_accuracy")
            if acc is not None and maj is not None and acc < maj:
                console.print(f"[bold yellow]{label} accuracy {acc:.4f} is below always predicting the most frequent "
                              f"class ({maj:.4f}): the model's edge, if any, is in its probabilities, not its class "
                              "calls -- threshold or size on the probabilities, not on argmax[/]")
