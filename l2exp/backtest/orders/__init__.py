"""Order types for position changes: how a target-position intent becomes an order -- a compiled
``kernel`` of ``types.ORDER_TYPE_SIG`` (side, best bid, best ask, tick) -> (limit price, MARKET |
LIMIT), one file each, chosen by ``_target_`` in ``conf/execution/order_type/``.

MARKET orders walk the book up to the price and cancel the rest (immediate-or-cancel; working
market orders count towards the target). LIMIT orders take what crosses and rest; a resting order
is cancelled and re-priced at each decision, and cancelled once the target is reached."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OrderType:
    kernel = None  # set by each order type
