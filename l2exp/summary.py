"""Run outputs every mode shares: ``summary.json`` in the Hydra output directory, and a rich table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(stderr=False, highlight=False)


def output_dir() -> Path:
    """The Hydra run directory when running under Hydra, else the current directory."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ValueError, ImportError):
        return Path.cwd()


def write_summary(summary: dict[str, Any], directory: Path | None = None) -> Path:
    d = directory or output_dir()
    d.mkdir(parents=True, exist_ok=True)
    path = d / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path


def print_table(title: str, rows: list[tuple[str, Any]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("key", style="bold")
    table.add_column("value")
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)
