"""L2 feature library: price & spread, depth & imbalance, flow & volatility families.

Every feature is defined once (a Numba function per family) and run by two engines: batch over a
table (:func:`~l2exp.features.engine.compute_batch`) and streaming one snapshot at a time
(:class:`~l2exp.features.engine.StreamingEngine`). Formulas and units are in the family modules.
"""

from pathlib import Path as _Path

from l2exp._numba_cache import invalidate_if_sources_changed as _invalidate

_invalidate(_Path(__file__).parent)
