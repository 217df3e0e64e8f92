"""L2 feature library: price & spread, depth & imbalance, flow & volatility families.

Every feature is defined once (a Numba function per family) and run by two engines: batch over a
table (:func:`~l2exp.features.engine.compute_batch`) and streaming one snapshot at a time
(:class:`~l2exp.features.engine.StreamingEngine`). Formulas and units are in the family modules.
"""
