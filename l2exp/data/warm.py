"""Load the ingest's compiled kernels (Numba's on-disk cache) on a thread of their own.

Why: the first compiled call of a process initialises Numba's CPU target (imports, SciPy's BLAS
check) and loads each kernel: ~0.5 s, one core, mostly holding the GIL. An ingest starts it first
thing, so it runs beside the file digest and the store's recovery; the CSV reader then waits for
what is left of it. (Parsing the first blocks with pyarrow meanwhile was tried and measured: 1.5
CPU-s more -- pyarrow's parser costs more, and it contends with the loading for both cores -- and
0.5 s slower on 2 M rows.)
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from l2exp._numba_cache import start_numba

_lock = threading.Lock()
_thread: threading.Thread | None = None


def start(wait: bool = False) -> None:
    """Start loading (once per process); ``wait``: return when it is done."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_load, daemon=True, name="l2exp-kernel-load")
            _thread.start()
    if wait:
        _thread.join()


def _load() -> None:
    start_numba(_load_kernels)


def _load_kernels() -> None:
    try:
        from l2exp.data.csv_fast import FastCsvParser
        from l2exp.data.validate import Validator
        from l2exp.schema import BookChunk

        parser = FastCsvParser(["t", "s", "x"], {"x"}, ",", threads=1)
        text = b"a,b,1.5\na,b,2\n"
        parser.parse(np.frombuffer(text, np.uint8))  # a read-only block (a memory-mapped file)
        parser.parse(np.frombuffer(text, np.uint8).copy())  # a writable one (a decompressed stream)
        mats = [np.asfortranarray(np.array([[p, p - 1], [p, p - 1]], float)) for p in (100.0, 1.0, 101.0, 1.0)]
        mats[2] = np.asfortranarray(mats[2] + np.array([0.0, 2.0]))
        chunk = BookChunk(np.array([1, 2], np.int64), pd.Categorical(["S", "S"]), pd.Categorical(["E", "E"]), *mats)
        Validator({}).check(chunk, np.zeros(2, bool))
    except Exception:  # noqa: BLE001 - a kernel's own error is raised again where it is really called
        return
