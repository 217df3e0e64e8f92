"""Keep Numba's on-disk cache honest across modules.

Numba re-compiles a cached function when *its own* source file changes, but not when a function it
calls from another module changes: ``engine._batch`` would keep running an old ``flow_block``.
Before the kernels are imported, this compares a digest of the kernel sources (a package, its
sub-packages and any other package it compiles in) with the one stamped beside the cache and drops
those packages' cache files when they differ.
"""

from __future__ import annotations

import gc
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def invalidate_if_sources_changed(package_dir: Path, *also: Path) -> None:
    dirs = [package_dir, *also]
    sources = sorted(p for d in dirs for p in d.rglob("*.py"))
    digest = hashlib.blake2b(b"".join(p.read_bytes() for p in sources), digest_size=16).hexdigest()
    stamp = package_dir / "__pycache__" / "numba-sources.digest"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for d in dirs:
            for f in list(d.rglob("__pycache__/*.nbi")) + list(d.rglob("__pycache__/*.nbc")):
                f.unlink(missing_ok=True)
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # read-only install: Numba then compiles in memory, which is always correct
        pass


_BLAS_PROBE = "scipy.linalg.cython_blas"


def start_numba(load: Callable[[], Any]) -> None:
    """Run ``load`` (a first compiled call: Numba initialises its CPU target and loads kernels from this
    cache) quickly: the cyclic collector paused, and Numba's start-up BLAS probe answered "absent".

    Numba's initialisation imports a few hundred modules; with the objects a CLI process holds (Hydra,
    pandas, pyarrow: 0.2-1 M), the collections those allocations trigger cost ~25 % of it (ingest's
    kernels 0.39-0.43 -> 0.29-0.32 s, the feature kernels 0.37-0.41 -> 0.28-0.29 s). And it imports
    ``scipy.linalg`` once only to set ``numba.np.arraymath._HAVE_BLAS``, which picks BLAS or a plain
    loop inside a few array functions (none of ours uses linear algebra) -- ~0.13 s of SciPy and what
    it drags in (0.29-0.37 -> 0.16-0.17 s measured). The probe's module is marked missing only while
    the load runs, only if nothing imported it yet, and only before Numba's first start; every later
    ``np.dot`` compiles against SciPy's BLAS as usual (tested). Both are restored as they were found."""
    collecting = gc.isenabled()
    gc.disable()
    hide = _BLAS_PROBE not in sys.modules and "numba.np.arraymath" not in sys.modules
    if hide:
        sys.modules[_BLAS_PROBE] = None  # type: ignore[assignment]  # import raises ImportError meanwhile
    try:
        load()
    finally:
        if hide and _BLAS_PROBE in sys.modules and sys.modules[_BLAS_PROBE] is None:
            del sys.modules[_BLAS_PROBE]
        if collecting:
            gc.enable()
