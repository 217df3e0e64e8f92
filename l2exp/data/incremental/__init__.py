"""Incremental L2 sources: per-level updates (snapshot + diffs with sequence ids) rebuilt into the
canonical N-level snapshots every other part of l2exp reads (:mod:`.book` is the compiled builder;
:mod:`.binance` and :mod:`.table` turn a venue's messages or a delta table into its input)."""
