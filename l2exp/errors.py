"""User-facing errors: what went wrong, where, and what to do about it.

A ``UserError`` is a mistake the user can fix (a missing file, a mapping that does not match the
file, an implausible timestamp unit). The CLI prints it as one block and exits non-zero, with no
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can act on.

    Args:
        what: one sentence on what is wrong.
        where: file, row, column or config key it was found at.
        fix: what to do about it (may span several lines, e.g. YAML to paste).
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def __reduce__(self) -> tuple:
        """Rebuilt from its parts when it crosses a process (a pool worker, a Ray task)."""
        return (type(self), (self.what, self.where, self.fix))

    def render(self) -> str:
        parts = [f"error: {self.what}"]
        if self.where:
            parts.append(f"  where: {self.where}")
        if self.fix:
            fix_lines = self.fix.rstrip().splitlines()
            parts.append(f"  fix:   {fix_lines[0]}")
            parts.extend(f"         {line}" for line in fix_lines[1:])
        from l2exp.redact import redact

        return redact("\n".join(parts))


class DamagedFile(UserError):
    """A source file that cannot be read past some point (a cut .gz, a corrupt block): ``rows`` were read before
    the damage. Ingest stores and commits those rows, reads the other files, and then reports it."""

    def __init__(self, what: str, where: str | None = None, fix: str | None = None, rows: int = 0) -> None:
        self.rows = int(rows)
        super().__init__(what, where, fix)

    def __reduce__(self) -> tuple:
        return (type(self), (self.what, self.where, self.fix, self.rows))


# errno values of a file system that cannot take a write: read-only, no permission, full, over quota, too large
_DISK_ERRNOS = {30: "is read-only", 13: "is not writable (permission denied)", 28: "is full (no space left)",
                122: "is over its disk quota", 27: "refused a file that large (a file-size limit)"}


def disk_error(exc: BaseException) -> UserError | None:
    """A write the file system refused (read-only, full, no permission) as one message naming the path --
    not a traceback; None for any other error. The stores commit atomically, so what was stored before
    is intact (the message says so)."""
    import sqlite3

    where = None
    why = None
    if isinstance(exc, OSError) and exc.errno in _DISK_ERRNOS:
        why = _DISK_ERRNOS[exc.errno]
        where = exc.filename
    elif isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        if "readonly database" in text or "read-only" in text:
            why = _DISK_ERRNOS[30]
        elif "disk is full" in text or "database or disk is full" in text:
            why = _DISK_ERRNOS[28]
        elif "disk i/o error" in text:
            why = "refused a write (SQLite's disk I/O error: a full, read-only or failing disk, or a size limit)"
    else:
        cause = exc.__cause__ or exc.__context__
        return disk_error(cause) if cause is not None and cause is not exc else None
    if why is None:
        return None
    place = str(where) if where else "the store or output folder"
    return UserError(f"cannot write {place}: the file system {why} ({exc})", where=place,
                     fix="Free space or make the folder writable (or point workdir= / store.path= elsewhere) and run "
                         "again: a store commits each file atomically, so what it held before is intact.")
