"""The ``l2exp`` command: a thin Hydra entry point that dispatches on ``mode``.

Each ``conf/mode/<name>.yaml`` names its run function in ``run._target_``; this file only
instantiates it and turns a :class:`~l2exp.errors.UserError` into one clear message and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from l2exp.config import CONF_DIR, register_resolvers
from l2exp.errors import UserError

register_resolvers()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> Any:
    try:
        run = hydra.utils.instantiate(cfg.mode.run)
        return run(cfg)
    except UserError as err:
        print(err.render(), file=sys.stderr)
        sys.exit(2)
    except hydra.errors.InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            print(cause.render(), file=sys.stderr)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
