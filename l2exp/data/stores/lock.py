"""One writer per store, held for a whole ingest or recording.

An OS advisory lock (``fcntl.flock``) on a lock file beside the store: the kernel releases it when
the holding process exits, however it dies (``kill -9`` included), so a dead writer never leaves a
stale lock behind -- the next writer simply gets it. The file also records the holder (PID, host,
start time) so that a second writer can say who holds the store instead of corrupting it. Written
here rather than taken from a library: it is ten lines of ``fcntl`` and the holder record is ours.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from l2exp.errors import UserError


class WriterLock:
    def __init__(self, path: Path, store: str, wait_s: float = 0.0) -> None:
        self.path, self.store, self.wait_s = Path(path), store, float(wait_s)
        self.fd: int | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def __enter__(self) -> WriterLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait_s
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                h = self.holder()
                who = (f"pid {h.get('pid')} on {h.get('host')} since {h.get('since')}" if h
                       else "another process")
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise UserError(f"store {self.store} is being written by another l2exp ({who})",
                                    where=str(self.path),
                                    fix="Wait for it to finish (or stop it), or let this run wait: "
                                        "store.lock_wait_s=600. One writer per store keeps it consistent.") from None
                if not told:
                    print(f"waiting for the store {self.store}: held by {who}", flush=True)
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode())
        self.fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
