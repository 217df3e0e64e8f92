"""The signal a backtest trades, restricted to rows the model never saw (docs/evaluation.md).

Two sources:

* ``model`` -- the registered model scores the feature table; only rows at or after the model's
  ``test_start_ts`` (kept in its registry metadata by ``mode=train``) may be traded: every training
  and validation label window ended before it (purged), so no row at or after it was fitted on,
  early-stopped on or selected on. Features of those rows look back into earlier data, which is
  information a live trader has too -- not leakage.
* ``oos`` -- the stitched out-of-sample predictions a training run logged (``oos/predictions.parquet``):
  each fold's model on its own test segment. With ``split=walk_forward`` that covers everything
  after the first fold's training span, each row scored by a model that never saw it.

Both return, per snapshot of the traded symbol, the signal (NaN = no decision) and the earliest
timestamp at which that row may carry a signal, so the backtest can *count* in-sample rows instead
of trusting that there are none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from l2exp.errors import UserError
from l2exp.features.table import FeatureTable


def model_signal(proba: np.ndarray, task: str) -> np.ndarray:
    """Classification: P(up) - P(down); binary: 2 P(up) - 1; regression: the predicted move (bps)."""
    if task == "classification":
        return proba[:, 2] - proba[:, 0]
    if task == "binary":
        return 2 * proba[:, 1] - 1
    return proba[:, 0]


@dataclass
class TradedSignal:
    signal: np.ndarray  # per snapshot of the symbol, NaN where the strategy may not decide
    allowed_from: np.ndarray  # int64 epoch ns per snapshot: a signal before it would be in-sample
    start_ts: int  # first out-of-sample timestamp (the model's test start; oos: the earliest fold's)
    source: str  # "model" | "oos"
    run_id: str | None
    made_for_ts: np.ndarray | None = None  # int64 per snapshot: the snapshot each prediction was made for


def verify_placement(ts: np.ndarray, sig: TradedSignal) -> None:
    """Every prediction the backtest trades sits on the snapshot it was made for: a signal placed on
    another snapshot (by position in a different table, or shifted) trades the model's view of another
    time -- refused, never traded. The guard ``in_sample_rows`` relies on it."""
    decided = np.isfinite(sig.signal)
    if sig.made_for_ts is None:
        raise AssertionError("a traded signal must say which snapshot each prediction was made for")
    bad = decided & (sig.made_for_ts != ts)
    if bad.any():
        k = int(np.argmax(bad))
        raise UserError(f"{int(bad.sum()):,} of {int(decided.sum()):,} predictions would be traded on a snapshot "
                        f"other than the one they were made for (first: made for "
                        f"{pd.Timestamp(int(sig.made_for_ts[k]), tz='UTC')}, placed at "
                        f"{pd.Timestamp(int(ts[k]), tz='UTC')}): the signal is shifted", where="mode.signal",
                        fix="Backtest with predictions of this data (mode.model_run / mode.model_uri); nothing was "
                            "traded.")


def test_start_of(bundle, uri: str) -> int:  # noqa: ANN001
    """The model's first out-of-sample timestamp (its registry metadata), or a refusal: without recorded
    segments nobody can tell which rows it was trained on (backtest and replay alike)."""
    seg = (bundle.meta or {}).get("segments")
    if not seg or seg.get("test_start_ts") is None:
        raise UserError(f"model {uri} records no training/validation/test segments, so l2exp cannot tell which "
                        "rows it was trained on", where=uri,
                        fix="Retrain it with this version of l2exp (mode=train records the segments), then promote.")
    return int(seg["test_start_ts"])


def first_out_of_sample(ts: np.ndarray, start_ts: int, what: str, uri: str, where: str) -> int:
    """Index of the first row at or after ``start_ts``; refuses when there is none (trading the data
    would mean trading rows the model saw). ``what``: the data, for the message."""
    import pandas as pd

    first = int(np.searchsorted(ts, start_ts, side="left"))
    if first >= len(ts):
        span = (f"{pd.Timestamp(int(ts[0]), tz='UTC')} .. {pd.Timestamp(int(ts[-1]), tz='UTC')}" if len(ts)
                else "nothing")
        raise UserError(f"{what} has no out-of-sample row for {uri}: the model's test segment starts "
                        f"{pd.Timestamp(start_ts, tz='UTC')}, the data spans {span}", where=where,
                        fix="Use data recorded after the model's test start, or train on a span that leaves a test "
                            "segment in this data (the chrono split's last 20 %; walk-forward + mode.signal=oos "
                            "covers everything after the first fold).")
    return first


def from_model(bundle, ft: FeatureTable, rows: np.ndarray, uri: str) -> TradedSignal:  # noqa: ANN001
    """The model's signal on its out-of-sample rows of the symbol (rows = feature-table positions)."""
    start = test_start_of(bundle, uri)
    ts = ft.book["timestamp"].to_numpy()[rows]
    ok = ft.ready.to_numpy()[rows] & (ts >= start)
    signal = np.full(len(rows), np.nan)
    if ok.any():
        signal[ok] = model_signal(bundle.predict_proba(ft.features.iloc[rows[ok]]), bundle.task)
    return TradedSignal(signal, np.full(len(rows), start, dtype=np.int64), start, "model", bundle.run_id,
                        ts.astype(np.int64))


