"""Run outputs every mode shares: ``summary.json`` in the run's output directory, and a rich table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from l2exp.redact import redact

# record=True: what a run printed is also written to Hydra's per-run log (<run dir>/<job>.log, cli.save_log)
console = Console(stderr=False, highlight=False, record=True)


_ADHOC: Path | None = None
_RUN_DIR: Path | None = None


def set_output_dir(path: str | Path | None) -> None:
    """Where this run's outputs go: the CLI sets Hydra's run directory (every job of a sweep, in
    whichever process or Ray worker runs it, starts in :func:`l2exp.cli.main`)."""
    global _RUN_DIR
    _RUN_DIR = None if path is None else Path(path)


def output_dir() -> Path:
    """The run directory the CLI set; called in-process (tests, notebooks), one directory per process
    under ``$L2EXP_WORKDIR/outputs/in-process/`` -- never the current directory."""
    global _ADHOC
    if _RUN_DIR is not None:
        return _RUN_DIR
    import os
    import time

    root = Path(os.environ.get("L2EXP_WORKDIR", ".")) / "outputs" / "in-process"
    if _ADHOC is None or not str(_ADHOC).startswith(str(root)):
        _ADHOC = root / time.strftime("%Y-%m-%d_%H-%M-%S") / str(os.getpid())
    return _ADHOC


def write_summary(summary: dict[str, Any], directory: Path | None = None) -> Path:
    d = directory or output_dir()
    if directory is None and "in-process" in str(d):  # a fresh file per call: newest = last run
        d = d / f"{summary.get('mode', 'run')}-{len(list(d.glob('*'))) if d.exists() else 0}"
    d.mkdir(parents=True, exist_ok=True)
    path = d / "summary.json"
    path.write_text(redact(json.dumps(summary, indent=2, default=str)))  # the text: values and str()-ed objects
    console.print(f"summary: {escape(str(path))}", soft_wrap=True)  # whole on one line: a cut path is no use
    return path


def money(x: float, currency: str = "") -> str:
    """An amount as people read it: thousands separated, cents for quote-sized amounts, six significant digits
    for small ones (a 3.2e-5 XBT drawdown is never ``0.0000``); NaN as ``n/a``."""
    if x != x:
        return "n/a"
    a = abs(x)
    text = f"{x:,.2f}" if a >= 100 or a == 0 else f"{x:.6g}" if a < 0.01 else f"{x:,.4f}"
    return f"{text} {currency}".rstrip()


def print_where(pairs: list[tuple[str, Any]]) -> None:
    """``label: location`` lines printed whole (store paths, cache files) for modes without an MLflow run."""
    for label, where in pairs:
        if where:
            console.print(escape(redact(f"{label}: {where}")), soft_wrap=True)


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    """A two-column table. Every text is printed as it is: a path or override with brackets
    (``data.path=[a,b]``) is not rich markup (it raised MarkupError)."""

    table = Table(title=escape(redact(title)), show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(escape(str(k)), escape(redact(str(v))))
    console.print(table)
