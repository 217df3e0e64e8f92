"""Event-driven backtest over L2 snapshots (and trades): fills against the recorded book."""
