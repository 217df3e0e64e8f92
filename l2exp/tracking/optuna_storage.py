"""The storage of a shared Optuna study (``hydra.sweeper.storage``), created once before a sweep uses it.

Why: Optuna creates its tables (and its schema-version rows) on the first connection, without a lock.
Two sweeps started at once on a new storage -- the documented way to spread one study over several
workers -- then race: one fails with ``table ... already exists`` (SQLite) or a duplicate key
(PostgreSQL), and its whole sweep is lost. So the sweep's driver opens the storage first, one process
at a time where a file lock can say so (SQLite), and otherwise retries the few milliseconds a
concurrent creation takes; after that every connection finds the tables and only reads them.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from l2exp.errors import UserError
from l2exp.files import exclusive_lock

RACE_SIGNS = ("already exists", "unique constraint", "duplicate key", "database is locked")


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return None if path in ("", ":memory:") else Path(path)


def prepare_study_storage(url: str, attempts: int = 6) -> None:
    """Open Optuna's RDB storage at ``url`` once (creating its tables if it is new)."""
    db = _sqlite_file(url)
    try:
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(db.with_name(db.name + ".init-lock")) if db is not None else contextlib.nullcontext():
            _create_tables(url, attempts)
    except OSError as exc:
        raise UserError(f"cannot create the Optuna study storage {url}: {exc}", where="hydra.sweeper.storage",
                        fix="Use a path in a folder you can write, e.g. sqlite:///$PWD/optuna.db.") from None


def _create_tables(url: str, attempts: int) -> None:
    import optuna
    import sqlalchemy

    for attempt in range(attempts):
        try:
            optuna.storages.RDBStorage(url).engine.dispose()
            return
        except ImportError as exc:  # Optuna's words for a database driver that is not installed
            raise UserError(f"cannot open the Optuna study storage {url}: its database driver is not installed "
                            f"({exc.__cause__ or exc})", where="hydra.sweeper.storage",
                            fix="Install the driver (pip install psycopg2-binary for postgresql://, pymysql "
                                "for mysql+pymysql://) or use sqlite:///path/optuna.db.") from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            text = str(exc).lower()
            if attempt < attempts - 1 and any(sign in text for sign in RACE_SIGNS):
                time.sleep(0.1 * (attempt + 1))  # another worker is creating the tables right now
                continue
            raise UserError(f"cannot open the Optuna study storage {url}: {str(exc).splitlines()[0][:300]}",
                            where="hydra.sweeper.storage",
                            fix="Check the URL (sqlite:///path/optuna.db, postgresql://user@host/db) and that "
                                "the database answers.") from None
