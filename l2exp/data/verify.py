"""``mode=verify``: check a store end to end and, with ``mode.repair=true``, restore the clean store.

Check: every committed file re-hashed against the digest its manifest recorded (Parquet), SQLite's
``PRAGMA quick_check``, and source files begun but never committed (a killed writer).
Repair (holding the writer lock): drop everything stored from each damaged or unfinished source
file, then ingest ``data=`` again -- files whose data was dropped are read from the source and
written anew; intact files are skipped by their digest. Data recorded from a live feed has no source
file to re-read: its damaged parts are dropped and reported as lost rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.markup import escape

from l2exp.data.stores.base import BLOCKING, Issue, L2Store
from l2exp.errors import UserError
from l2exp.summary import console, print_table, print_where, write_summary


def verify_store(store: L2Store) -> list[Issue]:
    return store.integrity_issues(deep=True)


def repair_store(store: L2Store, issues: list[Issue]) -> dict[str, Any]:
    """Drop the damaged sources (and parts no manifest owns); returns what was dropped and lost."""
    bad = {i.source for i in issues if i.kind in BLOCKING and i.source}
    manifests = {m.get("digest"): m for m in store.manifests(skip_broken=True)}
    lost = sum(int(manifests.get(d, {}).get("stats", {}).get("inserted", 0)) for d in bad
               if str(manifests.get(d, {}).get("path", "")).startswith("live:"))
    removed = store.drop_sources(bad) + store.drop_uncommitted()
    return {"sources_dropped": len(bad), "files_removed": removed, "recorded_rows_lost": lost}


def verify(open_store: Callable[[], L2Store], data_name: str, repair: bool = False,
           reingest: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Check the store ``open_store()`` opens; with ``repair``, drop what is damaged and call ``reingest``
    (the source's ingest into the same store) to restore it. Prints the report, writes ``summary.json``;
    blocking issues left -> :class:`UserError` (exit 2)."""
    t0 = time.perf_counter()
    try:
        store = open_store()
    except Exception as exc:  # noqa: BLE001 - e.g. sqlite3.DatabaseError: the file is not a database
        raise UserError(f"the store of data={data_name} cannot be opened: {exc}", where="store",
                        fix="Move the file away and ingest again: l2exp mode=ingest data=...") from None
    issues = verify_store(store)
    summary: dict[str, Any] = {"mode": "verify", "store": store.location(), "issues": [i.line() for i in issues],
                               "blocking": sum(i.kind in BLOCKING for i in issues)}
    if repair and summary["blocking"]:
        with store.writer_lock():
            store.recover()
            summary["repair"] = repair_store(store, issues)
        if reingest is not None:
            console.print(f"[bold]re-ingesting data={escape(str(data_name))} to restore what was dropped[/]")
            summary["repair"]["reingested_rows"] = reingest()["inserted"]
        store = open_store()
        after = verify_store(store)
        summary["issues_after_repair"] = [i.line() for i in after]
        summary["blocking"] = sum(i.kind in BLOCKING for i in after)
    try:
        summary["store_rows"] = store.count()
    except UserError:
        summary["store_rows"] = None  # unreadable: the issues say why
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    rows = [("store", summary["store"]), ("rows", f"{summary['store_rows']:,}" if summary["store_rows"] is not None
                                                 else "unreadable")]
    rows += [("issue", line) for line in summary["issues"][:20]] or [("issues", "none")]
    if "repair" in summary:
        rows += [(f"repair: {k}", v) for k, v in summary["repair"].items()]
        rows += [("after repair", "; ".join(summary["issues_after_repair"]) or "clean")]
    print_table(f"verify: data={data_name}", rows)
    print_where([("store", summary["store"])])
    write_summary(summary)
    if summary["blocking"]:
        lines = summary.get("issues_after_repair", summary["issues"])
        raise UserError(f"{summary['blocking']} damaged or unfinished file(s) in {store.location()}:\n  "
                        + "\n  ".join(lines[:8]),
                        where=str(summary["store"]),
                        fix=f"l2exp mode=verify mode.repair=true data={data_name} (drops them and re-ingests)")
    return summary
