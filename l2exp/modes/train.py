"""``mode=train``: ``features=``, ``labels=``, ``split=``, ``model=`` and ``mode.rows`` -> a
:class:`~l2exp.models.train.TrainSpec`; the store (ingested first when empty) and the feature table
of that window -> :func:`~l2exp.models.train.train`, tracked under ``tracking=``."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from l2exp.config import instantiate
from l2exp.models.train import TrainSpec, train
from l2exp.modes.build import feature_cache, feature_set, row_window, run_context, store_with_data
from l2exp.tracking.context import RunContext


def train_spec(cfg: DictConfig) -> TrainSpec:
    window = row_window(cfg.mode.get("rows"))
    return TrainSpec(data_name=str(cfg.data.name), levels=int(cfg.levels), features=feature_set(cfg),
                     labels=instantiate(cfg.labels), splitter=instantiate(cfg.split),
                     make_model=lambda: instantiate(cfg.model), model_name=str(cfg.tracking.model_name),
                     seed=int(cfg.seed), window=window)


def run_train(cfg: DictConfig, ctx: RunContext | None = None) -> dict[str, Any]:
    """``ctx``: the run's context when a pipeline nests it (else built from ``cfg``)."""
    job = train_spec(cfg)
    store = store_with_data(cfg)
    table = feature_cache(cfg).load(store, job.features, job.window)
    return train(job, store, table, ctx or run_context(cfg))
