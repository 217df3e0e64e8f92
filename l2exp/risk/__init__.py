"""Risk manager, run inside the backtest / paper-broker loop as compiled functions over named records:
``volatility`` (L2 volatility in time units), ``sizing`` (volatility-targeted size), ``limits``
(position / notional), ``gates`` (pre-trade checks), ``kill_switch``; ``params`` mirrors ``conf/risk``
section by section, ``state`` holds the records."""
