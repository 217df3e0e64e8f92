"""Dataset lineage with ``mlflow.data``: which data, which digest, how many rows, which time span,
how many rejects -- logged as a dataset input of the run (visible in the UI's Datasets panel)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from l2exp.data.stores.base import L2Store
from l2exp.tracking import log as tlog


def log_dataset(store: L2Store, book: pd.DataFrame, name: str, digest: str, context: str = "training",
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    manifests = store.manifests()
    rejected = sum(m["stats"]["rejected"] for m in manifests)
    accepted = sum(m["stats"]["accepted"] for m in manifests)
    info = {"data.source": store.location(), "data.digest": digest, "data.rows": len(book),
            "data.accepted": accepted, "data.rejected": rejected,
            "data.start": str(pd.Timestamp(int(book.timestamp.min()), tz="UTC")) if len(book) else "",
            "data.end": str(pd.Timestamp(int(book.timestamp.max()), tz="UTC")) if len(book) else "",
            "data.files": ",".join(m["path"].rsplit("/", 1)[-1] for m in manifests)[:4000],
            **(extra or {})}
    tlog.log_input(book.head(1000), source=store.location(), name=name, digest=digest[:36], context=context,
                   tags={k: str(v)[:250] for k, v in info.items()})
    tlog.set_tags({k: str(v)[:5000] for k, v in info.items()})
    return info
