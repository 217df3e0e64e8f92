"""Compose every option of every config group and instantiate what it declares, so a broken YAML
fails CI rather than a user (as lightning-hydra-template does)."""

from __future__ import annotations

import hydra
import pytest
from omegaconf import OmegaConf

from l2exp.config import CONF_DIR
from l2exp.modes.build import data_source
from tests.conftest import make_cfg

GROUPS = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "hydra")))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def test_every_group_has_options():
    assert {"data", "store", "mode", "validation"} <= set(GROUPS)
    for g in GROUPS:
        assert options(g), f"config group {g} is empty"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_option_composes_and_resolves(group, option, workdir):
    cfg = make_cfg([f"{group}={option}"])
    OmegaConf.resolve(cfg)  # every interpolation resolves
    if group == "hparams_search":  # @package _global_: sets root keys and the sweeper
        assert cfg.optimized_metric
    elif group == "experiment":  # @package _global_: chooses the other groups (tests/test_experiments.py)
        assert cfg.mode.name and cfg.data.name
    else:
        assert cfg[group] is not None


@pytest.mark.parametrize("option", options("data"))
def test_data_option_instantiates(option, workdir):
    cfg = make_cfg([f"data={option}"])
    source = data_source(cfg)
    assert source.mapping.levels == int(cfg.levels)
    assert "path" in cfg.data, "data configs must expose a path key overridable on the CLI"


@pytest.mark.parametrize("option", options("store"))
def test_store_option_instantiates(option, workdir):
    cfg = make_cfg([f"store={option}"])
    store = hydra.utils.instantiate(cfg.store)
    assert store.count() == 0


@pytest.mark.parametrize("option", options("mode"))
def test_mode_option_has_runner(option, workdir):
    cfg = make_cfg([f"mode={option}"])
    run = hydra.utils.instantiate(cfg.mode.run)
    assert callable(run)


@pytest.mark.parametrize("option", options("compute"))
def test_compute_option_instantiates(option, workdir):
    compute = hydra.utils.instantiate(make_cfg([f"compute={option}"]).compute)
    assert callable(compute.map) and compute.describe()


@pytest.mark.parametrize("option", options("tracking"))
def test_tracking_option_instantiates(option, workdir, monkeypatch):
    from l2exp.tracking.context import TrackingSettings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    settings = hydra.utils.instantiate(make_cfg([f"tracking={option}"]).tracking)
    assert isinstance(settings, TrackingSettings) and isinstance(settings.http, dict)


@pytest.mark.parametrize("group", ["features", "labels", "split"])
def test_object_groups_instantiate(group, workdir):
    for option in options(group):
        for data in options("data"):
            cfg = make_cfg([f"{group}={option}", f"data={data}"])
            obj = hydra.utils.instantiate(cfg[group])
            assert obj is not None, f"{group}={option} with data={data}"
