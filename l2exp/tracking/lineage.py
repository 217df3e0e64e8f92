"""Dataset lineage with ``mlflow.data``: which data, which digest, how many rows, which time span,
how many rejects -- logged as a dataset input of the run (visible in the UI's Datasets panel)."""

from __future__ import annotations

import warnings
from typing import Any

import mlflow
import pandas as pd

from l2exp.data.stores.base import L2Store


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
    sample = book.head(1000)
    with warnings.catch_warnings():  # the int64 timestamp column triggers a schema hint meant for model inputs
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(sample, source=store.location(), name=name, digest=digest[:36])
    mlflow.log_input(ds, context=context, tags={k: str(v)[:250] for k, v in info.items()})
    mlflow.set_tags({k: str(v)[:5000] for k, v in info.items()})
    return info
