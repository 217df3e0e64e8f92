"""Every README command, in the README's order, on an empty workdir (a fresh clone's state): the demo
(the l2exp lines of scripts/demo.sh), the real-data steps, backtest/sim/stress/analyze, the sweeps.
Two independent chains, each in README order on its own workdir (so two workers run them at once):
the commands on the recordings (``data=`` other than synthetic) and the rest (the synthetic book).

Run as written, except where a command cannot run offline or would take many minutes; each such
change is listed in ADJUST / SKIP with its reason, so the README cannot drift from what works.
"""

from __future__ import annotations

import re
import shlex
import time

import pytest

from l2exp.config import CONF_DIR, PROJECT_ROOT
from tests.conftest import SHARED, last_summary, run_cli

SKIP = {  # substring -> why it is not run here
    "feed=ccxt": "needs the internet (a live exchange); the fake-exchange tests in tests/sim cover the loop",
    "RAY_ADDRESS=": "needs a Ray cluster",
    "<": "a placeholder for an id the reader fills in",
}
ADJUST = [  # (substring, extra overrides): the same command, smaller
    ("hydra.sweeper.n_trials=30", ["hydra.sweeper.n_trials=2"]),  # 30 Optuna trials -> 2
    ("hparams_search=catboost_optuna", ["hydra.sweeper.n_trials=2", "model.iterations=20"]),  # 2 x 60 iterations: 29 s
    # the first 600 out-of-sample snapshots: at feed.speed=10, ~6 s of the run is waiting for the replay's clock
    ("mode=sim feed=replay", ["mode.max_snapshots=600"]),
]
SYNTHETIC_ROWS = "data.reader.n_snapshots=40000"  # the synthetic book's default is 200,000; the browser demo's size


def commands() -> list[str]:
    demo = [ln.strip().replace(' "$@"', "") for ln in (PROJECT_ROOT / "scripts/demo.sh").read_text().splitlines()
            if ln.strip().startswith(".venv/bin/l2exp ")]
    readme = (PROJECT_ROOT / "README.md").read_text()
    out = list(demo)
    for block in re.findall(r"```bash\n(.*?)```", readme, re.S):
        for line in block.splitlines():
            cmd = re.sub(r"\s+#.*$", "", line).strip()
            if re.match(r"^(\.venv/bin/)?l2exp |^[A-Z_]+=\S+ l2exp ", cmd):
                out.append(cmd)
    return out


def test_readme_lists_the_commands_we_run():
    cmds = commands()
    assert cmds[:2] == [".venv/bin/l2exp mode=pipeline model=lightgbm", ".venv/bin/l2exp mode=pipeline model=catboost"]
    assert any("mode=analyze" in c for c in cmds) and len(cmds) >= 15


def on_recordings(cmd: str) -> bool:
    """Whether the command reads the recordings: ``data=`` other than synthetic, on its command line or in
    the named experiment it starts (conf/experiment/<name>.yaml)."""
    if re.search(r"\bdata=(?!synthetic\b)", cmd):
        return True
    exp = re.search(r"\bexperiment=(\w+)", cmd)
    text = (CONF_DIR / "experiment" / f"{exp.group(1)}.yaml").read_text() if exp else ""
    return bool(re.search(r"override /data: (?!synthetic\b)", text))


def test_chains_partition_the_commands():
    cmds = commands()
    real = [c for c in cmds if on_recordings(c)]
    assert real and "mode=analyze data=synthetic" not in " ".join(real)
    assert all(on_recordings(c) or "data=" not in c or "data=synthetic" in c for c in cmds)
    assert on_recordings(".venv/bin/l2exp experiment=bitmex_walk_forward")
    assert not on_recordings(".venv/bin/l2exp experiment=demo_synthetic mode=train")


@pytest.mark.slow
@pytest.mark.parametrize("chain", ["synthetic", "recordings"])
def test_readme_commands_in_order_on_a_fresh_workdir(workdir, chain):
    ran, skipped = [], []
    for cmd in commands():
        if on_recordings(cmd) != (chain == "recordings"):
            continue
        why = next((r for s, r in SKIP.items() if s in cmd), None)
        if why is None and "bitmex" in cmd and not (SHARED / "bitmex").exists():
            why = f"recordings not found under {SHARED}"
        if why:
            skipped.append((cmd, why))
            continue
        args = shlex.split(cmd.replace(".venv/bin/l2exp", "l2exp"))[1:]
        if (not any(a.startswith("data=") for a in args) or "data=synthetic" in args) and chain == "synthetic":
            args.append(SYNTHETIC_ROWS)
        for sub, extra in ADJUST:
            if sub in cmd:
                args = [a for a in args if a.split("=")[0] not in {e.split("=")[0] for e in extra}] + extra
        t0 = time.perf_counter()
        proc = run_cli(args, workdir, timeout=900)
        assert proc.returncode == 0, f"README command failed: {cmd}\n{proc.stdout[-2500:]}\n{proc.stderr[-2500:]}"
        ran.append(f"{time.perf_counter() - t0:6.1f} s  {cmd}")
        if "mode=backtest" in args and "-m" not in args:
            s = last_summary(workdir)
            assert s["in_sample_rows"] == 0 and s["first_decision_ts"] >= s["model_test_start_ts"], cmd
    assert len(ran) >= (4 if chain == "synthetic" or (SHARED / "bitmex").exists() else 0), (ran, skipped)
    print("\n".join([*ran, *(f"skipped: {c}  ({w})" for c, w in skipped)]))


def test_every_readme_link_points_at_something_that_exists():
    """Relative links and pictures in the README (docs/..., docs/img/*.png taken by tests/browser) exist,
    and the experiments the README and the demo send a reader to are the ones l2exp creates."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((?!https?://|#)([^)\s]+)\)", readme)
    assert any(t.startswith("docs/img/") for t in targets)
    missing = [t for t in targets if not (PROJECT_ROOT / t.split("#")[0]).exists()]
    assert not missing, missing
    said = set(re.findall(r"experiment `(l2exp-\w+)`", readme)) | set(
        re.findall(r"experiment (l2exp-\w+)", (PROJECT_ROOT / "scripts/demo.sh").read_text()))
    made = {f"l2exp-{m}" for m in re.findall(r'tracked_run\([\w.()]+, "(\w+)"', "".join(
        p.read_text() for p in (PROJECT_ROOT / "l2exp").rglob("*.py")))}
    assert said and said <= made, (said, made)
