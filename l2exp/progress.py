"""One status line for a long step (a model fit, a sim, a rebuild of captured updates).

On a terminal the line is redrawn at most every ``every_s`` seconds; elsewhere (a log file, CI, a sweep
job's captured output) nothing is printed while the step runs and one line when it ends, if it took longer
than ``every_s`` -- a log stays one line per step. Callers ask :meth:`due` before building the text, so a
hot loop pays one clock read.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class LineProgress:
    def __init__(self, every_s: float = 2.0, stream: TextIO | None = None) -> None:
        self.every_s = float(every_s)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.last = time.perf_counter()
        self.drawn = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def due(self) -> bool:
        """A redraw is due (on a terminal, ``every_s`` after the last one)."""
        return self.tty and time.perf_counter() - self.last >= self.every_s

    def show(self, text: str) -> None:
        self.last = time.perf_counter()
        self.stream.write("\r" + text + " " * 4)
        self.stream.flush()
        self.drawn = True

    def done(self, text: str) -> None:
        if not self.drawn and self.elapsed() < self.every_s:
            return
        self.stream.write(("\r" if self.tty else "") + text + "\n")
        self.stream.flush()
