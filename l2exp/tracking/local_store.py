"""A local SQLite tracking store, created from an empty copy instead of MLflow's migrations.

Why: MLflow builds a new SQLite store by running every Alembic migration since its first schema
(MLflow 3.17: ~60 revisions, 0.8-1 s and the import of Alembic; ~2 s of a first ``mode=train`` on a
new workdir). The result is the same file for every store but for one row -- the ``Default``
experiment, whose artifact location is the store's own. So the first store of an MLflow version is
built by MLflow as usual, saved without that row (``VACUUM INTO``, a clean file) under the user's
cache, and every later store starts as a copy of it; MLflow then sees all its tables at the head
revision (it checks, and refuses a schema it does not know) and adds the ``Default`` experiment with
the right location itself. A copy MLflow does not accept is removed and the store built the usual way.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from pathlib import Path

import mlflow

from l2exp.files import exclusive_lock

TEMPLATE_ENV = "L2EXP_MLFLOW_TEMPLATE_DIR"  # where the empty stores are kept (default: ~/.cache/l2exp)


def template_dir() -> Path:
    if os.environ.get(TEMPLATE_ENV):
        return Path(os.environ[TEMPLATE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "l2exp"


def template_path() -> Path:
    """The empty store of this MLflow version (its schema head is fixed by the version)."""
    return template_dir() / f"mlflow-{mlflow.__version__}-empty.db"


def _open(uri: str) -> None:
    """Let MLflow open (and, if it has no tables, build) the store at ``uri``."""
    mlflow.MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _forget_engine(uri: str) -> None:
    """Drop MLflow's cached engine for ``uri`` (it keeps one per URI, connections open on the file)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
    if engine is not None:
        engine.dispose()


def _build_template(template: Path) -> None:
    build, staged = (template.with_name(f"{template.name}.{part}-{os.getpid()}") for part in ("build", "tmp"))
    try:
        for f in (build, staged):
            f.unlink(missing_ok=True)
        _open(f"sqlite:///{build}")
        _forget_engine(f"sqlite:///{build}")
        with contextlib.closing(sqlite3.connect(build)) as con:
            con.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            con.execute("DELETE FROM experiments WHERE experiment_id = 0")
            con.commit()
            con.execute("VACUUM INTO ?", (str(staged),))
        os.replace(staged, template)  # readers see the whole file or none
    finally:
        for f in (build, staged):
            f.unlink(missing_ok=True)


def ensure_empty_template() -> Path | None:
    """The empty store of this MLflow version, built once per machine; None when the cache cannot be
    written (a read-only home): stores are then built by MLflow each time, as without it."""
    template = template_path()
    if template.exists():
        return template
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(template.with_name(template.name + ".lock")):
            if not template.exists():
                _build_template(template)
    except (OSError, sqlite3.Error):
        return None
    return template


def seed(db: Path) -> bool:
    """Put the empty template at ``db`` if nothing is there (whole, by rename); whether it did. For any
    process that opens a new store at ``db`` next -- l2exp's runs, an ``mlflow server`` started on it."""
    if db.exists() or (template := ensure_empty_template()) is None:
        return False
    staged = db.with_name(db.name + ".seed")
    shutil.copyfile(template, staged)
    os.replace(staged, db)
    return True


def create_or_open(db: Path, uri: str) -> None:
    """Make ``db`` (at ``uri``, ``sqlite:///...``) a usable MLflow store: an existing one is opened (MLflow
    migrates it if it is older), a missing one starts as the empty template's copy. Under an exclusive
    lock beside it: two processes building one store at once (two sweeps on a fresh workdir) fail in
    MLflow with "duplicate column"."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(db.with_name(db.name + ".init-lock")):
        seeded = seed(db)
        try:
            _open(uri)
        except Exception:
            if not seeded:
                raise
            # nothing of the user's is in it yet: built by MLflow instead, and the template rebuilt next time
            _forget_engine(uri)
            db.unlink(missing_ok=True)
            template_path().unlink(missing_ok=True)
            _open(uri)
