"""Column layouts of the typed arrays the event loop reads and writes (one place, named).

Orders, fills and parameters are float64 matrices/vectors with these column indices: the loop is a
Numba function over arrays, not per-order Python objects (hftbacktest's single structured event
dtype is the model).
"""

# order columns
# O_TRADED: volume printed at the order's price since the last snapshot (so a size drop that those
# prints explain is not counted again as cancellations ahead of us); O_KILL: a kill-switch flatten order
O_SIDE, O_QTY, O_REM, O_PRICE, O_TYPE, O_STATUS, O_SUBMIT_TS, O_ACTIVE_TS, O_CANCEL_TS, O_QUEUE, O_LEVEL_SIZE, \
    O_SUBMIT_IDX, O_TRADED, O_KILL = range(14)
N_ORDER_COLS = 14
# order status
ST_PENDING, ST_RESTING, ST_FILLED, ST_CANCELLED, ST_EXPIRED = 0, 1, 2, 3, 4
# order types
MARKET, LIMIT = 0, 1
# fill columns (F_TS: ns offset from the first snapshot, see engine.simulate)
F_TS, F_ORDER, F_SIDE, F_QTY, F_PRICE, F_FEE, F_MAKER, F_MID, F_LEVEL = range(9)
N_FILL_COLS = 9
# risk-block reasons (counters)
# risk-block reasons: counted once per blocked order intent (a decision that would have sent an order);
# no_signal once per decision tick without a signal
BLOCK_REASONS = ("spread", "depth", "stale_book", "crossed_book", "order_rate", "max_position", "max_notional",
                 "kill_switch", "no_signal", "size_below_lot")
B_SPREAD, B_DEPTH, B_STALE, B_CROSSED, B_RATE, B_MAXPOS, B_MAXNOTIONAL, B_KILLED, B_NOSIGNAL, B_BELOW_LOT = range(10)
# counters (C_FLATTEN: kill-switch flatten attempts, one per snapshot until flat)
C_ORDERS, C_FILLS, C_KILLED, C_KILL_TS, C_IOC_UNFILLED, C_CANCELS, C_OVERFLOW, C_FLATTEN = range(8)
N_COUNTERS = 8
# contract types: how a fill at price p moves cash (settlement currency) -- see backtest.instruments
LINEAR, INVERSE, QUANTO = 0, 1, 2
