"""The ``l2exp`` command: a thin Hydra entry point that dispatches on ``mode``.

Each ``conf/mode/<name>.yaml`` names its run function in ``run._target_``; this file only
instantiates it and turns a :class:`~l2exp.errors.UserError` into one clear message and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from l2exp.config import CONF_DIR, instantiate, register_resolvers
from l2exp.errors import UserError

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> Any:
    from hydra.core.hydra_config import HydraConfig

    from l2exp.summary import set_output_dir

    set_output_dir(HydraConfig.get().runtime.output_dir)
    try:
        if cfg.get("optimized_metric"):  # before the run: a sweep on a test metric fails fast
            from l2exp.models.selection import check_selection_metric

            check_selection_metric(str(cfg.optimized_metric), bool(cfg.get("allow_test_selection", False)),
                                   "optimized_metric")
        _check(cfg)
        run = instantiate(cfg.mode.run)
        return objective(cfg, run(cfg))
    except UserError as err:
        print(err.render(), file=sys.stderr)
        sys.exit(2)


def _check(cfg: DictConfig) -> None:
    """Every command-line value against its group's schema (:mod:`l2exp.config_check`)."""
    from hydra.core.hydra_config import HydraConfig

    from l2exp.config_check import check_config

    hc = HydraConfig.get()
    # the user's own config directories (hydra.searchpath=[...]) hold the groups' chosen files too
    searchpath = [o for o in hc.overrides.hydra if o.lstrip("+").startswith("hydra.searchpath")]
    check_config(cfg, list(hc.overrides.task), dict(hc.runtime.choices),
                 lambda ov: hydra.compose(config_name="config", overrides=[*ov, *searchpath]))


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
    main()
