"""Progress of a model fit: iteration and validation loss as the boosting goes (LightGBM and CatBoost
callbacks), so a 5-minute fit is never silent (one redrawn line: :mod:`l2exp.progress`)."""

from __future__ import annotations

from typing import Any, TextIO

from l2exp.progress import LineProgress


class FitProgress(LineProgress):
    """Iteration and validation loss of a boosting fit (:class:`~l2exp.progress.LineProgress`)."""

    def __init__(self, label: str, total: int, every_s: float = 2.0, stream: TextIO | None = None) -> None:
        super().__init__(every_s, stream)
        self.label, self.total = label, int(total)
        self.iteration, self.metric, self.value = 0, "", float("nan")

    def update(self, iteration: int, metric: str = "", value: float = float("nan")) -> None:
        self.iteration, self.metric, self.value = int(iteration), metric, float(value)
        if self.due():
            self.show(self._text())

    def _text(self) -> str:
        loss = f", validation {self.metric} {self.value:.6g}" if self.metric else ""
        return f"{self.label}: iteration {self.iteration:,}/{self.total:,}{loss}, {self.elapsed():,.0f} s"

    def done(self, best_iteration: int | None) -> None:  # type: ignore[override]
        best = f", best iteration {best_iteration:,}" if best_iteration else ""
        super().done(self._text() + best)


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
