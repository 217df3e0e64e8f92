"""``mode=verify``: check ``store=`` end to end; ``mode.repair=true`` drops what is damaged and
re-ingests ``data=`` into it (:func:`l2exp.data.verify.verify`)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from l2exp.data.verify import verify
from l2exp.modes.build import store
from l2exp.modes.ingest import run_ingest


def run_verify(cfg: DictConfig) -> dict[str, Any]:
    return verify(lambda: store(cfg), str(cfg.data.name), repair=bool(cfg.mode.get("repair", False)),
                  reingest=lambda: run_ingest(cfg))
