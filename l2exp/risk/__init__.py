"""Risk manager: L2 volatility, sizing, limits, filters, kill switch (run inside the backtest/sim loop)."""
