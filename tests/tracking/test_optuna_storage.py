"""A shared Optuna study's storage is created once before the sweep opens it: sweeps started together on
a new storage must not lose one of them to Optuna's unlocked table creation."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from l2exp.errors import UserError
from l2exp.tracking import optuna_storage
from l2exp.tracking.optuna_storage import prepare_study_storage
from tests.conftest import run_cli


def _open_study(url: str) -> None:
    prepare_study_storage(url)
    optuna.create_study(study_name="shared", storage=url, load_if_exists=True).enqueue_trial({"x": 1.0})


def test_processes_opening_one_new_storage_at_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/sub/optuna.db"  # the folder does not exist yet either
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_study, args=(url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(optuna.load_study(study_name="shared", storage=url).get_trials(deepcopy=False)) == 3


def test_a_concurrent_creation_is_waited_for_and_other_errors_are_said(monkeypatch: pytest.MonkeyPatch):
    calls = []

    class Storage:
        def __init__(self, url: str) -> None:
            calls.append(url)
            if len(calls) == 1:  # what the loser of the race sees
                raise sqlalchemy.exc.OperationalError("CREATE TABLE", {}, Exception("table trials already exists"))
            self.engine = sqlalchemy.create_engine("sqlite://")

    monkeypatch.setattr(optuna.storages, "RDBStorage", Storage)
    monkeypatch.setattr(optuna_storage.time, "sleep", lambda s: None)
    prepare_study_storage("postgresql://team@db/optuna")
    assert len(calls) == 2

    class Refused:
        def __init__(self, url: str) -> None:
            raise sqlalchemy.exc.OperationalError("connect", {}, Exception("password authentication failed"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", Refused)
    with pytest.raises(UserError, match="password authentication failed") as e:
        prepare_study_storage("postgresql://team@db/optuna")
    assert e.value.where == "hydra.sweeper.storage"


@pytest.mark.parametrize("storage", ["postgresql://nobody@127.0.0.1:1/optuna", "sqlite:////proc/no-such/optuna.db"],
                         ids=["driver missing or refused", "folder not writable"])
def test_a_storage_that_cannot_be_opened_stops_the_sweep_with_one_message(workdir, storage):
    """Hydra turns a callback's exception into a warning and sweeps on: the sweep must stop at once instead."""
    proc = run_cli(["mode=train", "hparams_search=lightgbm_optuna", f"hydra.sweeper.storage={storage}",
                    "hydra.sweeper.n_trials=1", "data.reader.n_snapshots=5000"], workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "cannot" in proc.stderr and "where: hydra.sweeper.storage" in proc.stderr
    assert not (workdir / "mlruns").exists()  # stopped before the sweep's parent run
