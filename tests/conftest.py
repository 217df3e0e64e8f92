"""Shared fixtures: composed configs, an isolated workdir, the real recordings (skipped when absent)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from l2exp.config import CONF_DIR, PROJECT_ROOT, shared_data_dir
from tests.cli_zygote import Zygote

SHARED = shared_data_dir()
pytest_plugins = ["tests.ray_cluster"]  # the session's local Ray cluster fixture (``ray_cluster``)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Whole-mode runs (``slow``) first: with pytest-xdist's load scheduling each starts at once on a
    free worker instead of queueing behind the quick tests (the README chains take minutes each)."""
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, "test_readme" not in item.nodeid))


def needs_shared(*rel: str):
    """Skip (with the reason) when a recording in ../shared/data is absent."""
    missing = [r for r in rel if not (SHARED / r).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"recordings not found under {SHARED}: {missing} "
                              "(set L2EXP_SHARED_DATA or place ../shared/data beside the repo)")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("L2EXP_WORKDIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    return tmp_path


def make_cfg(overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=False)


@pytest.fixture
def cfg_factory(workdir: Path):
    return make_cfg


_zygote: Zygote | None = None


def run_cli(args: list[str], workdir: Path, env: dict[str, str] | None = None,
            timeout: float = 600, fresh: bool = False) -> subprocess.CompletedProcess:
    """Run ``l2exp`` as a user would; returns the completed process (stdout+stderr captured). The timeout
    catches a hang, not slowness: a loaded 2-core CI machine ran a 20 s training for > 300 s.

    The command is a fork of this worker's warm interpreter (:mod:`tests.cli_zygote`: the imports done
    once, not once per command); ``fresh=True`` -- or ``L2EXP_TEST_ZYGOTE=0`` for every command -- starts
    a new interpreter, for what happens at start-up itself."""
    global _zygote
    e = dict(os.environ)
    e["L2EXP_WORKDIR"] = str(workdir)
    e.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{workdir}/mlruns/mlflow.db")
    e["COLUMNS"] = "200"
    e.update(env or {})
    if not fresh and os.environ.get("L2EXP_TEST_ZYGOTE", "1") != "0":
        _zygote = _zygote or Zygote()
        proc = _zygote.run(args, e, PROJECT_ROOT, timeout)
        if proc is not None:
            return proc
    return subprocess.run([sys.executable, "-m", "l2exp.cli", *args], cwd=PROJECT_ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _zygote is not None:
        _zygote.stop()


def last_summary(workdir: Path) -> dict:
    """The summary.json of the newest run under workdir/outputs."""
    files = sorted((workdir / "outputs").rglob("summary.json"), key=lambda p: p.stat().st_mtime)
    assert files, f"no summary.json under {workdir / 'outputs'}"
    return json.loads(files[-1].read_text())


def sweep_runs(client, experiment: str = "l2exp-train") -> tuple[object, list]:  # noqa: ANN001 - MlflowClient
    """The one sweep parent run of ``experiment`` and its child runs (asserts there is exactly one parent)."""
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("l2exp.sweep") == "parent"]
    assert len(parents) == 1, f"{len(parents)} sweep parents in {experiment}"
    return parents[0], [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
