"""Event-driven backtest over L2 snapshots (and trades): fills against the recorded book."""

from pathlib import Path as _Path

from l2exp._numba_cache import invalidate_if_sources_changed as _invalidate

_HERE = _Path(__file__).parent
_invalidate(_HERE, _HERE.parent / "risk")  # the engine compiles l2exp.risk's functions in
