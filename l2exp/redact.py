"""Credentials never leave the process: one function that masks them in any text l2exp writes or prints.

A tracking server, an artifact store, a database or a feed is often reached with credentials in its URI
(``http://user:secret@host``, ``postgresql://user:pw@db/mlflow``, ``...?token=...``). Whatever l2exp
writes -- run params, ``config.yaml``/``overrides.yaml`` artifacts, Hydra's own files in the run
directory, ``summary.json``, the offline journal, printed links and tables, error messages -- goes
through :func:`redact` / :func:`redact_obj`, which keep the user name and host (so the reader still knows
which server) and replace the secret with ``***``. Written here rather than taken from a library: the
rule is two regular expressions, and every output of l2exp must call the same one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

MASK = "***"
# scheme://user:password@  (the password may contain anything but '@', '/' and white space)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<secret>[^@/\s]+)@")
# ?token=... &password=... in a URI's query
_QUERY = re.compile(r"(?i)(?P<head>[?&;](?:password|passwd|pwd|token|access_token|secret|api_key|apikey|"
                    r"access_key|secret_key|sig|signature)=)(?P<secret>[^&;\s'\"]+)")


def redact(text: str) -> str:
    """``text`` with every URI password and secret query value replaced by ``***``."""
    if "://" not in text and "=" not in text:
        return text
    return _QUERY.sub(rf"\g<head>{MASK}", _USERINFO.sub(rf"\g<head>:{MASK}@", text))


def redact_obj(obj: Any) -> Any:
    """The same for every string inside dicts, lists and tuples (keys included); other values as they are."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v) for v in obj)
    return obj


def redact_files(folder: Path, pattern: str = "*.yaml") -> None:
    """Rewrite the files of ``folder`` that hold a secret (Hydra's ``.hydra/`` copies of the config and
    the command line, written before l2exp runs)."""
    for path in folder.glob(pattern):
        text = path.read_text()
        clean = redact(text)
        if clean != text:
            path.write_text(clean)
