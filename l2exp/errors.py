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
