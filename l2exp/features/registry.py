"""Named feature sets (``conf/features/*.yaml``): which features, with which parameters.

A set that needs more book levels than the data has is refused before any data is read, naming
the feature, the level it needs and the levels present -- never an empty frame.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from l2exp.errors import UserError
from l2exp.features.engine import FeatureResult, StreamingEngine, compute_batch, compute_pieces
from l2exp.features.params import FeatureParams

# bumped when the engine's values change (even in the last bit) or its cache files do: old caches are not reused
# 2: column-wise blocks, ln(1 + x) by NumPy, window sums add (in - out); Arrow IPC partition files
ENGINE_VERSION = 2


class FeatureSet:
    """Args:
        name: set name (``minimal``, ``full``...).
        include: feature names, or ``all``.
        exclude: names removed from ``include``.
        params: :class:`FeatureParams` fields.
    """

    def __init__(self, name: str, include: list[str] | str = "all", exclude: list[str] | None = None,
                 params: dict[str, Any] | None = None) -> None:
        self.name = name
        self.params = FeatureParams(**dict(params or {}))
        every = self.params.names()
        chosen = every if include == "all" else list(include)
        unknown = [f for f in chosen + list(exclude or []) if f not in every]
        if unknown:
            import difflib

            hints = {u: difflib.get_close_matches(u, every, n=2) for u in unknown}
            raise UserError(f"unknown feature(s) in features={name}: {hints}", where="features.include / exclude",
                            fix=f"Known features ({len(every)}): {', '.join(every)}")
        self.names = [f for f in chosen if f not in set(exclude or [])]
        if not self.names:
            raise UserError(f"feature set {name!r} selects no feature", where="features.include")
        self._positions = np.asarray([every.index(f) for f in self.names])

    def check_levels(self, levels: int, source: str = "the data") -> None:
        need = self.params.levels_needed()
        too_deep = [(f, need[f]) for f in self.names if need[f] > levels]
        if too_deep:
            lines = ", ".join(f"{f} needs level {k}" for f, k in too_deep[:8])
            raise UserError(
                f"feature set {self.name!r} needs more book levels than {source} has ({levels} present): {lines}"
                + (" ..." if len(too_deep) > 8 else ""),
                where="features / levels",
                fix=f"Use data with >= {max(k for _, k in too_deep)} levels, exclude those features "
                    f"(features.exclude=[...]), or lower the depths in features.params.",
            )

    def families(self) -> dict[str, str]:
        fam = self.params.families()
        return {f: fam[f] for f in self.names}

    def compute(self, book: pd.DataFrame, levels: int) -> FeatureResult:
        res = compute_batch(book, self.params, levels)
        if self.names == list(res.features.columns):  # the whole library: no 67-column copy
            return res
        return FeatureResult(res.features[self.names], res.ready)

    def compute_pieces(self, book: pd.DataFrame,
                       levels: int) -> Iterator[tuple[int, int, list[np.ndarray], np.ndarray]]:
        """This set's features of a one-instrument frame piece by piece (:func:`compute_pieces`):
        ``(start, stop, one contiguous array per feature of this set, ready)``, valid until the next."""
        for a, b, out, ready in compute_pieces(book, self.params, levels):
            yield a, b, [out[:, j] for j in self._positions], ready

    def streaming(self, levels: int, symbol: str | None = None) -> StreamingFeatures:
        return StreamingFeatures(self, levels, symbol)

    def fingerprint(self) -> str:
        """Digest of everything that changes the values: names and parameters (the cache key)."""
        blob = json.dumps({"names": self.names, "params": self.params.__dict__, "engine": ENGINE_VERSION},
                          sort_keys=True, default=str)
        return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "n_features": len(self.names), "features": self.names,
                "params": {k: v for k, v in self.params.__dict__.items()}}


class StreamingFeatures:
    """The set's features for one instrument, one snapshot at a time (live loop)."""

    def __init__(self, fs: FeatureSet, levels: int, symbol: str | None) -> None:
        self.engine = StreamingEngine(fs.params, levels, symbol)
        self.positions = fs._positions
        self.names = fs.names

    def update_book(self, ts: int, book: np.ndarray) -> tuple[np.ndarray, bool]:
        out, ready = self.engine.update_book(ts, book)
        return out[self.positions], ready
