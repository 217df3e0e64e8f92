"""Column layouts of the typed arrays the event loop reads and writes (one place, named).

Orders, fills and parameters are float64 matrices/vectors with these column indices: the loop is a
Numba function over arrays, not per-order Python objects (hftbacktest's single structured event
dtype is the model).
"""

# order columns
O_SIDE, O_QTY, O_REM, O_PRICE, O_TYPE, O_STATUS, O_SUBMIT_TS, O_ACTIVE_TS, O_CANCEL_TS, O_QUEUE, O_LEVEL_SIZE, \
    O_SUBMIT_IDX = range(12)
N_ORDER_COLS = 12
# order status
ST_PENDING, ST_RESTING, ST_FILLED, ST_CANCELLED, ST_EXPIRED = 0, 1, 2, 3, 4
# order types
MARKET, LIMIT = 0, 1
# fill columns (F_TS: ns offset from the first snapshot, see engine.simulate)
F_TS, F_ORDER, F_SIDE, F_QTY, F_PRICE, F_FEE, F_MAKER, F_MID, F_LEVEL = range(9)
N_FILL_COLS = 9
# risk-block reasons (counters)
BLOCK_REASONS = ("spread", "depth", "stale_book", "crossed_book", "order_rate", "max_position", "max_notional",
                 "kill_switch", "no_signal")
B_SPREAD, B_DEPTH, B_STALE, B_CROSSED, B_RATE, B_MAXPOS, B_MAXNOTIONAL, B_KILLED, B_NOSIGNAL = range(9)
# counters
C_ORDERS, C_FILLS, C_KILLED, C_KILL_TS, C_IOC_UNFILLED, C_CANCELS, C_OVERFLOW = range(7)
N_COUNTERS = 7
