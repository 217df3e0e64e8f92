"""``mode=relog``: find the journal(s) of ``mode.run_id`` under ``<workdir>/outputs`` (or at
``mode.path``) and send what the tracking server missed (:func:`l2exp.tracking.relog.relog`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from l2exp.errors import UserError
from l2exp.modes.build import tracking_settings
from l2exp.summary import print_table, write_summary
from l2exp.tracking import journal as jr
from l2exp.tracking.relog import journal_of_run, journals_under, relog
from l2exp.tracking.setup import configure, print_links, run_url


def run_relog(cfg: DictConfig) -> dict[str, Any]:
    outputs = Path(str(cfg.workdir)) / "outputs"
    if cfg.mode.get("run_id"):
        roots = journal_of_run(outputs, str(cfg.mode.run_id))
        if not roots:
            raise UserError(f"no journal of run {cfg.mode.run_id} under {outputs}", where="mode.run_id",
                            fix="Pass the run id the outage message named, with the same workdir (L2EXP_WORKDIR), "
                                "or the journal directory itself: mode.path='\"<dir>\"'")
    elif cfg.mode.get("path"):
        path = Path(str(cfg.mode.path)).expanduser()
        roots = journals_under(path) if path.exists() else []
        if not roots:
            raise UserError(f"no run journal at {path} (a journal directory holds {jr.STATE})", where="mode.path",
                            fix="Pass the directory the outage message named (<run output dir>/tracking), or "
                                "mode.run_id=<id>.")
    else:
        raise UserError("mode=relog needs the run to send", where="mode.run_id / mode.path",
                        fix="l2exp mode=relog mode.run_id=<the run id the outage message named>, or "
                            "mode.path=<a journal dir or a sweep's output dir> for all runs under it")
    configure(tracking_settings(cfg))
    done = [relog(r, bool(cfg.mode.get("force", False))) for r in roots]
    rows = [(d["path"], f"{d['sent']} call(s) -> run {d['run_id']} ({d['into']})"
             + (f", model version {d['model_version']}" if d.get("model_version") else "")) for d in done]
    print_table("relog", rows)
    for d in done:
        if d.get("sent"):
            print_links([("run", run_url(d["run_id"]))])
    summary = {"mode": "relog", "journals": done}
    write_summary(summary)
    return summary
