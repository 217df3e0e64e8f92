"""Reading whole files fast: memory maps and digests, one definition for the source keys, the store's parts
and the feature caches; and the one-at-a-time lock for creating a shared file."""

from __future__ import annotations

import contextlib
import fcntl
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map the pages in one call, not one fault per 4 KiB page
_WINDOW = 1 << 26


def hash_file(h: Any, path: str | Path, prefix: bytes = b"") -> str:
    """The hex digest of ``h`` (a hashlib or xxhash object) over ``prefix`` and the file's bytes, mapped 64
    MiB at a time: no copy into Python bytes (0.09 vs 0.39 s for 556 MB read in blocks) and memory bounded
    by the window."""
    h.update(prefix)
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        for off in range(0, size, _WINDOW):
            with mmap.mmap(fh.fileno(), min(_WINDOW, size - off), flags=mmap.MAP_SHARED | MAP_POPULATE,
                           prot=mmap.PROT_READ, offset=off) as m:
                h.update(m)
    return h.hexdigest()


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if missing) -- for the first creation
    of something several processes may start at once (a tracking store, a study's tables). Blocking: the
    holder does seconds of work at most. The kernel releases it if the holder dies."""
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
