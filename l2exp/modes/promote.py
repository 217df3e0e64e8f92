"""``mode=promote``: ``mode.*`` -> a :class:`~l2exp.tracking.registry.Promotion` ->
:func:`~l2exp.tracking.registry.promote` against ``tracking=``."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from l2exp.modes.build import tracking_settings
from l2exp.tracking.registry import Promotion, promote
from l2exp.tracking.setup import configure


def promotion(cfg: DictConfig) -> Promotion:
    pm = cfg.mode
    return Promotion(experiment=str(pm.experiment), model_name=str(pm.model_name),
                     parent_run_id=str(pm.parent_run_id) if pm.get("parent_run_id") else None,
                     metric=str(pm.metric), direction=str(pm.direction),
                     require_beat_baseline=bool(pm.require_beat_baseline), alias=str(pm.alias),
                     allow_test_selection=bool(cfg.get("allow_test_selection", False)))


def run_promote(cfg: DictConfig) -> dict[str, Any]:
    configure(tracking_settings(cfg))
    return promote(promotion(cfg))
