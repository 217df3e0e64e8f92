"""The CLI as a user meets it: every user error is one message, exit code 2, no traceback."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys

import pytest

from l2exp.config import PROJECT_ROOT
from tests.conftest import SHARED, last_summary, needs_shared, run_cli


def assert_user_error(proc, *needles: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    for n in needles:
        assert n in out, f"{n!r} not in:\n{out}"


def test_missing_file(tmp_path):
    proc = run_cli(["mode=validate", "data=bitmex_ob10", f"data.path={tmp_path}/none.csv.gz"], tmp_path)
    assert_user_error(proc, "no file matches data.path", "where:", "fix:")
    assert proc.returncode == 2


def test_empty_file(tmp_path):
    (tmp_path / "e.csv.gz").write_bytes(b"")
    proc = run_cli(["mode=ingest", "data=bitmex_ob10", f"data.path={tmp_path}/e.csv.gz"], tmp_path)
    assert_user_error(proc, "empty", str(tmp_path / "e.csv.gz"))


def test_truncated_gzip(tmp_path):
    raw = gzip.compress(b"".join(b"2020-03-04 11:18:37,%d,XBTUSD,%s\n" % (i % 1000, b",".join([b"1"] * 40))
                                 for i in range(100_000)))
    (tmp_path / "t.csv.gz").write_bytes(raw[: len(raw) // 3])
    proc = run_cli(["mode=ingest", "data=bitmex_ob10", f"data.path={tmp_path}/t.csv.gz"], tmp_path)
    assert_user_error(proc, "truncated or corrupt", "gzip -t")


@needs_shared("lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv")
def test_wrong_columns_lists_found_closest_and_yaml(tmp_path):
    proc = run_cli(["mode=validate", "data=lobster_aapl", "data.mapping.bid_price='bid_{i}_px'"], tmp_path)
    assert_user_error(proc, "columns found", "closest found", 'bid_price: "bp{i}"')


def test_text_in_numeric_columns_is_rejected_with_line(tmp_path):
    header = "timestamp,symbol,exchange,bid_price_1,bid_size_1,ask_price_1,ask_size_1"
    rows = [f"{1_700_000_000_000_000_000 + i},S,E,100,{'abc' if i == 3 else 5},101,5" for i in range(6)]
    (tmp_path / "x.csv").write_text("\n".join([header, *rows]) + "\n")
    proc = run_cli(["mode=validate", "data=canonical_csv", f"data.path={tmp_path}/x.csv", "data.levels=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    s = last_summary(tmp_path)
    assert s["rejected_by_reason"] == {"unparseable": 1}
    assert "line 5" in s["reject_examples"]["unparseable"][0] and "abc" in s["reject_examples"]["unparseable"][0]


def test_wrong_timestamp_unit(tmp_path):
    header = "timestamp,symbol,exchange,bid_price_1,bid_size_1,ask_price_1,ask_size_1"
    rows = [f"{1_700_000_000_000 + i},S,E,100,5,101,5" for i in range(6)]  # milliseconds, config says ns
    (tmp_path / "x.csv").write_text("\n".join([header, *rows]) + "\n")
    proc = run_cli(["mode=validate", "data=canonical_csv", f"data.path={tmp_path}/x.csv", "data.levels=1"], tmp_path)
    assert_user_error(proc, "implausible for unit 'ns'", "data.mapping.timestamp.unit=ms")


@pytest.mark.parametrize(("args", "needles"), [
    (["data=nope"], ["no option 'nope' in group data", "where: data=nope", "synthetic"]),
    (["model=lightgbmm"], ["no option 'lightgbmm' in group model", "Did you mean lightgbm?", "catboost"]),
    (["mode=trian"], ["no option 'trian' in group mode", "Did you mean train?"]),
    (["risk=moderat"], ["no option 'moderat' in group risk", "Did you mean moderate?"]),
    (["-m", "model=lightgbm,catboostt"], ["no option 'catboostt' in group model", "Did you mean catboost?"]),
    (["modle=lightgbm"], ["no config group or key 'modle'", "Did you mean mode or model?"]),
])
def test_a_mistyped_group_option_or_group_is_one_message(tmp_path, args, needles):
    """Hydra's own message (its config search path, ``HYDRA_FULL_ERROR``, exit 1) became l2exp's one style:
    error / where / fix, exit 2 -- for options of every group, modes, sweeps and group names."""
    proc = run_cli(args, tmp_path)
    assert_user_error(proc, "error:", "fix:", *needles)
    assert proc.returncode == 2 and "search path" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr


def test_hydra_flags_work(tmp_path):
    proc = run_cli(["--cfg", "job", "data=bitmex_ob10", "levels=5"], tmp_path)
    assert proc.returncode == 0 and "levels: 5" in proc.stdout
    assert run_cli(["--help"], tmp_path).returncode == 0


@pytest.mark.parametrize("found_by", ["L2EXP_CONFIG_DIR", "hydra.searchpath"])
def test_a_never_seen_layout_ingests_after_one_yaml_file(tmp_path, found_by):
    """A venue nobody coded for: ';'-separated, ms epoch, ``bid_px_1``/``bid_qty_1`` names, 2 levels,
    extra columns. Only a YAML file is written, outside the package: in the folder ``L2EXP_CONFIG_DIR``
    names (the documented place, docs/data.md) or one given to Hydra's search path; ``--help`` lists it."""
    lines = ["seq;time_ms;instrument;bid_px_1;bid_qty_1;bid_px_2;bid_qty_2;ask_px_1;ask_qty_1;ask_px_2;ask_qty_2"]
    for i in range(100):
        lines.append(f"{i};{1_700_000_000_000 + 100 * i};ABC-EUR;{10 - i % 2 * 0.01:.2f};3;9.98;4;10.02;5;10.03;6")
    (tmp_path / "venue.csv").write_text("\n".join(lines) + "\n")
    conf = tmp_path / "myconf" / "data"
    conf.mkdir(parents=True)
    (conf / "myvenue.yaml").write_text(f"""
name: myvenue
path: {tmp_path}/venue.csv
levels: 2
reader:
  _target_: l2exp.data.readers.CsvReader
  delimiter: ";"
mapping:
  bid_price: "bid_px_{{i}}"
  bid_size: "bid_qty_{{i}}"
  ask_price: "ask_px_{{i}}"
  ask_size: "ask_qty_{{i}}"
  timestamp: {{column: time_ms, unit: ms}}
  symbol: {{column: instrument}}
  exchange: {{value: myvenue}}
tick_size: 0.01
""")
    if found_by == "L2EXP_CONFIG_DIR":
        env = {"L2EXP_CONFIG_DIR": str(tmp_path / "myconf")}
        proc = run_cli(["mode=ingest", "data=myvenue"], tmp_path, env=env)
        helped = run_cli(["--help"], tmp_path, env=env, fresh=True)
        assert "myvenue" in next(ln for ln in helped.stdout.splitlines() if ln.startswith("data:"))
    else:
        proc = run_cli(["mode=ingest", "data=myvenue", f"hydra.searchpath=[file://{tmp_path}/myconf]"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = last_summary(tmp_path)
    assert s["rows_in"] == s["accepted"] == 100 and s["symbols"] == {"ABC-EUR": 100}
    assert not list((PROJECT_ROOT / "conf").rglob("myvenue*"))  # nothing written inside the package


RECORDINGS = {
    "bitmex_ob10": ("bitmex/orderbook10_2020-03-10.csv.gz", 128_922, {}),
    "bitmex_ob25": ("bitmex/orderbook25_2020-02-21.csv.gz", 10_000, {}),
    "lobster_aapl": ("lobster/AAPL_2012-06-21_34200000_57600000_orderbook_10.csv", 999, {"duplicate": 27}),
    "binance_btcusdt": ("binance/BTCUSDT_depth10_20230109.jsonl.gz", 24_499, {}),
}


@pytest.mark.parametrize("name", sorted(RECORDINGS))
def test_every_recording_ingests(name, tmp_path):
    rel, rows, rejects = RECORDINGS[name]
    if not (SHARED / rel).exists():
        pytest.skip(f"recording {SHARED / rel} not found (set L2EXP_SHARED_DATA or place ../shared beside the repo)")
    proc = run_cli(["mode=ingest", f"data={name}"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    s = last_summary(tmp_path)
    assert s["rows_in"] == rows == s["accepted"] + s["rejected"]
    assert s["rejected_by_reason"] == rejects
    assert s["store_rows"] == s["accepted"] and s["seconds"] > 0
    assert {"rows_in", "accepted", "rejected", "rejected_by_reason", "seconds"} <= set(s)


def test_synthetic_default_ingests_with_both_stores(tmp_path):
    for store in ("parquet", "sqlite"):
        proc = run_cli(["mode=ingest", f"store={store}", "data.reader.n_snapshots=20000"], tmp_path)
        assert proc.returncode == 0, proc.stderr
        s = last_summary(tmp_path)
        assert s["rows_in"] == s["accepted"] == 20_000 and s["data"] == "synthetic"


def test_fast_help_is_hydras_own_help_page(tmp_path):
    """``l2exp --help`` is answered from the files (no 153 compositions); it must stay Hydra's page."""
    code = "import sys; sys.argv = ['l2exp', '--help']; from l2exp.cli import main; main()"
    hydra = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           env={**os.environ, "L2EXP_WORKDIR": str(tmp_path)}, timeout=120)
    assert hydra.returncode == 0, hydra.stderr
    assert run_cli(["--help"], tmp_path).stdout == hydra.stdout


def test_help_names_the_app_and_says_what_every_mode_does(tmp_path):
    proc = run_cli(["--help"], tmp_path)
    assert proc.returncode == 0 and "powered by Hydra" not in proc.stdout
    assert proc.stdout.startswith("l2exp -- experiments on Level-2 order books") and "README.md" in proc.stdout
    modes = sorted(p.stem for p in (PROJECT_ROOT / "conf" / "mode").glob("*.yaml"))
    section = proc.stdout.split("== Modes")[1].split("== Configuration")[0]
    described = {line.split()[0] for line in section.splitlines()[1:]
                 if line.startswith("  ") and line.split()}
    assert set(modes) == described, set(modes) ^ described


@pytest.mark.parametrize(("args", "probe"), [
    (["mode=validate", "data=bitmex_ob10"], False),
    (["-m", "mode=train", "model=lightgbm,catboost"], False),
    (["--multirun", "seed=1,2"], False),
    (["mode=train", "hparams_search=lightgbm_optuna"], True),
    (["+hparams_search=catboost_optuna"], True),
    (["hydra.mode=MULTIRUN", "seed=1,2"], True),
    (["+hydra.searchpath=[file:///x]"], True),
    (["--cfg", "job"], True),
    (["-cd", "/elsewhere"], True),
])
def test_the_mode_probe_is_skipped_only_where_no_config_can_set_hydra_mode(args, probe):
    from l2exp.cli import needs_mode_probe

    assert needs_mode_probe(args) is probe


def test_only_the_listed_groups_set_hydra_mode_and_the_probe_finds_none_without_them():
    """Skipping Hydra's mode probe is the same run only if no other config file sets ``hydra.mode``, and
    the probe itself answers None for a plain command (MULTIRUN for a search) -- checked on Hydra itself,
    so an upgrade that changes either fails here."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from l2exp.cli import MODE_SETTING_GROUPS
    from l2exp.config import CONF_DIR

    setting = {f.relative_to(CONF_DIR).parts[0] for f in CONF_DIR.rglob("*.yaml")
               if OmegaConf.select(OmegaConf.load(f), "hydra.mode") is not None}
    assert setting == set(MODE_SETTING_GROUPS)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        hydra = GlobalHydra.instance().hydra
        assert hydra.get_mode(config_name="config", overrides=["mode=validate", "data=bitmex_ob10"]) is None
        assert hydra.get_mode(config_name="config", overrides=["hparams_search=lightgbm_optuna"]) == RunMode.MULTIRUN


def test_a_command_ends_with_its_objects_collected_once_and_frozen(monkeypatch):
    import gc

    from hydra._internal.hydra import Hydra

    import l2exp.cli as cli

    monkeypatch.setattr(Hydra, "get_mode", Hydra.get_mode)  # entry() replaces it: restored after the test
    monkeypatch.setattr(sys, "argv", ["l2exp", "mode=validate"])
    monkeypatch.setattr(cli, "main", lambda: None)
    gc.unfreeze()
    try:
        cli.entry()
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_tracking_server_without_a_uri_is_one_message(tmp_path):
    """``tracking=server`` with MLFLOW_TRACKING_URI unset: exit 2 and the fix, not an interpolation traceback."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([sys.executable, "-m", "l2exp.cli", "mode=promote", "tracking=server"], cwd=PROJECT_ROOT,
                          env={**env, "L2EXP_WORKDIR": str(tmp_path)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no MLflow tracking URI" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]])
def test_a_sweep_goes_on_past_a_failed_job_and_reports_it(tmp_path, launcher):
    """``-m ... levels=5,0,10``: the levels=0 job fails (a config error), the jobs after it still run (Hydra
    stopped at the first failure), and the sweep ends with a table of the failed jobs and exit 2; the path with
    brackets in an override is printed as it is (it raised rich's MarkupError)."""
    proc = run_cli(["-m", *launcher, "mode=validate", "mode.progress=false", "data.reader.n_snapshots=2000",
                    "levels=5,0,10"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout
    assert "3 job(s), 2 succeeded, 1 FAILED" in out and "levels=0" in out and "levels must be" in out
    sweep = next((tmp_path / "multirun").glob("*/*"))
    done = sorted(p.parent.name for p in sweep.rglob("summary.json"))
    assert done == ["0", "2"]  # the job after the failed one ran
    assert "Traceback" not in proc.stderr


def test_a_list_of_paths_on_the_command_line_prints_without_a_markup_error(tmp_path):
    """``data.path=[a,b]``: the run directory's name has brackets; printed as rich markup it was
    ``MarkupError: closing tag '[/...]'``, exit 1. Every printed path is escaped: the ingest succeeds and
    the brackets are printed as they are."""
    day = SHARED / "bitmex" / "orderbook10_2020-03-04.csv.gz"
    if not day.exists():
        pytest.skip(f"{day} absent")
    a, b = tmp_path / "a.csv.gz", tmp_path / "b.csv.gz"
    with gzip.open(day, "rt") as fh:
        lines = fh.read().splitlines()[:201]
    a.write_bytes(gzip.compress(("\n".join(lines[:101]) + "\n").encode()))
    b.write_bytes(gzip.compress(("\n".join([lines[0], *lines[101:]]) + "\n").encode()))
    proc = run_cli(["mode=ingest", "data=bitmex_ob10", f"data.path=[{a},{b}]", "mode.progress=false"], tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out
    assert f"data.path=[{a},{b}]" in out and "200" in out


def test_a_delta_table_without_a_snapshot_column_is_one_message(tmp_path):
    """A delta table whose header has no snapshot column: ``TypeError: Object of type int64 is not JSON
    serializable`` in the Parquet store's commit (exit 1); now the layout error naming the key, exit 2."""
    path = tmp_path / "deltas.csv"
    path.write_text("timestamp,local_timestamp,side,price,amount\n1000,1001,bid,100,1\n1000,1001,ask,101,2\n"
                    "2000,2001,bid,100,3\n")
    proc = run_cli(["mode=ingest", "data=tardis_deribit_l2", f"data.path={path}", "mode.progress=false"], tmp_path)
    assert_user_error(proc, "no snapshot column 'is_snapshot'", "data.reader.columns.snapshot", "where:", "fix:")
    assert proc.returncode == 2


def test_unreadable_lines_are_named_before_what_they_caused(tmp_path):
    """A capture whose REST snapshot line sits behind another prefix (cryptofeed's ``<url> -> <t>: <json>``):
    the snapshot is one unparseable line and every update a ``no_snapshot`` reject. The error used to name
    only ``no_snapshot``; it now says first that lines could not be read, with the line it saw and the key."""
    src = SHARED / "binance_capture" / "usdm_btcusdt_20240808.gz"
    if not src.exists():
        pytest.skip(f"{src} absent")
    out = []
    with gzip.open(src, "rt") as fh:
        for line in fh:
            recv, payload = line.rstrip("\n").split(" ", 1)
            t = f"{int(recv) / 1e9:.6f}"
            if payload.startswith('{"lastUpdateId"'):
                out.append(f"https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000 -> {t}: {payload}")
            elif '@depth' in payload[:40]:
                out.append(f"{t}: {payload}")
            if len(out) > 400:
                break
    path = tmp_path / "cf.txt"
    path.write_text("\n".join(out) + "\n")
    proc = run_cli(["mode=ingest", "data=binance_usdm_btcusdt", f"data.path={path}", "mode.progress=false",
                    "data.reader.receive_time.separator=': '", "data.reader.receive_time.unit=s"], tmp_path)
    assert_user_error(proc, "'no_snapshot'", "1 line(s) could not be read at all", "https://fapi.binance.com",
                      "receive_time.separator")


def test_the_run_folder_keeps_what_the_run_printed(tmp_path):
    """Hydra's per-run log file stayed empty: now it holds the run's tables, warnings and links."""
    proc = run_cli(["mode=validate", "data.reader.n_snapshots=3000", "mode.progress=false"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (log,) = (tmp_path / "outputs").rglob("cli.log")
    text = log.read_text()
    assert "validate: rows_in = accepted + rejected" in text and "3,000" in text
    assert (log.parent / "summary.json").exists()
