"""Two jobs of a sweep logging the same dataset at once: the tracking server's lookup-then-insert lets the
second insert fail its unique constraint (seen on a Ray sweep). The input is linked on a retry, a bounded
number of times; any other server error is raised at once."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow.exceptions import RestException

from l2exp.tracking import log as tlog

RACE = {"error_code": "BAD_REQUEST", "message": "(sqlite3.IntegrityError) UNIQUE constraint failed: "
        "datasets.experiment_id, datasets.name, datasets.digest"}


def _args(tmp_path):
    pd.DataFrame({"timestamp": [1, 2], "bid_price_1": [1.0, 2.0]}).to_parquet(tmp_path / "sample.parquet")
    return {"source": "/store", "name": "synthetic", "digest": "abc", "context": "train", "tags": {}}


@pytest.mark.parametrize(("failures", "message", "calls", "raises"), [
    (1, RACE, 2, False),   # the other job's insert won: linked on the second call
    (5, RACE, 3, True),    # never an endless loop: three calls, then the error
    (1, {"error_code": "BAD_REQUEST", "message": "something else"}, 1, True),
])
def test_a_dataset_insert_race_is_retried_a_bounded_number_of_times(tmp_path, monkeypatch, failures, message,
                                                                    calls, raises):
    seen = []

    def log_input(ds, context=None, tags=None):  # noqa: ANN001, ANN202
        seen.append(ds.name)
        if len(seen) <= failures:
            raise RestException(message)

    monkeypatch.setattr(mlflow, "log_input", log_input)
    monkeypatch.setattr(tlog.time, "sleep", lambda s: None)
    if raises:
        with pytest.raises(RestException):
            tlog._send_input(_args(tmp_path), tmp_path)
    else:
        tlog._send_input(_args(tmp_path), tmp_path)
    assert len(seen) == calls
