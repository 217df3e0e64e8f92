"""Named experiments (``conf/experiment/*.yaml``, ``# @package _global_``): each composes to what it
names and runs, as a user would start it (``l2exp experiment=<name>``), in a fast setting -- the
lightning-hydra-template ``tests/test_sweeps.py`` idea, so a broken experiment fails CI, not a user."""

from __future__ import annotations

import pytest
from hydra.core.global_hydra import GlobalHydra

from l2exp.config import CONF_DIR, instantiate
from tests.conftest import SHARED, last_summary, make_cfg, run_cli

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
FAST = {"LightGBMModel": ["model.n_estimators=30"], "CatBoostModel": ["model.iterations=30"]}


def test_there_are_experiments():
    assert len(EXPERIMENTS) >= 3


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_an_experiment_composes_to_what_it_names(name):
    GlobalHydra.instance().clear()
    cfg = make_cfg([f"experiment={name}"])
    text = (CONF_DIR / "experiment" / f"{name}.yaml").read_text()
    assert text.startswith("# @package _global_")
    for group in ("mode", "data", "model"):
        named = next(ln.split(":")[1].strip() for ln in text.splitlines() if f"override /{group}:" in ln)
        got = cfg[group].name if group in ("mode", "data") else cfg.model._target_.rsplit(".", 1)[-1].lower()
        assert named in str(got).lower(), (group, named, got)
    instantiate(cfg.features)
    assert type(instantiate(cfg.model)).__name__ in FAST


def run_by_the_readme_chain(name: str) -> bool:
    """Whether tests/integration/test_readme.py runs ``l2exp experiment=<name>`` exactly as written (no other
    argument, nothing adjusted): that run is this test's at full size."""
    from tests.integration.test_readme import ADJUST, commands

    cmd = f".venv/bin/l2exp experiment={name}"
    return cmd in commands() and not any(sub in cmd for sub, _ in ADJUST)


def test_the_readme_chain_runs_the_walk_forward_experiment_as_written():
    assert run_by_the_readme_chain("bitmex_walk_forward") and not run_by_the_readme_chain("demo_synthetic")


@pytest.mark.slow
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_runs_in_a_fast_setting(workdir, name):
    if run_by_the_readme_chain(name):
        pytest.skip(f"the README chain runs `l2exp experiment={name}` as written, at full size")
    cfg = make_cfg([f"experiment={name}"])
    data = str(cfg.data.name)
    if data != "synthetic" and not any(SHARED.glob("*")):
        pytest.skip(f"experiment {name} reads the recordings of data={data}: not found under {SHARED}")
    args = [f"experiment={name}", "mode.progress=false", *FAST[type(instantiate(cfg.model)).__name__]]
    if data == "synthetic":
        args.append("data.reader.n_snapshots=30000")
    if cfg.mode.name == "pipeline":  # 30 trees need not beat the baselines; the promote step must still run
        args.append("mode.promote.require_beat_baseline=false")
    proc = run_cli(args, workdir)
    assert proc.returncode == 0, f"experiment={name} failed:\n{proc.stdout[-2500:]}\n{proc.stderr[-2500:]}"
    s = last_summary(workdir)
    assert s["mode"] == str(cfg.mode.name)
