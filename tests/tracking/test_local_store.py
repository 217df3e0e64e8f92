"""A new local tracking store starts as a copy of an empty one MLflow built (not MLflow's ~60 migrations
each time): it must be the store MLflow would have built, with its own Default experiment, and a bad
copy must not cost the user anything."""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from pathlib import Path

import mlflow
import pytest

from l2exp.tracking import local_store


@pytest.fixture
def template_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv(local_store.TEMPLATE_ENV, str(d))
    return d


def _schema(db: Path) -> tuple[list, list]:
    """Every table and index with its definition's lines sorted: MLflow's own builds list a table's
    constraints in varying order (Alembic's batch migrations go through a set)."""
    with contextlib.closing(sqlite3.connect(db)) as con:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    return [(kind, name, sorted(ln.strip().rstrip(",") for ln in (sql or "").splitlines()))
            for kind, name, sql in rows], version


def _uri(db: Path) -> str:
    return f"sqlite:///{db}"


def test_a_seeded_store_is_the_store_mlflow_builds(tmp_path: Path, template_dir: Path, monkeypatch):
    by_mlflow = tmp_path / "a" / "mlflow.db"
    by_mlflow.parent.mkdir()
    mlflow.MlflowClient(tracking_uri=_uri(by_mlflow)).search_experiments()

    seeded = tmp_path / "b" / "mlflow.db"
    monkeypatch.chdir(tmp_path)
    local_store.create_or_open(seeded, _uri(seeded))
    assert local_store.template_path().exists() and local_store.template_path().parent == template_dir
    assert _schema(seeded) == _schema(by_mlflow)

    client = mlflow.MlflowClient(tracking_uri=_uri(seeded), registry_uri=_uri(seeded))
    (default,) = client.search_experiments()
    assert (default.experiment_id, default.name) == ("0", "Default")
    assert default.artifact_location == str(tmp_path / "mlruns" / "0")  # the store's own, not the template's
    exp = client.create_experiment("x")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.5)
    client.create_registered_model("l2exp-x")
    assert client.get_run(run.info.run_id).data.metrics == {"m": 1.5}
    with contextlib.closing(sqlite3.connect(local_store.template_path())) as con:  # the template stays empty
        assert con.execute("SELECT count(*) FROM experiments").fetchone() == (0,)


def test_an_existing_store_is_opened_not_replaced(tmp_path: Path, template_dir: Path):
    db = tmp_path / "mlflow.db"
    local_store.create_or_open(db, _uri(db))
    mlflow.MlflowClient(tracking_uri=_uri(db)).create_experiment("kept")
    local_store.create_or_open(db, _uri(db))
    assert "kept" in [e.name for e in mlflow.MlflowClient(tracking_uri=_uri(db)).search_experiments()]


def test_a_template_mlflow_refuses_is_dropped_and_the_store_built_by_mlflow(tmp_path: Path, template_dir: Path):
    template = local_store.ensure_empty_template()
    with contextlib.closing(sqlite3.connect(template)) as con:  # a schema revision this MLflow does not know
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
        con.commit()
    db = tmp_path / "mlflow.db"
    local_store.create_or_open(db, _uri(db))
    assert not template.exists()  # rebuilt on the next new store
    (default,) = mlflow.MlflowClient(tracking_uri=_uri(db)).search_experiments()
    assert default.name == "Default"
    assert _schema(db)[1] != [("ffffffffffff",)]


def test_an_unwritable_cache_falls_back_to_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv(local_store.TEMPLATE_ENV, str(blocker / "cache"))
    assert local_store.ensure_empty_template() is None
    db = tmp_path / "mlflow.db"
    local_store.create_or_open(db, _uri(db))
    assert [e.name for e in mlflow.MlflowClient(tracking_uri=_uri(db)).search_experiments()] == ["Default"]


def _create(db: str) -> None:
    local_store.create_or_open(Path(db), _uri(Path(db)))
    mlflow.MlflowClient(tracking_uri=_uri(Path(db))).create_experiment(f"p{multiprocessing.current_process().pid}")


def test_processes_creating_one_store_and_the_template_at_once(tmp_path: Path, template_dir: Path):
    """Two processes, no template yet, one new store: one builds the template, both share the store."""
    db = tmp_path / "mlflow.db"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_create, args=(str(db),)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    names = {e.name for e in mlflow.MlflowClient(tracking_uri=_uri(db)).search_experiments()}
    assert names == {"Default"} | {f"p{p.pid}" for p in procs}
    assert sorted(p.name for p in template_dir.iterdir()) == [local_store.template_path().name,
                                                               local_store.template_path().name + ".lock"]
