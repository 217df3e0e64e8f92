"""Strict configs: an unknown key, a value of the wrong type or out of range, in any group, is one
message naming the key (and the closest valid key) -- checked before any run starts."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from l2exp.config import CONF_DIR
from l2exp.config_check import check_config
from l2exp.errors import UserError
from tests.conftest import make_cfg, run_cli


def check(overrides: list[str]) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        full = compose("config", overrides=overrides, return_hydra_config=True)
    choices = dict(full.hydra.runtime.choices)
    check_config(make_cfg(overrides), overrides, choices, make_cfg)


CASES = [  # (group, overrides, message, closest key in the fix)
    ("top", ["+levelz=5"], "unknown key 'levelz'", "levels"),
    ("top", ["levels=abc"], "levels must be a number", None),
    ("top", ["levels=0"], "levels must be a whole number >= 1", None),
    ("top", ["levels=-1"], "levels must be", None),
    ("mode", ["mode=sim", "mode.sample_ms=-5"], "mode.sample_ms must be >= 0", None),
    ("mode", ["mode=record", "+mode.rotate_row=5"], "unknown key", "mode.rotate_rows"),
    ("data", ["+data.levles=5"], "unknown key 'data.levles'", "data.levels"),
    ("data", ["data.levels=0"], "data.levels must be", None),
    ("store", ["+store.lock_wait=3"], "unknown key 'store.lock_wait'", "store.lock_wait_s"),
    ("store", ["store.lock_wait_s=-1"], "store.lock_wait_s must be >= 0", None),
    ("store", ["store.allow_uncommitted=maybe"], "store.allow_uncommitted must be true or false", None),
    ("validation", ["+validation.chunk=5"], "unknown key", "validation.chunk_rows"),
    ("validation", ["validation.chunk_rows=0"], "validation.chunk_rows must be", None),
    ("features", ["+features.parms=3"], "unknown key 'features.parms'", "features.params"),
    ("labels", ["+labels.horizn=3"], "unknown key", "labels.horizon"),
    ("labels", ["labels.horizon=-2"], "labels.horizon must be > 0", None),
    ("labels", ["labels.permute=3"], "labels.permute must be true or false", None),
    ("split", ["+split.tset=0.2"], "unknown key", "split.test"),
    ("split", ["split.test=1.5"], "split.test must be (0, 1)", None),
    ("split", ["split=walk_forward", "split.valid_fraction=0"], "split.valid_fraction must be", None),
    ("model", ["+model.n_estimator=5"], "unknown key", "model.n_estimators"),
    ("model", ["model.learning_rate=fast"], "model.learning_rate must be a number", None),
    ("model", ["model.subsample=2"], "model.subsample must be (0, 1]", None),
    ("model", ["model.num_leaves=-5"], "model.num_leaves must be", None),
    ("model", ["model=catboost", "model.depth=20"], "model.depth must be", None),
    ("tracking", ["+tracking.ur=x"], "unknown key", "tracking.uri"),
    ("execution", ["+execution.latncy_ms=3"], "unknown key", "execution.latency_ms"),
    ("execution", ["execution.latency_ms=-1"], "execution.latency_ms must be >= 0", None),
    ("execution", ["execution.queue_model.front_prob=1.5"], "front_prob must be [0, 1]", None),
    ("risk", ["+risk.max_pos=3"], "unknown key", "risk.limits.max_position"),
    ("risk", ["risk.limits.max_position=abc"], "risk.limits.max_position must be a number", None),
    ("risk", ["risk.enabled=3"], "risk.enabled must be true or false", None),
    ("strategy", ["+strategy.treshold=0.1"], "unknown key", "strategy.threshold"),
    ("strategy", ["strategy.base_size=0"], "strategy.base_size must be > 0", None),
    ("feed", ["+feed.sped=2"], "unknown key", "feed.speed"),
    ("feed", ["feed.speed=-1"], "feed.speed must be >= 0", None),
    ("feed", ["feed=ccxt", "+feed.client.timout_ms=5"], "unknown key", "feed.client.timeout_ms"),
    ("stress", ["+stress.size_notionl=5"], "unknown key", "stress.size_notional"),
    ("mode", ["mode=verify", "+mode.repiar=true"], "unknown key", "mode.repair"),
    ("mode", ["mode=sim", "mode.ring_capacity=0"], "mode.ring_capacity must be", None),
    ("mode", ["mode=train", "mode.rows.max_rows=0"], "mode.rows.max_rows must be", None),
    ("compute", ["compute=local", "compute.workers=-2"], "compute.workers must be", None),
    ("compute", ["compute=local", "+compute.worker=2"], "unknown key", "compute.workers"),
]


@pytest.mark.parametrize(("group", "overrides", "message", "closest"), CASES,
                         ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_bad_value_is_one_message(group, overrides, message, closest):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")) as e:
        check(overrides)
    if closest:
        assert closest in (e.value.fix or ""), e.value.fix


def test_every_group_is_covered():
    global_groups = ("hydra", "hparams_search", "experiment")  # @package _global_: they set other groups' keys
    groups = {p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name not in global_groups}
    assert groups <= {c[0] for c in CASES}, groups - {c[0] for c in CASES}


@pytest.mark.parametrize("overrides", [["levels=5"], ["model=catboost", "model.learning_rate=0.1"],
                                       ["+feed.client.options.verbose=true", "feed=ccxt"],
                                       ["execution/queue_model=power_prob", "execution.queue_model.power=3"],
                                       ["data=bitmex_ob10", "+data.instruments.FOO.contract=linear"]])
def test_valid_overrides_pass(overrides):
    check(overrides)


def test_cli_exits_2_without_traceback(workdir):
    proc = run_cli(["mode=validate", "levels=abc"], workdir)
    assert proc.returncode == 2 and "levels must be a number" in proc.stderr and "Traceback" not in proc.stderr


def test_the_base_composition_cache_returns_what_hydra_composes(tmp_path):
    """The base config is remembered on disk by group choices and the contents of conf/: the second
    call reads the file, and what it reads is what Hydra composed."""
    from omegaconf import OmegaConf

    from l2exp.config_check import compose_cached

    calls = []

    def composing(overrides: list[str]):
        calls.append(overrides)
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)

    cached = compose_cached(composing, tmp_path)
    choices = ["model=catboost", "features=minimal"]
    first = cached(choices)
    again = cached(list(reversed(choices)))  # the same choices in another order: the same key
    assert len(calls) == 1 and len(list(tmp_path.glob("base-*.yaml"))) == 1
    assert OmegaConf.to_container(again) == OmegaConf.to_container(first)
    assert again.model._target_.endswith("CatBoostModel")
    cached(["model=lightgbm"])
    assert len(calls) == 2
