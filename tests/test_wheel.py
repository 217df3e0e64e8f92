"""The wheel carries the config groups: ``l2exp`` works from an installed wheel, outside any checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from l2exp.config import CONF_DIR, PROJECT_ROOT

UV = PROJECT_ROOT / ".uv" / "bin" / "uv"


@pytest.mark.slow
def test_the_wheel_holds_every_config_and_runs_outside_the_checkout(tmp_path):
    """``uv build`` gave a wheel without one YAML file (conf/ sat beside the package): installed anywhere,
    ``l2exp`` found no config. Now every file of conf/ is in the wheel, and the package unpacked from it --
    first on the path, run from an empty folder -- composes and validates the synthetic book."""
    uv = str(UV) if UV.exists() else shutil.which("uv")
    if uv is None:
        pytest.skip("no uv (scripts/install.sh puts it in .uv/)")
    out = tmp_path / "dist"
    build = subprocess.run([uv, "build", "--wheel", "--out-dir", str(out), str(PROJECT_ROOT)], capture_output=True,
                           text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("l2exp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    want = {f"l2exp/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    assert len(want) > 60 and want <= names, sorted(want - names)[:5]
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), L2EXP_WORKDIR=str(elsewhere))
    run = subprocess.run([sys.executable, "-c", "import l2exp.config as c; print(c.CONF_DIR)"], cwd=elsewhere,
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == str(site / "l2exp" / "conf"), run.stdout + run.stderr
    cli = subprocess.run([sys.executable, "-m", "l2exp.cli", "mode=validate", "data.reader.n_snapshots=2000",
                          "mode.progress=false"], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0 and "accepted" in cli.stdout, cli.stdout[-1500:] + cli.stderr[-1500:]
