"""Model registry: log a trained model with everything needed to use it correctly elsewhere, load
it back by alias with those needs enforced, and promote the best run's version to an alias.

The registered model is the native flavour (``mlflow.lightgbm`` / ``mlflow.catboost``, so the UI,
``mlflow.pyfunc.load_model`` and serving work) whose MLmodel metadata ``l2exp`` records the feature
set (names and parameters), book levels, label definition and class order. :func:`load_bundle`
rebuilds the feature set from it and refuses data that cannot supply those features.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from rich.markup import escape

from l2exp.errors import UserError
from l2exp.features.registry import FeatureSet
from l2exp.labels import LabelSpec
from l2exp.models.base import L2Model, expand_proba

PIP_REQUIREMENTS = {"lightgbm": ["lightgbm", "pandas", "numpy"], "catboost": ["catboost", "pandas", "numpy"]}


def log_model(model: L2Model, X_example: pd.DataFrame, metadata: dict[str, Any], registered_name: str) -> str | None:
    """Log and register the native model; returns the registered version (None while the tracking
    server is not answering: the saved model waits in the run's journal for ``mode=relog``)."""
    from l2exp.tracking import log as tlog

    out = model.predict_proba(X_example) if model.task != "regression" else model.predict(X_example)
    with warnings.catch_warnings():  # "integer columns cannot hold missing values": a hint for serving inputs
        warnings.simplefilter("ignore", UserWarning)
        signature = infer_signature(X_example, out)
    return tlog.log_model(model.flavor, model.logged(), registered_name, signature=signature,
                          input_example=X_example.head(5),
                          pip_requirements=PIP_REQUIREMENTS[model.flavor],  # skips ~4 s of inference
                          metadata={"l2exp": metadata})


@dataclass
class ModelBundle:
    uri: str
    version: str | None
    run_id: str | None
    model: Any  # pyfunc model
    native: Any  # the library's own model (predict_proba)
    feature_set: FeatureSet
    labels: LabelSpec
    classes: list[str]
    task: str
    levels: int
    meta: dict[str, Any]

    def model_classes(self) -> Any:
        """The classes the model saw in training, in its output order (the metadata's; models registered
        before it was recorded carry them on their scikit-learn wrapper)."""
        seen = self.meta.get("model_classes")
        return seen if seen is not None else getattr(self.native, "classes_", None)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Class probabilities, one column per class of the labels even when the model never saw a
        class in training (regression: the prediction as one column). A NumPy array in feature
        order takes the fast path (no DataFrame): ~0.1 ms per live row. LightGBM predicts through
        its booster (what the registry holds; older versions hold the wrapper around it)."""
        if isinstance(X, np.ndarray):
            X = np.atleast_2d(X)
            if self.meta["flavor"] != "lightgbm":
                X = pd.DataFrame(X, columns=self.feature_set.names) if self.task == "regression" else X
        if self.meta["flavor"] == "lightgbm":
            booster = getattr(self.native, "booster_", self.native)
            out = np.asarray(booster.predict(X), dtype=float)
            if self.task == "regression":
                return out.reshape(len(X), 1)
            return expand_proba(out if out.ndim == 1 else out.reshape(len(X), -1), self.model_classes(),
                                len(self.classes))
        if self.task == "regression":
            return np.asarray(self.native.predict(X), dtype=float).reshape(-1, 1)
        return expand_proba(np.asarray(self.native.predict_proba(X)), self.model_classes(), len(self.classes))


def load_bundle(uri: str, levels_available: int | None = None) -> ModelBundle:
    """Load ``models:/<name>@<alias>`` (or any model URI) with its feature/label contract."""
    try:
        info = mlflow.models.get_model_info(uri)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for "not there"
        raise UserError(f"cannot load model {uri}: {str(exc).splitlines()[0][:300]}", where="model URI",
                        fix="Train one (l2exp mode=train) and promote it (l2exp mode=promote), or pass a URI that "
                            "exists (models:/<name>/<version>, runs:/<run_id>/model).") from exc
    meta = (info.metadata or {}).get("l2exp")
    if not meta:
        raise UserError(f"model {uri} has no l2exp metadata (feature set, levels, labels)", where=uri,
                        fix="Load models trained by l2exp mode=train.")
    fs = FeatureSet(meta["feature_set"]["name"], include=meta["feature_set"]["features"],
                    params=meta["feature_set"]["params"])
    levels = int(meta["levels"])
    if levels_available is not None:
        fs.check_levels(int(levels_available), f"the data for model {uri}")
        if levels_available < levels:
            raise UserError(f"model {uri} was trained on {levels}-level books; the data has {levels_available}",
                            where=uri, fix="Use data with at least as many levels as the model was trained on.")
    flavor = meta["flavor"]
    native = getattr(mlflow, flavor).load_model(uri)
    spec = LabelSpec(**{k: v for k, v in meta["labels"].items() if k != "classes"})
    version = None
    if uri.startswith("models:/"):
        version = getattr(info, "registered_model_version", None)
    return ModelBundle(uri, None if version is None else str(version), info.run_id, None, native, fs, spec,
                       list(meta["labels"]["classes"]), meta["task"], levels, meta)


@dataclass(frozen=True)
class Promotion:
    """Which training runs compete and how (``conf/mode/promote.yaml``).

    Args:
        experiment: where the candidate runs are (``<prefix>-train``, or ``<prefix>-pipeline``).
        model_name: the registered model whose versions compete.
        parent_run_id: only the children of this (sweep) parent run.
        metric: ``auto`` (what the runs were trained to be selected on) or a ``val_*`` metric.
        direction: ``auto`` | ``max`` | ``min``.
        require_beat_baseline: refuse a winner that does not beat the naive baselines beyond noise.
        alias: the registry alias pointed at the winner's version.
        allow_test_selection: a ``test_*`` metric is refused unless this is true (and then flagged).
    """

    experiment: str
    model_name: str
    parent_run_id: str | None = None
    metric: str = "auto"
    direction: str = "auto"
    require_beat_baseline: bool = True
    alias: str = "champion"
    allow_test_selection: bool = False


def promote(pm: Promotion) -> dict[str, Any]:
    """Point ``pm.alias`` at the best training run's model version (MLflow already configured).

    Selection reads the *validation* metric the runs were trained to be selected on
    (``mode.metric=auto``: their ``l2exp.selection_metric`` tag, e.g. ``val_log_loss``); a ``test_*``
    metric needs ``allow_test_selection=true`` and flags the version. Permuted-label control runs
    are never candidates.
    """
    from l2exp.models.selection import beats, check_selection_metric, direction_of
    from l2exp.summary import console, print_table, write_summary
    from l2exp.tracking.setup import model_version_url, print_links, run_url

    client = MlflowClient()
    name = str(pm.model_name)
    exp = client.get_experiment_by_name(str(pm.experiment))
    if exp is None:
        raise UserError(f"no experiment {pm.experiment!r} in {mlflow.get_tracking_uri()}", where="mode.experiment",
                        fix="Train first: l2exp mode=train (experiments are l2exp-<mode>).")
    filters = [f"tags.`l2exp.model_name` = '{name}'", "attributes.status = 'FINISHED'"]
    if pm.parent_run_id:
        filters.append(f"tags.`mlflow.parentRunId` = '{pm.parent_run_id}'")
    found = client.search_runs([exp.experiment_id], filter_string=" and ".join(filters), max_results=1000)
    controls = [r for r in found if r.data.tags.get("l2exp.permuted_labels") == "true"]
    found = [r for r in found if r.data.tags.get("l2exp.permuted_labels") != "true"]
    metric = str(pm.metric)
    if metric == "auto":
        tagged = {r.data.tags.get("l2exp.selection_metric") for r in found} - {None}
        if len(tagged) != 1:
            raise UserError(f"mode.metric=auto: the candidate runs of {name!r} are selected on "
                            f"{sorted(tagged) or 'no tagged metric'}", where="mode.metric",
                            fix="Name the metric: mode.metric=val_log_loss (or val_macro_f1, val_rmse, val_ic).")
        metric = tagged.pop()
    direction = str(pm.direction)
    if direction == "auto":
        direction = direction_of(metric)
    if direction not in ("max", "min"):
        raise UserError(f"mode.direction must be max, min or auto, got {direction!r}", where="mode.direction")
    on_test = check_selection_metric(metric, pm.allow_test_selection, "mode.metric")
    runs = [r for r in found if metric in r.data.metrics and np.isfinite(r.data.metrics[metric])]
    runs.sort(key=lambda r: r.data.metrics[metric], reverse=direction == "max")
    if not runs:
        note = f" ({len(controls)} permuted-label control run(s) are never candidates)" if controls else ""
        raise UserError(f"no finished run of model {name!r} with metric {metric!r} in {pm.experiment}{note}",
                        where="mode.metric / mode.model_name",
                        fix="Check the metric name (e.g. val_log_loss, val_macro_f1, val_rmse) and that training "
                            "runs of this model exist.")
    best = runs[0]
    value = best.data.metrics[metric]
    base_key = f"baseline_best_{metric}"
    base = best.data.metrics.get(base_key)
    reason = f"best {metric} ({direction}) = {value:.5g} among {len(runs)} run(s)"
    if pm.require_beat_baseline:
        if base is None:
            raise UserError(f"run {best.info.run_id} has no {base_key} to compare with", where="mode.metric")
        seg = metric.split("_", 1)[0]
        flag = best.data.metrics.get(f"{seg}_beats_baseline")
        significant = metric == best.data.tags.get("l2exp.selection_metric") and flag is not None
        if not beats(value, base, direction) or (significant and not flag):
            how = " by more than its noise (2 block standard errors)" if significant else ""
            raise UserError(f"the best run ({metric} {value:.5g}) does not beat the naive baseline ({base:.5g})"
                            f"{how}; nothing promoted", where=f"run {best.info.run_id}",
                            fix="Improve the model, or set mode.require_beat_baseline=false to promote anyway.")
        reason += f"; beats the best naive baseline ({base:.5g})"
    version = best.data.tags.get("l2exp.model_version")
    if version is None:
        raise UserError(f"run {best.info.run_id} registered no model version", where="tags.l2exp.model_version")
    client.set_registered_model_alias(name, str(pm.alias), version)
    client.set_model_version_tag(name, version, "l2exp.selected_on", metric)
    client.set_model_version_tag(name, version, "l2exp.selected_on_test", str(on_test).lower())
    test_key = metric.replace("val_", "test_", 1)
    summary = {"mode": "promote", "model_name": name, "version": version, "alias": str(pm.alias),
               "run_id": best.info.run_id, "metric": metric, "direction": direction, "value": value,
               "baseline": base, "selected_on_test": on_test, "test_value": best.data.metrics.get(test_key),
               "test_baseline": best.data.metrics.get(f"baseline_best_{test_key}"),
               "candidates": len(runs), "controls_excluded": len(controls), "reason": reason,
               "uri": f"models:/{name}@{pm.alias}"}
    rows = [("chosen run", best.info.run_id), ("why", reason), ("model", f"{best.data.tags.get('l2exp.model')}"),
            ("features / labels", f"{best.data.tags.get('l2exp.features')} / {best.data.tags.get('l2exp.labels')}")]
    if test_key != metric and summary["test_value"] is not None:
        rows.append((f"{test_key} (reported, not used)", f"{summary['test_value']:.5g} (best baseline "
                     f"{summary['test_baseline']:.5g})"))
    print_table(f"promote: models:/{name}@{pm.alias} -> version {version}", rows)
    if on_test:
        console.print(f"[bold red]selected on a test metric ({metric}): its test score is no longer an unbiased "
                      "estimate; version tagged l2exp.selected_on_test=true[/]")
    console.print(f"backtest and sim load [bold]models:/{escape(str(name))}@{escape(str(pm.alias))}[/] by default")
    print_links([("model version", model_version_url(name, version)), ("chosen run", run_url(best.info.run_id))])
    write_summary(summary)
    return summary
