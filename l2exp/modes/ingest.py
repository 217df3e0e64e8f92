"""``mode=ingest`` and ``mode=validate``: ``data=`` -> a DataSource, ``validation=`` -> a Validator,
``store=`` -> a store (none for validate) -> :func:`l2exp.data.ingest.ingest`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from l2exp.config import instantiate
from l2exp.data.ingest import IngestOptions, ingest
from l2exp.data.validate import Validator
from l2exp.modes.build import data_source, store


def validator(cfg: DictConfig) -> Validator:
    return Validator(dict(cfg.validation.rules), dict(cfg.validation.get("plausible") or {}))


def options(cfg: DictConfig) -> IngestOptions:
    return IngestOptions(chunk_rows=int(cfg.validation.chunk_rows),
                         examples_per_reason=int(cfg.mode.get("examples_per_reason", 3)),
                         progress=bool(cfg.mode.get("progress", True)))


def run_ingest(cfg: DictConfig, write: bool = True) -> dict[str, Any]:
    return ingest(data_source(cfg), store(cfg) if write else None, validator(cfg), options(cfg),
                  instantiate(cfg.compute))


def run_validate(cfg: DictConfig) -> dict[str, Any]:
    return run_ingest(cfg, write=False)
