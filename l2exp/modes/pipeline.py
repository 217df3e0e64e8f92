"""``mode=pipeline``: ingest -> features -> train -> promote -> backtest, one MLflow parent run with a
child run per step, all in the ``<prefix>-pipeline`` experiment.

Steps whose output already exists for the same inputs are reused, not recomputed: ingest skips files
already in the store (content digest), features come from the cache (data digest + feature config),
and training is skipped when a finished run has the same *train key* (data digest, features, labels,
split, model, seed), whose registered version is then used.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

import mlflow
from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf, open_dict

from l2exp.config import instantiate
from l2exp.redact import redact
from l2exp.summary import console, print_table, write_summary
from l2exp.tracking import log as tlog
from l2exp.tracking.context import RunContext
from l2exp.tracking.runs import named, tracked_run


def train_key(cfg: DictConfig, data_digest: str) -> str:
    parts = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in ("features", "labels", "split", "model")}
    blob = json.dumps({"data": data_digest, "seed": cfg.seed, "levels": cfg.levels, **parts}, sort_keys=True,
                      default=str)
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


def _step_cfg(cfg: DictConfig, block: str) -> DictConfig:
    """The config a step's run function expects: ``mode`` replaced by the pipeline's ``block``."""
    out = cfg.copy()
    step = OmegaConf.create(OmegaConf.to_container(cfg.mode[block], resolve=True))
    step.name = block
    with open_dict(out):
        out.mode = step
    return out


def _child(ctx: RunContext, name: str, metrics: dict[str, Any], tags: dict[str, str] | None = None) -> str:
    with tracked_run(ctx, "pipeline", run_name=name, tags={"l2exp.step": name, **(tags or {})}) as run:
        tlog.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
        return run.info.run_id


def _sharpe(bt: BacktestStep) -> str:
    s = bt.sharpe
    return f"{s:.2f}" if s == s else f"undefined ({bt.sharpe_periods} one-minute intervals)"


def _headline_on_parent(client: MlflowClient, train_run_id: str, backtest: dict[str, Any]) -> None:
    """Copy what pipelines are compared on -- the model's selection, test and baseline metrics and what it
    is (model, features), the backtest's money -- onto the parent run, so the runs table of the experiment
    compares pipelines row by row without expanding each one. The backtest trades the *champion*: its
    money goes on this row only when the champion is this pipeline's model (else the row would pair one
    model's validation loss with another model's PnL); the tag ``l2exp.backtested`` says which it was."""
    from l2exp.tracking.setup import VIEW_METRICS, VIEW_TAGS

    train = client.get_run(train_run_id).data
    own = str(backtest["model_run_id"]) == train_run_id
    money = {k: float(backtest[k]) for k in VIEW_METRICS if own and backtest.get(k) is not None
             and math.isfinite(float(backtest[k]))}
    tlog.log_metrics({k: float(v) for k, v in train.metrics.items() if k in VIEW_METRICS} | money)
    tlog.set_tags({k: v for k, v in train.tags.items() if k in VIEW_TAGS} |
                  {"l2exp.train_run_id": train_run_id, "l2exp.backtest_run_id": str(backtest["run_id"]),
                   "l2exp.backtested": "this pipeline's model" if own else
                   f"the champion, version {backtest['model_version']} (run {backtest['model_run_id']}), not this "
                   "pipeline's model"})


@dataclass
class IngestStep:
    rows_in: int
    accepted: int
    rejected: int
    reused: bool  # every file was in the store already


@dataclass
class FeaturesStep:
    rows: int
    reused: bool  # the cached table
    data_digest: str


@dataclass
class TrainStep:
    run_id: str
    model_version: str
    reused: bool  # a finished run with the same train key
    selection: dict[str, Any] | None = None
    beats_baseline: bool | None = None
    val_metrics: dict[str, float] | None = None
    test_metrics: dict[str, float] | None = None


@dataclass
class PromoteStep:
    version: str
    metric: str
    value: float


@dataclass
class BacktestStep:
    run_id: str
    experiment: str
    model_run_id: str
    model_version: str | None
    pnl_net: float
    fees: float
    sharpe: float
    sharpe_periods: int
    max_drawdown: float
    n_fills: int
    kill_switch_ts: int | None
    model_test_start_ts: int
    first_decision_ts: int | None
    in_sample_rows: int
    n_snapshots: int
    trades_coverage: float

    @classmethod
    def of(cls, summary: dict[str, Any]) -> BacktestStep:
        return cls(**{f.name: summary[f.name] for f in fields(cls)})


@dataclass
class PipelineSteps:
    """What each step handed on: typed, so a step reads the previous one's fields, not a dict's keys."""

    ingest: IngestStep
    features: FeaturesStep
    train: TrainStep
    promote: PromoteStep
    backtest: BacktestStep


def _ingest(cfg: DictConfig, kid: RunContext) -> IngestStep:
    from l2exp.modes.ingest import run_ingest

    ing = run_ingest(_step_cfg(cfg, "ingest_step"))
    reused_files = sum(1 for f in ing["files"] if f["reused"])
    _child(kid, "ingest", {k: ing[k] for k in ("rows_in", "accepted", "rejected", "inserted", "seconds")} |
           {"files_reused": reused_files})
    return IngestStep(ing["rows_in"], ing["accepted"], ing["rejected"], reused_files == len(ing["files"]))


def _features(cfg: DictConfig, kid: RunContext) -> FeaturesStep:
    from l2exp.modes.build import feature_table

    ft = feature_table(cfg, instantiate(cfg.features))
    _child(kid, "features", {"rows": len(ft.features), "warmup_rows": int((~ft.ready).sum()),
                             "n_features": ft.features.shape[1], "cache_hit": float(ft.cache_hit)})
    return FeaturesStep(len(ft.features), ft.cache_hit, ft.data_digest)


def _train(cfg: DictConfig, kid: RunContext, step_ctx: Any, exp_id: str, features: FeaturesStep) -> TrainStep:
    """Reuses a finished run with the same train key (data digest, features, labels, split, model, seed)."""
    from l2exp.modes.train import run_train

    key = train_key(cfg, features.data_digest)
    client = MlflowClient()
    prior = client.search_runs([exp_id], filter_string=f"tags.`l2exp.train_key` = '{key}' and "
                               "attributes.status = 'FINISHED'", max_results=1)
    if prior and prior[0].data.tags.get("l2exp.model_version"):
        run = prior[0]
        console.print(f"reusing training run {run.info.run_id} (same data, features, labels, split, "
                      f"model, seed): model version {run.data.tags['l2exp.model_version']}")
        _child(kid, "train (reused)", {}, {"l2exp.reused_run": run.info.run_id})
        return TrainStep(run.info.run_id, run.data.tags["l2exp.model_version"], True)
    train_cfg = _step_cfg(cfg, "train_step")
    tr = run_train(train_cfg, step_ctx(train_cfg))
    client.set_tag(tr["run_id"], "l2exp.train_key", key)
    return TrainStep(tr["run_id"], str(tr["model_version"]), False, tr["selection"], tr["beats_baseline"],
                     tr["val_metrics"], tr["test_metrics"])


def _promote(cfg: DictConfig, kid: RunContext) -> PromoteStep:
    from l2exp.modes.promote import run_promote

    pcfg = _step_cfg(cfg, "promote")
    with open_dict(pcfg):
        pcfg.mode.parent_run_id = None
    pr = run_promote(pcfg)
    _child(kid, "promote", {"value": pr["value"]}, {"l2exp.version": str(pr["version"])})
    return PromoteStep(str(pr["version"]), pr["metric"], pr["value"])


def run_pipeline(cfg: DictConfig) -> dict[str, Any]:
    from l2exp.modes.backtest import run_backtest
    from l2exp.modes.build import run_context
    from l2exp.tracking.setup import configure, experiment, experiment_url, print_links, run_url

    t0 = time.perf_counter()
    ctx = run_context(cfg)
    uri = configure(ctx.tracking)
    exp_id = experiment(ctx.tracking, "pipeline")
    name = f"pipeline {cfg.data.name} {cfg.model._target_.rsplit('.', 1)[-1].removesuffix('Model')}"
    with mlflow.start_run(run_name=named(name, ctx.overrides)) as parent:
        tlog.set_tags({"l2exp.mode": "pipeline", "l2exp.data": str(cfg.data.name)})
        tlog.log_text(redact(OmegaConf.to_yaml(cfg, resolve=True)), "config.yaml")

        def step_ctx(step_cfg: DictConfig) -> RunContext:
            """A step's run: its own config, nested under this pipeline's parent, in the pipeline experiment."""
            return run_context(step_cfg).nested(parent.info.run_id, "pipeline")

        kid = ctx.nested(parent.info.run_id, "pipeline")
        console.rule("[bold]1/5 ingest")
        ingested = _ingest(cfg, kid)
        console.rule("[bold]2/5 features")
        features = _features(cfg, kid)
        console.rule("[bold]3/5 train")
        trained = _train(cfg, kid, step_ctx, exp_id, features)
        console.rule("[bold]4/5 promote")
        promoted = _promote(cfg, kid)
        console.rule("[bold]5/5 backtest")
        bt_cfg = _step_cfg(cfg, "backtest")
        bt = run_backtest(bt_cfg, step_ctx(bt_cfg))
        done = PipelineSteps(ingested, features, trained, promoted, BacktestStep.of(bt))
        _headline_on_parent(MlflowClient(), trained.run_id, bt)
        steps = asdict(done)
        tlog.log_text(json.dumps(steps, indent=1, default=str), "steps.json")
        parent_id = parent.info.run_id
    summary = {"mode": "pipeline", "parent_run_id": parent_id, "steps": steps, "tracking_uri": uri,
               "seconds": round(time.perf_counter() - t0, 1)}
    b = done.backtest
    killed = " (risk kill switch fired: loss limit reached)" if b.kill_switch_ts else ""
    print_table("pipeline done", [
        ("parent run", f"{parent_id} (experiment {cfg.tracking.experiment_prefix}-pipeline)"),
        ("ingest", f"{ingested.accepted:,} rows accepted, {ingested.rejected:,} rejected"
                   + (" (already in store)" if ingested.reused else "")),
        ("features", f"{features.rows:,} rows" + (" (cache)" if features.reused else "")),
        ("train", f"model version {trained.model_version}" + (" (reused)" if trained.reused else "")),
        ("promote", f"@{cfg.mode.promote.alias} -> v{promoted.version} (selected on "
                    f"{promoted.metric} = {promoted.value:.4g})"),
        ("backtest (out of sample)", f"{b.n_snapshots:,} snapshots from the model's test start: pnl net "
                                     f"{b.pnl_net:.2f}, sharpe {_sharpe(b)}, {b.n_fills} fills{killed}"),
    ])
    print_links([("compare runs", experiment_url(exp_id)), ("this pipeline", run_url(parent_id)),
                  ("backtest report", run_url(b.run_id, "report.html"))])
    write_summary(summary)
    return summary
