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
    try:
        run = instantiate(cfg.mode.run)
        return objective(cfg, run(cfg))
    except UserError as err:
        print(err.render(), file=sys.stderr)
        sys.exit(2)


def objective(cfg: DictConfig, summary: Any) -> Any:
    """For sweeps: the value of ``optimized_metric`` in the run's summary (else the summary)."""
    key = cfg.get("optimized_metric")
    if not key or not isinstance(summary, dict):
        return summary
    for section in (summary, summary.get("test_metrics", {})):
        if key in section:
            return float(section[key])
    raise UserError(f"optimized_metric {key!r} is not in the run's summary", where="optimized_metric",
                    fix=f"Pick one of: {sorted(summary.get('test_metrics', summary))}")


if __name__ == "__main__":
    main()
