"""What a step writes to a terminal: a pseudo-terminal whose other end is read when the block ends."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TextIO


@dataclass
class Capture:
    tty: TextIO  # write here: ``isatty()`` is true, as on a user's terminal
    text: str = ""  # everything written, once the block has ended


@contextmanager
def pseudo_terminal() -> Iterator[Capture]:
    master, slave = os.openpty()
    cap = Capture(os.fdopen(slave, "w"))
    try:
        yield cap
        cap.tty.flush()
        out = b""
        while select.select([master], [], [], 0.2)[0]:
            out += os.read(master, 1 << 16)
        cap.text = out.decode(errors="replace")
    finally:
        cap.tty.close()
        os.close(master)