def from_oos_run(run_id: str, ft: FeatureTable, rows: np.ndarray, task: str, classes: list[str],
                 data_digest: str) -> TradedSignal:
    """The stitched out-of-fold predictions of training run ``run_id`` on the symbol's snapshots."""
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/oos/predictions.parquet")
        run = mlflow.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - MLflow raises several types for "not there"
        raise UserError(f"training run {run_id} has no out-of-sample predictions: {str(exc).splitlines()[0][:200]}",
                        where="mode.model_run",
                        fix="Pass the id of a mode=train run made with this version of l2exp (it logs "
                            "oos/predictions.parquet), e.g. one trained with split=walk_forward.") from None
    trained_on = run.data.tags.get("data_digest")
    if trained_on != data_digest:
        raise UserError(f"run {run_id}'s out-of-sample predictions belong to data digest {trained_on}; this data "
                        f"is {data_digest}", where="mode.model_run / data",
                        fix="Backtest on the data the run was trained on (same data=, same store), or use "
                            "mode.signal=model with a model whose test segment lies in this data.")
    return place_oos(pd.read_parquet(path), ft, rows, task, classes, run_id)


def _keys(symbol: np.ndarray, ts: np.ndarray) -> pd.MultiIndex:
    """(symbol, timestamp, n-th snapshot of that symbol at that timestamp): a snapshot's identity that does
    not depend on which rows a table holds (two snapshots of one millisecond stay apart)."""
    df = pd.DataFrame({"s": symbol.astype(str), "t": ts.astype(np.int64)})
    return pd.MultiIndex.from_arrays([df.s, df.t, df.groupby(["s", "t"]).cumcount()])


def place_oos(oos: pd.DataFrame, ft: FeatureTable, rows: np.ndarray, task: str, classes: list[str],
              run_id: str | None) -> TradedSignal:
    """Each out-of-fold prediction on the snapshot it was made for: joined on (symbol, timestamp), never
    by position -- a training run on a row window (``mode.rows``) numbers its rows from the window's
    start, and placing those numbers in the full table traded each prediction thousands of rows (minutes)
    before its snapshot. Refused: predictions whose snapshot is not in this data, and predictions whose
    positions and timestamps disagree (their offset from the full table is not one constant: a shifted
    or re-ordered signal)."""
    book = ft.book
    sym = book["symbol"].to_numpy()[rows].astype(str)
    symbol = sym[0] if len(sym) else ""
    oos = oos[oos["symbol"].astype(str) == symbol] if "symbol" in oos else oos
    if not len(oos):
        raise UserError(f"run {run_id} has no out-of-sample prediction for this symbol", where="mode.symbol")
    if "timestamp" not in oos:
        raise UserError(f"run {run_id}'s out-of-sample predictions carry no timestamps, so they cannot be placed "
                        "on their snapshots", where="mode.model_run",
                        fix="Retrain with this version of l2exp (it keys predictions by symbol and timestamp).")
    here = _keys(sym, book["timestamp"].to_numpy()[rows])
    pos = here.get_indexer(_keys(np.full(len(oos), symbol), oos["timestamp"].to_numpy(np.int64)))
    missing = int((pos < 0).sum())
    if missing:
        raise UserError(f"{missing:,} of run {run_id}'s {len(oos):,} out-of-sample predictions for {symbol} are "
                        "for snapshots this data does not have", where="mode.model_run / data",
                        fix="Backtest on the data the run was trained on (same data=, same store).")
    offset = rows[pos] - oos["row"].to_numpy(np.int64) if "row" in oos else np.zeros(1, np.int64)
    if len(np.unique(offset)) > 1:
        raise UserError(f"run {run_id}'s out-of-sample predictions for {symbol} are shifted: their row numbers and "
                        f"timestamps disagree (offsets {int(offset.min()):,} .. {int(offset.max()):,} rows from this "
                        "table; one window start would give one offset)", where="mode.model_run",
                        fix="The predictions file was altered or written by a broken run: retrain.")
    if task == "regression":
        proba = oos[["prediction"]].to_numpy(float)
    else:
        proba = oos[[f"p_{c}" for c in classes]].to_numpy(float)
    signal = np.full(len(rows), np.nan)
    signal[pos] = model_signal(proba, task)
    allowed = np.full(len(rows), np.iinfo(np.int64).max, dtype=np.int64)  # rows no fold tested: never
    allowed[pos] = oos["fold_test_start_ts"].to_numpy(np.int64)
    made_for = np.full(len(rows), np.iinfo(np.int64).min, dtype=np.int64)
    made_for[pos] = oos["timestamp"].to_numpy(np.int64)
    return TradedSignal(signal, allowed, int(oos["fold_test_start_ts"].min()), "oos", run_id, made_for)
