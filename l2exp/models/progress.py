"""Progress of a model fit: iteration and validation loss as the boosting goes (LightGBM and CatBoost
callbacks), so a 5-minute fit is never silent.

On a terminal one line is redrawn at most every ``every_s`` seconds; elsewhere (a log file, CI, a sweep
job's captured output) nothing is printed while it runs and one line when it ends, if it took longer than
``every_s`` -- a log stays a line per step.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class FitProgress:
    def __init__(self, label: str, total: int, every_s: float = 2.0, stream: TextIO | None = None) -> None:
        self.label, self.total, self.every_s = label, int(total), float(every_s)
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = self.last = time.perf_counter()
        self.iteration, self.metric, self.value = 0, "", float("nan")
        self.drawn = False

    def update(self, iteration: int, metric: str = "", value: float = float("nan")) -> None:
        self.iteration, self.metric, self.value = int(iteration), metric, float(value)
        now = time.perf_counter()
        if self.tty and now - self.last >= self.every_s:
            self.last = now
            self.stream.write("\r" + self._text(now) + " " * 4)
            self.stream.flush()
            self.drawn = True

    def _text(self, now: float) -> str:
        loss = f", validation {self.metric} {self.value:.6g}" if self.metric else ""
        return f"{self.label}: iteration {self.iteration:,}/{self.total:,}{loss}, {now - self.t0:,.0f} s"

    def done(self, best_iteration: int | None) -> None:
        now = time.perf_counter()
        if not self.drawn and now - self.t0 < self.every_s:
            return
        best = f", best iteration {best_iteration:,}" if best_iteration else ""
        self.stream.write(("\r" if self.tty else "") + self._text(now) + best + "\n")
        self.stream.flush()


def lightgbm_callback(progress: FitProgress) -> Any:
    """A LightGBM callback feeding ``progress`` (the last validation metric of each iteration)."""

    def callback(env: Any) -> None:
        res = env.evaluation_result_list or []
        name, value = (res[-1][1], res[-1][2]) if res else ("", float("nan"))
        progress.update(env.iteration + 1, name, value)

    callback.order = 30  # after LightGBM's own evaluation callbacks
    return callback


class CatBoostCallback:
    """CatBoost's ``callbacks=[...]`` protocol: ``after_iteration(info)`` -> keep going."""

    def __init__(self, progress: FitProgress) -> None:
        self.progress = progress

    def after_iteration(self, info: Any) -> bool:
        valid = (info.metrics or {}).get("validation") or {}
        name = next(iter(valid), "")
        self.progress.update(info.iteration, name, valid[name][-1] if name else float("nan"))  # 1-based already
        return True
