"""What a tracked run needs to know, as objects the modes layer builds from the config.

* :class:`TrackingSettings` -- where runs go (``conf/tracking/*.yaml``): the tracking URI, the
  experiment prefix, the registered model's name, bounded HTTP behaviour for a server.
* :class:`RunContext` -- one run's surroundings: the settings, the resolved config and command-line
  overrides it logs, the data it is about, and -- passed explicitly, never through the environment --
  the parent run it nests under (a sweep's or a pipeline's) and the experiment it joins.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, field, replace
from typing import Any


def worker() -> str:
    """``host:pid`` of this process (``host:pid/thread`` off the main thread), tagged on every run
    (``l2exp.worker``) and on every feature partition: a sweep's children show whether they ran in the
    driver or in a Ray worker, a table's partitions which process or thread computed them."""
    name = "" if threading.current_thread() is threading.main_thread() else f"/{threading.current_thread().name}"
    return f"{socket.gethostname()}:{os.getpid()}{name}"


@dataclass(frozen=True)
class TrackingSettings:
    uri: str
    experiment_prefix: str = "l2exp"
    model_name: str = "l2exp-model"
    champion_uri: str = ""  # models:/<model_name>@champion: what backtest, sim, stress and analyze load
    artifact_root: str | None = None  # None: the store's default (beside a SQLite file, proxied by a server)
    http: dict[str, float] = field(default_factory=dict)  # timeout_s, max_retries, backoff_factor, backoff_jitter

    def experiment_name(self, mode: str) -> str:
        return f"{self.experiment_prefix}-{mode}"


@dataclass(frozen=True)
class RunContext:
    """Args:
        tracking: where the run goes.
        config: the resolved config (logged as ``config.yaml`` and flattened params).
        overrides: the command line's overrides (logged as ``overrides.yaml``; they name the run).
        data_name: the ``l2exp.data`` tag.
        parent_run_id: the run this one nests under (a sweep's parent, a pipeline's parent), or None.
        experiment_mode: the experiment's suffix when it is not the run's own mode (a pipeline's steps
            all log into ``<prefix>-pipeline``).
        in_sweep: the run is a job of a Hydra multirun (a sweep job without a parent is refused).
    """

    tracking: TrackingSettings
    config: dict[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    data_name: str = ""
    parent_run_id: str | None = None
    experiment_mode: str | None = None
    in_sweep: bool = False

    def nested(self, parent_run_id: str, experiment_mode: str | None = None) -> RunContext:
        """The same context for runs nested under ``parent_run_id`` (a pipeline's steps)."""
        return replace(self, parent_run_id=parent_run_id, experiment_mode=experiment_mode or self.experiment_mode)
