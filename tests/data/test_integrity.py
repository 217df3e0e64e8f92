"""Integrity you can check: a flipped byte or a truncated Parquet part, and a killed SQLite ingest, are
refused before any data is used (exit 2 naming the file and the fix), and ``mode=verify
mode.repair=true`` restores the clean store."""

from __future__ import annotations

import os
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
import pytest

from l2exp.errors import UserError
from l2exp.modes.build import store_with_data as open_store
from l2exp.modes.ingest import run_ingest
from l2exp.modes.verify import run_verify
from tests.conftest import make_cfg, run_cli

BASE = ["data.reader.n_snapshots=20000", "mode.progress=false"]


def _cfg(workdir: Path, mode: str, *extra: str):
    return make_cfg([f"mode={mode}", f"workdir={workdir}", *BASE, *extra])


def _part(workdir: Path) -> Path:
    parts = sorted((workdir / "store/parquet/synthetic").glob("symbol=*/date=*/*.parquet"))
    assert parts
    return parts[0]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_part_is_refused_then_repaired(workdir, damage):
    run_ingest(_cfg(workdir, "ingest"))
    clean = hydra.utils.instantiate(_cfg(workdir, "ingest").store).read()
    part = _part(workdir)
    data = bytearray(part.read_bytes())
    if damage == "flip":
        rng = np.random.default_rng(0)
        k = int(rng.integers(100, len(data) - 100))
        data[k] ^= 0x5A
    else:
        data = data[: len(data) // 2]
    part.write_bytes(bytes(data))
    with pytest.raises(UserError, match="damaged or unfinished") as e:
        open_store(_cfg(workdir, "features"))
    assert str(part) in str(e.value) and "mode.repair=true" in (e.value.fix or "")
    proc = run_cli(["mode=train", *BASE, "model.n_estimators=5"], workdir)  # a user's run: exit 2, no traceback
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and part.name in proc.stderr
    with pytest.raises(UserError, match="damaged or unfinished file"):
        run_verify(_cfg(workdir, "verify"))
    s = run_verify(_cfg(workdir, "verify", "mode.repair=true"))
    assert s["blocking"] == 0 and s["repair"]["sources_dropped"] == 1 and not s["issues_after_repair"]
    pd.testing.assert_frame_equal(hydra.utils.instantiate(_cfg(workdir, "ingest").store).read(), clean)


def test_a_change_that_keeps_size_and_mtime_is_caught_by_deep_verify(workdir):
    """The cheap check re-hashes what changed (size or mtime); mode=verify re-hashes everything."""
    run_ingest(_cfg(workdir, "ingest"))
    open_store(_cfg(workdir, "features"))  # verified once: stamps cached
    part = _part(workdir)
    st = part.stat()
    data = bytearray(part.read_bytes())
    data[len(data) // 3] ^= 0xFF
    part.write_bytes(bytes(data))
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(UserError, match="content differs"):
        run_verify(_cfg(workdir, "verify"))


def test_parts_recorded_with_the_old_digest_are_still_verified(workdir):
    """Manifests written before XXH3 record BLAKE2b: such parts verify clean, and a changed byte in one is
    still caught."""
    import json

    from l2exp.data.stores.parquet import file_digest

    run_ingest(_cfg(workdir, "ingest"))
    store = hydra.utils.instantiate(_cfg(workdir, "ingest").store)
    root = workdir / "store/parquet/synthetic"
    for mf in (root / "_manifest").glob("*.json"):  # rewrite as the previous release wrote it
        m = json.loads(mf.read_text())
        m["files"] = {rel: {"bytes": info["bytes"], "blake2b": file_digest(root / rel, "blake2b")}
                      for rel, info in m["files"].items()}
        mf.write_text(json.dumps(m))
    assert store.integrity_issues(deep=True) == []
    part = _part(workdir)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    assert [i.kind for i in store.integrity_issues(deep=True)] == ["corrupt"]


def test_killed_sqlite_ingest_is_refused_until_finished(workdir):
    """A writer that began a file and never committed (what kill -9 leaves): partial rows are refused."""
    cfg = _cfg(workdir, "ingest", "store=sqlite")
    store = hydra.utils.instantiate(cfg.store)
    run_ingest(cfg)
    full = store.count()
    with store.con:
        store.con.execute("DELETE FROM l2_training_data WHERE rowid % 3 = 0")  # rows lost mid-file
        store.con.execute("UPDATE l2_ingest_files SET manifest = NULL")  # begun, never committed
    with pytest.raises(UserError, match="did not commit"):
        open_store(_cfg(workdir, "features", "store=sqlite"))
    assert open_store(_cfg(workdir, "features", "store=sqlite", "store.allow_uncommitted=true")).count() < full
    s = run_verify(_cfg(workdir, "verify", "store=sqlite", "mode.repair=true"))
    assert s["blocking"] == 0 and s["store_rows"] == full
    open_store(_cfg(workdir, "features", "store=sqlite"))


def test_a_truncated_manifest_is_one_message_and_the_repair_restores_the_store(workdir):
    """A manifest cut in half: ingest and features exit 2 naming it and the repair (they raised
    JSONDecodeError before, and so did the repair they suggested); mode=verify mode.repair=true drops the
    source, re-ingests it, and the store equals the clean one."""
    run_ingest(_cfg(workdir, "ingest"))
    clean = hydra.utils.instantiate(_cfg(workdir, "ingest").store).read()
    (man,) = sorted((workdir / "store/parquet/synthetic/_manifest").glob("*.json"))
    man.write_text(man.read_text()[: len(man.read_text()) // 2])
    for mode in ("ingest", "features"):
        proc = run_cli([f"mode={mode}", *BASE], workdir)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert man.name in proc.stderr and "mode.repair=true" in proc.stderr
    s = run_verify(_cfg(workdir, "verify", "mode.repair=true"))
    assert s["blocking"] == 0 and s["repair"]["sources_dropped"] == 1 and not s["issues_after_repair"]
    pd.testing.assert_frame_equal(hydra.utils.instantiate(_cfg(workdir, "ingest").store).read(), clean)


def test_ingest_notices_a_deleted_part(workdir):
    """A part file deleted by hand: a rerun of ingest said 'already ingested (skipped)' with fewer rows in
    the store and exit 0; now exit 2 naming the missing part and the repair, which restores the store."""
    run_ingest(_cfg(workdir, "ingest"))
    clean = hydra.utils.instantiate(_cfg(workdir, "ingest").store).read()
    part = _part(workdir)
    part.unlink()
    proc = run_cli(["mode=ingest", *BASE], workdir)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "missing" in proc.stderr and part.name in proc.stderr and "mode.repair=true" in proc.stderr
    s = run_verify(_cfg(workdir, "verify", "mode.repair=true"))
    assert s["blocking"] == 0 and not s["issues_after_repair"]
    pd.testing.assert_frame_equal(hydra.utils.instantiate(_cfg(workdir, "ingest").store).read(), clean)


def _flip_in_table(db: Path, pattern: bytes, byte: int, mask: int) -> None:
    """Flip bits of the first copy of ``pattern`` that sits on a table leaf page (not an index page) of the
    SQLite file -- a bit flip of the disk, not an SQL update (SQLite's own checks see structure, not values)."""
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the main file
    con.close()
    data = bytearray(db.read_bytes())
    ps = int.from_bytes(data[16:18], "big") or 65536
    at = -1
    while True:
        at = data.find(pattern, at + 1)
        assert at >= 0, "pattern not on a table page"
        page = at // ps
        if data[page * ps + (100 if page == 0 else 0)] == 0x0D:  # a table b-tree leaf
            break
    data[at + byte] ^= mask
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["price", "timestamp"])
def test_sqlite_bit_flip_is_refused_then_repaired_to_the_same_rows(workdir, what):
    """XOR one bit of one stored value (an exponent bit of a price: 1e18-sized; or of a timestamp): SQLite's
    quick_check passes, the row no longer matches its content key -- refused before use, and the repair gives
    back exactly the clean store."""
    import struct

    run_ingest(_cfg(workdir, "ingest", "store=sqlite"))
    store = open_store(_cfg(workdir, "features", "store=sqlite"))
    clean = store.read()
    digest = store.content_digest()
    row = clean.iloc[777]
    pattern = struct.pack(">d", row["ask_price_6"]) if what == "price" else struct.pack(">q", int(row["timestamp"]))
    del store
    _flip_in_table(workdir / "store" / "sqlite" / "synthetic.db", pattern, 1, 0x40)
    with pytest.raises(UserError, match="differ from what was written"):
        open_store(_cfg(workdir, "features", "store=sqlite"))
    s = run_verify(_cfg(workdir, "verify", "store=sqlite", "mode.repair=true"))
    assert s["blocking"] == 0 and s["repair"]["reingested_rows"] == len(clean)
    again = open_store(_cfg(workdir, "features", "store=sqlite"))
    pd.testing.assert_frame_equal(again.read(), clean)
    assert again.content_digest() == digest


def test_feature_cache_keys_differ_between_stores(workdir):
    """The feature cache key carries the store's content digest: a Parquet store and a SQLite store of the same
    source files never share a cached feature table (a damaged SQLite store once fed a clean Parquet store)."""
    from l2exp.features.table import data_digest

    run_ingest(_cfg(workdir, "ingest", "store=sqlite"))
    run_ingest(_cfg(workdir, "ingest"))
    sq = open_store(_cfg(workdir, "features", "store=sqlite"))
    pq_ = open_store(_cfg(workdir, "features"))
    assert [m["digest"] for m in sq.manifests()] == [m["digest"] for m in pq_.manifests()]
    assert data_digest(sq, 10) != data_digest(pq_, 10)


def test_edited_footer_statistics_do_not_change_what_is_read(workdir):
    """The timestamp statistics in a part's footer lowered to its minimum, size and mtime kept (the pre-use check
    does not re-hash an unchanged-looking file): a read from the middle of the day still returns every row after
    that time -- the time bounds are applied to the rows, never to footer statistics."""
    import struct

    import pyarrow.parquet as pq

    run_ingest(_cfg(workdir, "ingest"))
    store = open_store(_cfg(workdir, "features"))
    clean = store.read()
    mid = int(clean.timestamp.iloc[len(clean) // 2])
    want = store.read(start_ns=mid)
    assert len(want) == int((clean.timestamp >= mid).sum()) > 0
    part = _part(workdir)
    st = part.stat()
    meta = pq.ParquetFile(part).metadata
    footer = 8 + meta.serialized_size  # the footer (and page index) sit at the end of the file
    lo, hi = struct.pack("<q", int(clean.timestamp.min())), struct.pack("<q", int(clean.timestamp.max()))
    data = bytearray(part.read_bytes())
    tail = bytes(data[-footer - 4096:])
    assert tail.count(hi) >= 1
    data[-len(tail):] = tail.replace(hi, lo)  # "max timestamp" = the minimum: every row group looks early
    part.write_bytes(bytes(data))
    os.utime(part, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert part.stat().st_size == st.st_size
    again = open_store(_cfg(workdir, "features"))
    pd.testing.assert_frame_equal(again.read(start_ns=mid), want)


@pytest.mark.parametrize("store", ["parquet", "sqlite"])
def test_a_full_disk_is_one_message_and_the_next_run_finishes(tmp_path, store):
    """A write the file system refuses (here a 1 MB file-size limit: the same errors as a full or read-only
    disk) is exit 2 with one message, no traceback; the store is left as it was and a later run completes it."""
    import resource
    import signal
    import subprocess
    import sys

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails (EFBIG) instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))

    args = [sys.executable, "-c", "from l2exp.cli import entry; entry()", "mode=ingest", "mode.progress=false",
            f"workdir={tmp_path}", f"store={store}", "data.reader.n_snapshots=50000"]
    proc = subprocess.run(args, preexec_fn=limited, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "cannot write" in proc.stderr and "Traceback" not in proc.stderr
    again = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert open_store(_cfg(tmp_path, "features", f"store={store}", "data.reader.n_snapshots=50000")).count() == 50000
