"""Keep Numba's on-disk cache honest across modules.

Numba re-compiles a cached function when *its own* source file changes, but not when a function it
calls from another module changes: ``engine._batch`` would keep running an old ``flow_features``.
Before the kernels are imported, this compares a digest of the package's kernel sources with the
one stamped beside the cache and drops the package's cache files when they differ.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def invalidate_if_sources_changed(package_dir: Path) -> None:
    sources = sorted(package_dir.glob("*.py"))
    digest = hashlib.blake2b(b"".join(p.read_bytes() for p in sources), digest_size=16).hexdigest()
    cache = package_dir / "__pycache__"
    stamp = cache / "numba-sources.digest"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:  # read-only install: Numba then compiles in memory, which is always correct
        pass
