"""The registered LightGBM model is its booster in LightGBM's own file format: loaded back by the
registry it gives the trained model's probabilities, one column per class of the labels, also when
the model saw only some classes; versions registered as the scikit-learn wrapper still load."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from l2exp.features.registry import FeatureSet
from l2exp.labels import LabelSpec
from l2exp.models.lightgbm import LightGBMModel
from l2exp.tracking.registry import PIP_REQUIREMENTS, load_bundle, log_model

FEATURES = FeatureSet("minimal")


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)


def _data(classes: list[int], rows: int = 600, seed: int = 3) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(rows, len(FEATURES.names))), columns=FEATURES.names)
    which = (X.iloc[:, 0] > 0).to_numpy().astype(int)
    if len(classes) == 3:
        which += (X.iloc[:, 1] > 1).to_numpy()
    return X, np.asarray(classes)[which]


def _meta(model: LightGBMModel) -> dict:
    return {"feature_set": FEATURES.describe(), "levels": 10, "labels": LabelSpec(horizon=50).describe(),
            "task": "classification", "flavor": "lightgbm",
            "model_classes": [int(c) for c in model.classes_]}


def _register(model: object, X: pd.DataFrame, meta: dict, flavor_object: object | None = None) -> str:
    exp = mlflow.MlflowClient().create_experiment(f"registry-{len(mlflow.search_experiments())}")
    with mlflow.start_run(experiment_id=exp) as run:  # not the process's active experiment: another test's
        if flavor_object is None:
            log_model(model, X.head(50), meta, "l2exp-test")
        else:  # what l2exp registered before: the scikit-learn wrapper (skops)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mlflow.lightgbm.log_model(flavor_object, name="model", pip_requirements=PIP_REQUIREMENTS["lightgbm"],
                                          metadata={"l2exp": meta})
    return f"runs:/{run.info.run_id}/model"


@pytest.mark.parametrize("classes", [[0, 1, 2], [1, 2]], ids=["all classes", "no 'down' in training"])
def test_the_registered_booster_predicts_what_was_trained(tracking: str, classes: list[int]):
    X, y = _data(classes)
    model = LightGBMModel(n_estimators=30, early_stopping_rounds=5, threads=1).fit(
        X.iloc[:400], y[:400], X.iloc[400:], y[400:], "classification")
    uri = _register(model, X, _meta(model))
    files = {p.name for p in Path(mlflow.artifacts.download_artifacts(uri)).iterdir()}
    assert "model.lgb" in files and not files & {"model.skops", "model.pkl"}, files

    bundle = load_bundle(uri)
    expected = model.predict_proba(X)
    assert expected.shape == (600, 3)
    np.testing.assert_allclose(bundle.predict_proba(X), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.predict_proba(X.to_numpy()), expected, rtol=0, atol=1e-12)
    if classes == [1, 2]:
        assert (bundle.predict_proba(X)[:, 0] == 0).all()  # a class it never saw: probability 0
    assert len(mlflow.pyfunc.load_model(uri).predict(X)) == 600


def test_a_version_registered_as_the_sklearn_wrapper_still_loads(tracking: str):
    X, y = _data([0, 1, 2])
    model = LightGBMModel(n_estimators=20, early_stopping_rounds=0, threads=1).fit(X, y, None, None,
                                                                                  "classification")
    meta = {k: v for k, v in _meta(model).items() if k != "model_classes"}  # not recorded back then
    bundle = load_bundle(_register(model, X, meta, flavor_object=model.native()))
    np.testing.assert_allclose(bundle.predict_proba(X), model.predict_proba(X), rtol=0, atol=1e-12)
    np.testing.assert_allclose(bundle.predict_proba(X.to_numpy()), model.predict_proba(X), rtol=0, atol=1e-12)


def test_loading_a_registered_booster_does_not_import_skops(tracking: str, tmp_path: Path):
    X, y = _data([0, 1, 2])
    model = LightGBMModel(n_estimators=10, early_stopping_rounds=0, threads=1).fit(X, y, None, None,
                                                                                  "classification")
    uri = _register(model, X, _meta(model))
    code = ("import sys, mlflow; from l2exp.tracking.registry import load_bundle; "
            f"mlflow.set_tracking_uri({tracking!r}); load_bundle({uri!r}); print('skops' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
