"""The ``l2exp`` command: a thin Hydra entry point that dispatches on ``mode``.

Each ``conf/mode/<name>.yaml`` names its run function in ``run._target_``; this file only
instantiates it and turns a :class:`~l2exp.errors.UserError` into one clear message and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from l2exp.config import CONF_DIR, config_dirs, group_options, instantiate, register_resolvers
from l2exp.errors import UserError

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> Any:
    from hydra.core.hydra_config import HydraConfig

    from l2exp.summary import set_output_dir

    hc = HydraConfig.get()
    set_output_dir(hc.runtime.output_dir)
    from l2exp.redact import redact_files

    redact_files(Path(hc.runtime.output_dir) / ".hydra")  # its copies of the command line
    try:
        return _run(cfg, hc)
    finally:
        save_log(Path(hc.runtime.output_dir) / f"{hc.job.name}.log")


def save_log(path: Path) -> None:
    """What the run printed (tables, warnings, links: l2exp's console) appended to Hydra's per-run log file,
    which stayed empty: the run's folder now holds its own account beside ``summary.json``. Passwords are
    redacted as everywhere else."""
    from l2exp.redact import redact
    from l2exp.summary import console

    text = console.export_text(clear=True)
    if text.strip():
        try:
            with path.open("a", encoding="utf-8") as fh:
                fh.write(redact(text))
        except OSError:  # a read-only or vanished run folder: the console had it already
            pass


def _run(cfg: DictConfig, hc: Any) -> Any:
    from hydra.types import RunMode

    try:
        if cfg.get("optimized_metric"):  # before the run: a sweep on a test metric fails fast
            from l2exp.models.selection import check_selection_metric

            check_selection_metric(str(cfg.optimized_metric), bool(cfg.get("allow_test_selection", False)),
                                   "optimized_metric")
        _check(cfg)
        run = instantiate(cfg.mode.run)
        return objective(cfg, run(cfg))
    except Exception as exc:  # noqa: BLE001 - one job of a sweep: recorded, and the sweep goes on
        from l2exp.errors import disk_error

        # a user's mistake, or a read-only or full file system: one message, exit 2
        err = exc if isinstance(exc, UserError) else disk_error(exc)
        if err is not None:
            print(err.render(), file=sys.stderr)
            if hc.mode != RunMode.MULTIRUN:
                sys.exit(2)
            return failed_job(cfg, hc, err.render(), 2)
        if hc.mode != RunMode.MULTIRUN:
            raise
        import traceback

        traceback.print_exc()
        return failed_job(cfg, hc, f"{type(exc).__name__}: {exc}", 1)


FAILED_JOB = "failed_job.json"  # in a sweep job's output folder: what failed (read by modes.callbacks)


def failed_job(cfg: DictConfig, hc: Any, message: str, code: int) -> float | None:
    """A failed job of a sweep is written down -- its overrides, message and exit code -- and the sweep goes
    on (Hydra stopped at the first ``sys.exit``); ``modes.callbacks`` reports every failed job at the end and
    exits non-zero. An optimising sweeper is given NaN: Optuna counts the trial as failed."""
    import json

    from l2exp.redact import redact

    Path(hc.runtime.output_dir).mkdir(parents=True, exist_ok=True)
    record = {"job": int(hc.job.get("num", 0) or 0), "overrides": list(hc.overrides.task),
              "message": redact(message), "exit_code": code}
    (Path(hc.runtime.output_dir) / FAILED_JOB).write_text(json.dumps(record, indent=1))
    return float("nan") if cfg.get("optimized_metric") else None


def entry() -> Any:
    """The console script: ``l2exp --help`` answered from the files (:func:`fast_help`), everything
    else through Hydra (:func:`main`)."""
    if sys.argv[1:] in (["--help"], ["-h"]):
        print(fast_help())
        return None
    from l2exp.config_check import check_choices

    mistake = check_choices(sys.argv[1:], config_dirs(), CONF_DIR / "config.yaml")
    if mistake is not None:  # one message, exit 2: not Hydra's search-path dump
        print(mistake.render(), file=sys.stderr)
        sys.exit(2)
    if not needs_mode_probe(sys.argv[1:]):
        from hydra._internal.hydra import Hydra

        Hydra.get_mode = _no_mode  # type: ignore[method-assign]
    try:
        return main()
    finally:
        settle_garbage()


def settle_garbage() -> None:
    """Before the interpreter's teardown: one collection, then every survivor frozen.

    As CPython tears its modules down, the cyclic collector walks every live object several times --
    with the ~1 M objects of a run (Hydra, pandas, pyarrow, Numba) ~0.4 s of a 2 s ``mode=validate``
    (measured: 0.65 s from the last exit handler to the process's end, 0.3 s with this). The
    collection here runs the finalisers of unreachable cycles, as the teardown would; the frozen
    objects are freed as usual, only not walked again. Exit handlers (logging's, MLflow's) run after."""
    import gc

    gc.collect()
    gc.freeze()


# Config groups whose options may set ``hydra.mode`` (tests/test_cli.py fails if any other file of conf/ does).
MODE_SETTING_GROUPS = ("hparams_search",)


def needs_mode_probe(args: list[str]) -> bool:
    """Whether Hydra must compose the config once just to read ``hydra.mode`` before composing it again
    to run it (its ``Hydra.get_mode``): ~0.15 s of every command. Only a config setting ``hydra.mode``
    needs that -- in conf/ the options of :data:`MODE_SETTING_GROUPS` -- or anything the command line
    may bring in: a ``hydra.*`` override, another config name or directory, any Hydra flag but ``-m``.
    Without one, the probe finds no mode and Hydra runs the command once (``-m``: a multirun), which is
    what skipping it does."""
    for arg in args:
        if arg.startswith("-"):
            if arg not in ("-m", "--multirun"):
                return True
            continue
        key = arg.lstrip("+~").split("=", 1)[0]
        if key.startswith("hydra") or key.split("/")[0] in MODE_SETTING_GROUPS:
            return True
    return False


def _no_mode(self: Any, config_name: str | None, overrides: list[str]) -> None:
    """``Hydra.get_mode`` where no config sets ``hydra.mode`` (see :func:`needs_mode_probe`)."""
    return None


def fast_help() -> str:
    """Hydra's ``--help`` page for this app, made from ``conf/hydra/help/l2exp.yaml`` and a listing of
    ``conf/``. Hydra builds the group list by composing the config once per option -- 153 times,
    ~1.2 s of a 1.6 s command; a listing of the files gives the same page (``tests/test_cli.py``
    compares the two) in milliseconds."""
    import string

    from omegaconf import OmegaConf

    page = OmegaConf.load(CONF_DIR / "hydra" / "help" / "l2exp.yaml")
    wrapped = OmegaConf.create({"hydra": {"help": page}})
    template = str(wrapped.hydra.help.template)  # resolves ${hydra.help.header} / footer
    groups = group_options(config_dirs())  # l2exp's conf/ and the user's own (L2EXP_CONFIG_DIR or ./conf)
    listing = "".join(f"{g}: {', '.join(sorted(opts))}\n" for g, opts in sorted(groups.items()))
    return string.Template(template).safe_substitute(APP_CONFIG_GROUPS=listing)


def _check(cfg: DictConfig) -> None:
    """Every command-line value against its group's schema (:mod:`l2exp.config_check`)."""
    from hydra.core.hydra_config import HydraConfig

    from l2exp.config_check import check_config, compose_cached

    hc = HydraConfig.get()
    # the user's own config directories (hydra.searchpath=[...]) hold the groups' chosen files too
    searchpath = [o for o in hc.overrides.hydra if o.lstrip("+").startswith("hydra.searchpath")]

    def compose(ov: list[str]) -> DictConfig:
        return hydra.compose(config_name="config", overrides=[*ov, *searchpath])

    check_config(cfg, list(hc.overrides.task), dict(hc.runtime.choices),
                 compose if searchpath else compose_cached(compose, Path(str(cfg.workdir)) / "cache" / "config"))


def objective(cfg: DictConfig, summary: Any) -> Any:
    """For sweeps: the value of ``optimized_metric`` in the run's summary (else the summary).

    :func:`main` has refused a ``test_*`` metric unless ``allow_test_selection=true``: a sweep that
    chooses on the test set leaves no untouched holdout (docs/evaluation.md)."""
    key = cfg.get("optimized_metric")
    if not key or not isinstance(summary, dict):
        return summary
    sections = (summary, summary.get("val_metrics", {}), summary.get("test_metrics", {}))
    for section in sections:
        if key in section:
            return float(section[key])
    names = sorted(k for s in sections[1:] for k in s) or sorted(summary)
    raise UserError(f"optimized_metric {key!r} is not in the run's summary", where="optimized_metric",
                    fix=f"Pick one of: {names}")


if __name__ == "__main__":
    entry()
