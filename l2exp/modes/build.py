"""Config -> objects, shared by the modes: the store (ingested first when empty), the feature set and
its cache, the compute backend. Each builder names the config keys it reads."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.markup import escape

from l2exp.config import instantiate
from l2exp.data.mapping import LayoutMapping
from l2exp.data.source import DataSource
from l2exp.data.stores.base import L2Store
from l2exp.errors import UserError
from l2exp.features.partitioned import RowWindow
from l2exp.features.registry import FeatureSet
from l2exp.features.table import FeatureCache, FeatureTable
from l2exp.summary import console
from l2exp.tracking.context import RunContext, TrackingSettings


def data_source(cfg: DictConfig) -> DataSource:
    """``data=`` as a source: its files, its reader (``data.reader``, a ``_target_``) and its mapping
    (``data.mapping``) to ``levels=`` canonical levels."""
    data = cfg.data
    reader = instantiate(data.reader, levels=int(data.levels))
    mapping_cfg = OmegaConf.to_container(data.mapping, resolve=True)
    assert isinstance(mapping_cfg, dict)
    mapping = LayoutMapping.from_config(mapping_cfg, source_levels=int(data.levels), levels=int(cfg.levels))
    path = OmegaConf.to_container(data.path) if OmegaConf.is_list(data.path) else str(data.path)
    return DataSource(str(data.name), path, reader, mapping)


def store(cfg: DictConfig) -> L2Store:
    """``store=`` as an object (nothing checked or ingested)."""
    return instantiate(cfg.store)


IMPLICIT_INGEST_WAIT_S = 1800.0  # how long a mode waits for another process ingesting the same empty store


def store_with_data(cfg: DictConfig) -> L2Store:
    """The store of ``data=``; the source is ingested first when the store holds nothing yet (said on
    screen). Damaged or half-written data is refused before anything uses it
    (:meth:`L2Store.check_before_use`)."""
    st = store(cfg)
    st.check_before_use()
    if st.count() == 0:
        console.print(f"[bold]store {escape(str(st.location()))} is empty: ingesting "
                      f"data={escape(str(cfg.data.name))} first[/]")
        from omegaconf import OmegaConf, open_dict

        from l2exp.modes.ingest import run_ingest

        # jobs of a sweep start together on one empty store: the one that gets the writer lock ingests, the others
        # wait for it (then find every file ingested) instead of failing on the lock
        ingest_cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
        with open_dict(ingest_cfg):
            ingest_cfg.store.lock_wait_s = max(float(cfg.store.get("lock_wait_s", 0) or 0), IMPLICIT_INGEST_WAIT_S)
        run_ingest(ingest_cfg)
        st = store(cfg)
        if st.count() == 0:
            raise UserError(f"data={cfg.data.name} produced no accepted rows", where=str(cfg.data.path),
                            fix="Run l2exp mode=validate data=... to see why every row was rejected.")
    return st


def feature_set(cfg: DictConfig) -> FeatureSet:
    return instantiate(cfg.features)


def feature_cache(cfg: DictConfig) -> FeatureCache:
    """``<workdir>/cache/features`` for ``data=`` at ``levels=``, computed on ``compute=``."""
    return FeatureCache(Path(str(cfg.workdir)) / "cache" / "features", str(cfg.data.name), int(cfg.levels),
                        instantiate(cfg.compute))


def feature_table(cfg: DictConfig, fs: FeatureSet | None = None, st: L2Store | None = None,
                  window: RowWindow | None = None) -> FeatureTable:
    """The feature table of ``data=`` x ``features=`` (or ``fs``), in memory."""
    fs = fs or feature_set(cfg)
    return feature_cache(cfg).load(st or store_with_data(cfg), fs, window)


def row_window(rows: DictConfig | dict | None, where: str = "mode.rows") -> RowWindow:
    rows = rows or {}
    return RowWindow.parse(rows.get("start"), rows.get("end"), rows.get("max_rows"), where)


def tracking_settings(cfg: DictConfig) -> TrackingSettings:
    """``tracking=`` as an object (``conf/tracking/*.yaml`` name their class)."""
    return instantiate(cfg.tracking)


def hydra_overrides() -> list[str]:
    """The command line's overrides of this run (empty outside Hydra: a library call, a test)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        return False


def run_context(cfg: DictConfig) -> RunContext:
    """Everything a tracked run logs and where: the resolved config, the overrides, and the sweep's
    parent run when this is a sweep's job (from the environment the multirun callback set)."""
    from l2exp.modes.callbacks import PARENT_ENV

    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return RunContext(tracking_settings(cfg), resolved, tuple(hydra_overrides()), str(cfg.data.name),
                      parent_run_id=os.environ.get(PARENT_ENV) or None, in_sweep=in_sweep())
