"""``borrowed(arr)``: the same array, not reference-counted, for the event loop's hot path.

Why: Numba counts references to every array an inlined function receives, at every call -- an atomic
increment and decrement per array and call. The event loop hands the same five arrays (book, orders,
fills, footprint, ...) to its handlers on every one of millions of events, and that counting was most of
its time when nothing happened (perf: ``NRT_incref``/``NRT_decref`` 35 % of the samples, 2 M snapshots).
A borrowed array has no memory-info pointer, so Numba's counting of it is a null test. It is safe only
while the owner is alive: the compiled entry points (``engine.simulate``, ``on_snapshot``, ``on_trade``)
borrow their own arguments, which their caller holds for the whole call, and never return or store them.
"""

from __future__ import annotations

from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def borrowed(typingctx, arr):  # noqa: ANN001, ANN201, ARG001 - Numba intrinsic signature
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        src = make_array(sig.args[0])(context, builder, args[0])
        out = make_array(sig.return_type)(context, builder)
        populate_array(out, data=src.data, shape=src.shape, strides=src.strides, itemsize=src.itemsize,
                       meminfo=None)
        return out._getvalue()

    return arr(arr), codegen
