"""The run journal: everything a tracked run sends to MLflow, also kept on disk, so a tracking-server
outage loses nothing.

Why our own journal and not MLflow's: MLflow has no offline queue (its async logging buffers in
memory and drops the batch when the server is gone), and the run's outputs must outlive the process.

Layout, under the run's output directory (``<hydra run dir>/tracking/``)::

    state.json      run id, experiment, run name, parent, whether/when the server stopped answering
    journal.jsonl   one line per call, in order: {"seq", "call", "args", "sent"}
    files/<seq>/    the files a call logged (text, figures, tables, a saved model)

While the server answers, each call is written here first and then sent. When a call fails
because the server stopped answering (:func:`l2exp.tracking.setup.is_outage`), the journal goes
*offline*: that call and every later one are only written here, the run computes to its end, and
:mod:`l2exp.tracking.runs` ends it with one message naming ``l2exp mode=relog mode.path=<dir>``
(:mod:`l2exp.tracking.relog`), which sends the unsent calls -- into the same run when the server
still has it, else into a new run.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE = "state.json"
ENTRIES = "journal.jsonl"


@dataclass
class JournalState:
    run_id: str
    experiment: str
    run_name: str | None
    parent_run_id: str | None
    tracking_uri: str
    started: float = field(default_factory=time.time)
    offline_from: int | None = None  # seq of the first call the server did not take
    offline_reason: str = ""
    finished: bool = False  # the run's code reached its end (every output is in the journal)
    relogged_as: str | None = None


class Journal:
    """Append-only record of one run's tracking calls (see the module docstring)."""

    def __init__(self, root: Path, state: JournalState) -> None:
        self.root = root
        self.state = state
        self.seq = 0
        (root / "files").mkdir(parents=True, exist_ok=True)
        self._save_state()

    @property
    def online(self) -> bool:
        return self.state.offline_from is None

    def files_dir(self, seq: int) -> Path:
        d = self.root / "files" / str(seq)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def append(self, seq: int, call: str, args: dict[str, Any]) -> None:
        with open(self.root / ENTRIES, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"seq": seq, "call": call, "args": args}, default=str) + "\n")

    def go_offline(self, seq: int, reason: str) -> None:
        self.state.offline_from = seq
        self.state.offline_reason = reason
        self._save_state()

    def finish(self) -> None:
        self.state.finished = True
        self._save_state()

    def _save_state(self) -> None:
        tmp = self.root / (STATE + ".tmp")
        tmp.write_text(json.dumps(asdict(self.state), indent=1))
        tmp.replace(self.root / STATE)


def read(root: Path) -> tuple[JournalState, list[dict[str, Any]]]:
    """The state and entries of a journal directory (raises ``FileNotFoundError`` if it is not one)."""
    state = JournalState(**json.loads((root / STATE).read_text()))
    entries = []
    path = root / ENTRIES
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except json.JSONDecodeError:  # the process died mid-line: that call never returned
                    break
    return state, entries


def mark_relogged(root: Path, run_id: str) -> None:
    state, _ = read(root)
    state.relogged_as = run_id
    (root / STATE).write_text(json.dumps(asdict(state), indent=1))


_ACTIVE: list[Journal] = []


def active() -> Journal | None:
    return _ACTIVE[-1] if _ACTIVE else None


def push(journal: Journal) -> None:
    _ACTIVE.append(journal)


def pop() -> None:
    if _ACTIVE:
        _ACTIVE.pop()
