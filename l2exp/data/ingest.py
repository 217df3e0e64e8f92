"""Ingest (``mode=ingest``, ``mode=validate``): read -> map -> validate -> store, chunk by chunk.

The invariant users rely on: ``rows_in == accepted + rejected``, always, with every rejected row
kept (file, line, reason, detail) and counted by reason. ``mode=validate`` runs the same path and
writes nothing.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from l2exp.data import warm
from l2exp.data.source import DIGEST_ALGO, DataSource
from l2exp.data.stores.background import BackgroundWriter
from l2exp.data.stores.base import IngestWriter, L2Store, rejects_schema
from l2exp.data.validate import REASONS, ValidationState, Validator
from l2exp.errors import UserError
from l2exp.schema import BookChunk
from l2exp.summary import console, print_table, print_where, write_summary

SKEW_SAMPLE = 200_000  # receive-exchange differences kept per file for the quantiles (every k-th row beyond)


@dataclass
class ClockSkew:
    """``recv_ts - timestamp`` of accepted rows that have both clocks (ns), and receive times that go back.

    Why: the skew is network latency plus the offset of the recorder's clock from the venue's -- what a
    feed-latency model needs, and a clock that drifted shows here first. Quantiles from a bounded
    sample (every k-th row once more than :data:`SKEW_SAMPLE`): memory flat in file size."""

    rows: int = 0
    backwards: int = 0  # a row received before the row before it (same symbol)
    sample: list = field(default_factory=list)
    last: dict = field(default_factory=dict)  # symbol -> last receive time seen

    def observe(self, chunk: BookChunk) -> None:
        recv = chunk.recv_ts
        if recv is None:
            return
        have = recv >= 0
        if not have.any():
            return
        diff = (recv - chunk.timestamp)[have]
        self.rows += int(have.sum())
        step = max(1, self.rows // SKEW_SAMPLE)
        self.sample.append(diff[::step])
        sym = np.asarray(chunk.symbol, dtype=object)[have]
        r = recv[have]
        for name in pd.unique(sym):
            mine = r[sym == name]
            prev = self.last.get(name)
            seq = mine if prev is None else np.r_[prev, mine]
            self.backwards += int((np.diff(seq) < 0).sum())
            self.last[name] = int(mine[-1])

    def add(self, other: ClockSkew) -> None:
        self.rows += other.rows
        self.backwards += other.backwards
        self.sample += other.sample

    def summary(self) -> dict[str, Any] | None:
        if not self.rows:
            return None
        d = np.concatenate(self.sample).astype(np.float64) / 1e6
        q = np.percentile(d, [0, 50, 99, 100])
        return {"rows": self.rows, "min_ms": round(float(q[0]), 3), "p50_ms": round(float(q[1]), 3),
                "p99_ms": round(float(q[2]), 3), "max_ms": round(float(q[3]), 3), "recv_backwards": self.backwards}


@dataclass
class IngestStats:
    rows_in: int = 0
    accepted: int = 0
    rejected: int = 0
    inserted: int = 0
    by_reason: Counter = field(default_factory=Counter)
    missing_level_rows: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    first_ts: int | None = None
    last_ts: int | None = None
    symbols: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    book: Counter = field(default_factory=Counter)  # incremental sources: deltas_in, sequence_gaps...
    damaged: str = ""  # the file could not be read past some point: the message (its rows before are stored)
    clocks: ClockSkew = field(default_factory=lambda: ClockSkew())  # receive - exchange time, where both exist

    def add(self, other: IngestStats) -> None:
        self.rows_in += other.rows_in
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.inserted += other.inserted
        self.by_reason.update(other.by_reason)
        self.missing_level_rows += other.missing_level_rows
        self.symbols.update(other.symbols)
        self.book.update(other.book)
        self.clocks.add(other.clocks)
        for ts in (other.first_ts, other.last_ts):
            if ts is not None:
                self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
                self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def to_json(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "accepted": self.accepted, "rejected": self.rejected,
                "inserted": self.inserted, "rejected_by_reason": dict(self.by_reason),
                "missing_level_rows": self.missing_level_rows, "first_ts": self.first_ts,
                "last_ts": self.last_ts, "symbols": dict(self.symbols), **({"book": book_summary(self.book)}
                                                                               if self.book else {}),
                **({"damaged": self.damaged} if self.damaged else {})}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> IngestStats:
        return cls(rows_in=d["rows_in"], accepted=d["accepted"], rejected=d["rejected"], inserted=0,
                   by_reason=Counter(d["rejected_by_reason"]), missing_level_rows=d["missing_level_rows"],
                   first_ts=d["first_ts"], last_ts=d["last_ts"], symbols=Counter(d["symbols"]),
                   book=Counter({k: v for k, v in d.get("book", {}).items() if isinstance(v, int)}))


def book_summary(c: Counter) -> dict[str, Any]:
    """The book builder's counters, with ``top_of_book_match`` = matching / checked venue ticks."""
    out: dict[str, Any] = {k: 0 for k in ("deltas_in", "deltas_applied", "sequence_gaps", "snapshots_out")} | dict(c)
    if c.get("ticker_checks"):
        out["top_of_book_match"] = c["ticker_matches"] / c["ticker_checks"]
    return out


def _rejects_table(chunk: BookChunk, idx: np.ndarray, reasons: np.ndarray, lines: np.ndarray,
                   detail: dict[int, str], path: str, levels: int) -> pa.Table:
    t = chunk.take(idx).to_arrow()
    t = t.append_column("source_file", pa.array([path] * len(idx), pa.string()))
    t = t.append_column("line", pa.array(lines[idx], pa.int64()))
    t = t.append_column("reason", pa.array([REASONS[c - 1] for c in reasons[idx]], pa.string()))
    t = t.append_column("detail", pa.array([detail.get(int(i)) for i in idx], pa.string()))
    return t.cast(rejects_schema(levels))


def _malformed_table(bad_rows: list[tuple[int, str, str]], path: str, levels: int) -> pa.Table:
    """Rejects that never became a book row: ``(line, reason, detail)``."""
    schema = rejects_schema(levels)
    cols = {f.name: pa.nulls(len(bad_rows), f.type) for f in schema}
    cols["source_file"] = pa.array([path] * len(bad_rows), pa.string())
    cols["line"] = pa.array([b[0] for b in bad_rows], pa.int64())
    cols["reason"] = pa.array([b[1] for b in bad_rows], pa.string())
    cols["detail"] = pa.array([b[2][:300] for b in bad_rows], pa.string())
    return pa.table(cols, schema=schema)


@dataclass(frozen=True)
class MapTask:
    """Read and map one source file in a worker, spilling each mapped chunk to ``spill`` (pickles,
    one per chunk): the driver then validates and stores them in file order."""

    source: DataSource
    path: str
    chunk_rows: int
    spill: str


def map_file(task: MapTask) -> list[str]:
    """The chunk files of ``task.path``, in order. Reading and mapping (CSV parse, decompression, book
    rebuilds) is most of an ingest's work and depends on the file alone; validation and writes do not
    (cross-file rules, the store's single writer), so only this part runs in parallel and the store is
    the serial run's by construction."""
    out = Path(task.spill)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for k, item in enumerate(task.source.iter_mapped(task.path, task.chunk_rows)):
        item[0].floats = None  # mapped already: the parser's matrix would be pickled a second time
        f = out / f"chunk-{k:06d}.pkl"
        with open(f, "wb") as fh:
            pickle.dump(item, fh, protocol=pickle.HIGHEST_PROTOCOL)
        files.append(str(f))
    return files


def _spilled(files: list[str]) -> Iterator[Any]:
    """Mapped chunks back from a worker's spill, one at a time (memory: one chunk), deleted once read."""
    for f in files:
        with open(f, "rb") as fh:
            item = pickle.load(fh)
        Path(f).unlink(missing_ok=True)
        yield item


def ingest_file(source: DataSource, path: str, validator: Validator, writer: IngestWriter | None,
                chunk_rows: int, progress: Progress | None = None, task: Any = None,
                examples: int = 3, mapped: Iterable[Any] | None = None) -> IngestStats:
    """Validate and (unless ``writer`` is None) store one file: read and mapped here, or ``mapped``
    already (its chunks from :func:`map_file`)."""
    from l2exp.errors import DamagedFile

    st = IngestStats()
    try:
        _ingest_chunks(st, source, path, validator, writer, progress, task, examples,
                       source.iter_mapped(path, chunk_rows) if mapped is None else mapped)
    except DamagedFile as dmg:  # every row before the damage was validated and written: keep them
        st.damaged = dmg.render()
    if writer is not None:
        st.inserted += writer.flush()
    return st


def _ingest_chunks(st: IngestStats, source: DataSource, path: str, validator: Validator,
                   writer: IngestWriter | None, progress: Progress | None, task: Any, examples: int,
                   chunks: Iterable[Any]) -> None:
    levels = source.mapping.levels
    for raw, chunk, unparseable, detail in chunks:
        n = chunk.n
        st.rows_in += n + len(raw.bad_rows)
        if raw.bad_rows:
            if "unparseable" in validator.fail:
                line, text = raw.bad_rows[0]
                from l2exp.errors import UserError

                raise UserError(f"malformed line (rule 'unparseable' set to fail): {text[:120]!r}",
                                where=f"{path}, line {line}",
                                fix="Fix the line or set validation.rules.unparseable=reject.")
            st.rejected += len(raw.bad_rows)
            st.by_reason["unparseable"] += len(raw.bad_rows)
            st.examples.setdefault("unparseable", []).extend(
                f"line {ln}: {tx[:80]!r}" for ln, tx in raw.bad_rows[:examples])
            if writer is not None:
                writer.write_rejects(_malformed_table([(ln, "unparseable", f"malformed line: {tx[:200]}")
                                                       for ln, tx in raw.bad_rows], path, levels))
        if raw.rejects:  # messages a book builder could not use (sequence gaps, no snapshot yet)
            st.rows_in += len(raw.rejects)
            st.rejected += len(raw.rejects)
            for ln, why, text in raw.rejects:
                st.by_reason[why] += 1
                ex = st.examples.setdefault(why, [])
                if len(ex) < examples:
                    ex.append(f"line {ln}: {text[:160]}")
            if writer is not None:
                writer.write_rejects(_malformed_table(raw.rejects, path, levels))
        st.book.update({k: int(v) for k, v in raw.stats.items()})  # NumPy counts too: the manifest is JSON
        for kind, side_rows in raw.sides.items():  # the updates and trades the rows came from
            st.book[f"{kind}_stored"] += side_rows.num_rows
            if writer is not None:
                writer.write_side(kind, side_rows)
        if n == 0:
            continue
        reason, keys = validator.check(chunk, unparseable)
        validator.raise_if_fatal(reason, raw.lines, path, detail)
        ok = reason == 0
        acc = np.flatnonzero(ok)
        rej = np.flatnonzero(~ok)
        st.accepted += len(acc)
        st.rejected += len(rej)
        for code, cnt in zip(*np.unique(reason[rej], return_counts=True), strict=True):
            name = REASONS[int(code) - 1]
            st.by_reason[name] += int(cnt)
            ex = st.examples.setdefault(name, [])
            if len(ex) < examples:
                for i in rej[reason[rej] == code][: examples - len(ex)]:
                    ex.append(f"line {int(raw.lines[i])}" + (f": {detail[int(i)]}" if int(i) in detail else ""))
        if len(acc):
            good = chunk.take(acc)
            st.missing_level_rows += int((np.isnan(good.bid_price).any(1) | np.isnan(good.ask_price).any(1)).sum())
            st.clocks.observe(good)
            lo, hi = int(good.timestamp.min()), int(good.timestamp.max())
            st.first_ts = lo if st.first_ts is None else min(st.first_ts, lo)
            st.last_ts = hi if st.last_ts is None else max(st.last_ts, hi)
            for sym, cnt in pd.Categorical(good.symbol).value_counts().items():
                if cnt:
                    st.symbols[str(sym)] += int(cnt)
            if writer is not None:
                st.inserted += writer.write(good.to_arrow(), keys[acc])
        if writer is not None and len(rej):
            writer.write_rejects(_rejects_table(chunk, rej, reason, raw.lines, detail, path, levels))
        if progress is not None:
            progress.update(task, advance=n + len(raw.bad_rows))


class _RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed or 0:,.0f} rows/s")


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:,.0f} rows"),
                    _RowsPerSecond(), TimeElapsedColumn(),
                    console=console, disable=not enabled, transient=False)


@dataclass(frozen=True)
class IngestOptions:
    """How to ingest: ``chunk_rows`` per read (``validation.chunk_rows``; memory is flat in rows), reject
    examples kept per reason, a progress bar on a terminal."""

    chunk_rows: int = 100_000
    examples_per_reason: int = 3
    progress: bool = True


def ingest(source: DataSource, store: L2Store | None, validator: Validator,
           options: IngestOptions = IngestOptions(), compute: Any = None) -> dict[str, Any]:
    """Every file of ``source`` through ``validator`` into ``store`` (``None``: validate only, write
    nothing); files the store already holds (same content digest) are skipped, their validation
    end-state restored. With a parallel ``compute`` backend (:mod:`l2exp.compute`) and several files
    to read, the files are read and mapped as parallel tasks (:func:`map_file`) while this process
    validates and stores them in file order. Prints the report, writes ``summary.json``, returns it."""
    t0 = time.perf_counter()
    warm.start()  # the compiled kernels load beside the digest and the store's recovery
    total = IngestStats()
    damaged: list[tuple[str, IngestStats]] = []  # files read up to a damage (their rows before it are stored)
    files = source.files()
    chunk_rows = int(options.chunk_rows)
    examples = int(options.examples_per_reason)
    lock = store.writer_lock() if store is not None else contextlib.nullcontext()
    _clean_stale_spill()
    with lock, _progress(options.progress and console.is_terminal) as progress, \
            tempfile.TemporaryDirectory(prefix=f"{SPILL_PREFIX}{os.getpid()}-") as spill:
        if store is not None:
            store.recover()
        listed = store.manifests() if store is not None else []  # the files the store holds, read once
        ahead = _read_ahead(source, files, listed, chunk_rows, compute)
        digests = {path: source.digest(path) for path in files}
        manifests = {p: store.done(d) if store is not None else None for p, d in digests.items()}
        if any(m.get("digest_algo") is None for m in listed):
            for p in files:  # a store of files keyed by the digest before XXH3: look them up by that key
                if manifests[p] is None and (found := store.done(old := source.legacy_digest(p))) is not None:
                    digests[p], manifests[p] = old, found
        todo = [p for p in files if manifests[p] is None]
        premapped: Iterator[list[str]] = iter(())
        parallel = _reads_in_parallel(compute, len(todo))
        if parallel:
            premapped = compute.imap(map_file, [MapTask(source, p, chunk_rows, f"{spill}/{k:05d}")
                                                for k, p in enumerate(todo)])
        for path in files:
            digest, manifest = digests[path], manifests[path]
            if manifest is not None:
                if path in ahead:  # read for nothing: the store has this content already
                    ahead.pop(path).close()
                gone = store.missing_parts(manifest) if store is not None else []
                if gone:  # "already ingested" must mean its rows are there: a deleted part is not skipped over
                    raise UserError(f"{len(gone)} part file(s) of {path} committed to the store are missing (first: "
                                    f"{gone[0]}): its rows are not all in the store", where=store.location(),
                                    fix="l2exp mode=verify mode.repair=true (same data= and store=) drops that source "
                                        "and ingests it again")
                st = IngestStats.from_json(manifest["stats"])
                st.damaged = str(manifest["stats"].get("damaged", ""))
                if st.damaged:  # stored up to its damage by an earlier run: still said, every run
                    damaged.append((path, st))
                validator.state = ValidationState.from_json(manifest["validation_state"])
                total.add(st)
                total.files.append({"path": path, "digest": digest, "reused": True, **st.to_json()})
                continue
            task = progress.add_task(path.rsplit("/", 1)[-1], total=None)
            writer = store.begin(digest, path) if store is not None else None
            if writer is not None and store.background_writes:
                writer = BackgroundWriter(writer)
            mapped = _spilled(next(premapped)) if parallel else ahead.pop(path, None)
            try:
                st = ingest_file(source, path, validator, writer, chunk_rows, progress, task, examples, mapped)
            except BaseException:
                if writer is not None:
                    writer.abort()
                raise
            if writer is not None:
                writer.commit({"path": path, "digest": digest, "digest_algo": DIGEST_ALGO, "stats": st.to_json(),
                               "validation_state": validator.state.to_json()})
            total.add(st)
            for k, v in st.examples.items():
                total.examples.setdefault(k, []).extend(v[: examples])
            total.files.append({"path": path, "digest": digest, "reused": False, **st.to_json()})
            if st.damaged:
                damaged.append((path, st))
    assert total.rows_in == total.accepted + total.rejected, "row accounting broken"
    seconds = time.perf_counter() - t0
    summary = {
        "mode": "ingest" if store is not None else "validate", "data": source.name,
        "levels": source.mapping.levels, "source_levels": source.mapping.source_levels,
        "rows_in": total.rows_in, "accepted": total.accepted,
        "rejected": total.rejected,
        "rejected_by_reason": {r: total.by_reason[r] for r in [*REASONS, *sorted(set(total.by_reason) - set(REASONS))]
                               if total.by_reason.get(r, 0)},
        "inserted": total.inserted, "missing_level_rows": total.missing_level_rows,
        "symbols": dict(total.symbols), "first_ts": total.first_ts, "last_ts": total.last_ts,
        "seconds": round(seconds, 3), "rows_per_s": round(total.rows_in / seconds) if seconds else None,
        "files": total.files, "store": store.location() if store is not None else None,
        "read_on": compute.describe() if parallel else "this process",
        "store_rows": store.count() if store is not None else None,
        "reject_examples": total.examples,
        **({"book": book_summary(total.book)} if total.book else {}),
        **({"clock_skew": total.clocks.summary()} if total.clocks.rows else {}),
    }
    _report(summary)
    print_where([("store", summary["store"])])
    write_summary(summary)
    if damaged:
        raise _damaged_files(damaged, store is not None)
    if total.rows_in and not total.accepted:
        raise _nothing_accepted(summary)
    return summary


SPILL_PREFIX = "l2exp-premap-"  # + the ingest's pid: the parallel readers' spill folders in the temp folder


def _clean_stale_spill() -> None:
    """Spill folders of ingests that died without cleaning up (``kill -9``: 474 MB were left in the temp
    folder) are removed by the next ingest: a folder whose process is gone."""
    import shutil

    for d in Path(tempfile.gettempdir()).glob(f"{SPILL_PREFIX}*"):
        pid = d.name.removeprefix(SPILL_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue  # an old name without a pid, or an ingest still running
        shutil.rmtree(d, ignore_errors=True)


def _damaged_files(damaged: list[tuple[str, IngestStats]], stored: bool) -> UserError:
    """Files read only up to their damage: what was kept of each, exactly as stored (exit 2)."""
    lines = []
    for path, st in damaged:
        first = st.damaged.splitlines()[0].removeprefix("error: ")
        kept = (f"{st.accepted:,} rows before the damage are stored ({st.rejected:,} rejected)" if stored
                else f"{st.accepted:,} rows before the damage are valid ({st.rejected:,} rejected)")
        lines.append(f"{path}: {first}; {kept}")
    return UserError(f"{len(damaged)} file(s) could not be read to the end:\n  " + "\n  ".join(lines),
                     where=damaged[0][0],
                     fix="Re-download or re-copy the file (for .gz: `gzip -t FILE` checks it) and ingest again: the "
                         "fixed file is read anew and only its missing rows are added. The other files are ingested.")


def _reads_in_parallel(compute: Any, files: int) -> bool:
    """Whether ``files`` files are read and mapped as tasks of a parallel ``compute`` backend."""
    return compute is not None and getattr(compute, "workers", 1) != 1 and files > 1


def _read_ahead(source: DataSource, files: list[str], listed: list[dict[str, Any]], chunk_rows: int,
                compute: Any) -> dict[str, Iterator[Any]]:
    """The first file's read, started before the digests are taken: ``{path: its mapped chunks}``.

    Why: a file's digest (the store's key: is it ingested already?) reads the whole file before the
    first chunk -- 0.1 s for 556 MB, beside the compiled kernels loading, which it slowed by as much
    (measured: kernels ready at 0.26-0.29 s after the digest, 0.16-0.19 s without). Reading ahead
    overlaps both; the prefetch holds two chunks at most. Not when the store's manifests (``listed``)
    name the file's path (most likely a re-run that skips it), nor when files are read on parallel workers."""
    if not files or _reads_in_parallel(compute, len(files)):
        return {}
    first = files[0]
    if any(m.get("path") == first for m in listed):
        return {}
    return {first: source.iter_mapped(first, chunk_rows)}


def _nothing_accepted(s: dict[str, Any]) -> UserError:
    """Every row rejected is never a success: name the dominant reason and the likely cause."""
    top, count = max(s["rejected_by_reason"].items(), key=lambda kv: kv[1])
    ex = "; ".join(s["reject_examples"].get(top, [])[:2])
    causes = {
        "unparseable": "the files are not in the layout data={d} describes (another venue's format, or a wrong "
                       "delimiter/column list)",
        "no_snapshot": "the capture has no depth snapshot before its updates (nor a previous file it continues)",
        "sequence_gap": "the update ids never chain: the wrong venue's sequence rule, or a capture with gaps",
        "crossed_book": "bid and ask columns may be swapped in the mapping",
        "symbol_mismatch": "the capture is another symbol than the config says (data.reader.symbol): use that "
                           "symbol's data config, or set data.reader.symbol to it",
        "empty_side": "one side of the book is empty in every row (a one-sided sample, or a mapping that reads "
                      "only one side)",
        "unsorted_levels": "levels may be numbered in the other direction, or need mapping.sort_levels=true",
    }
    cause = causes.get(top, "see the reject examples").format(d=s["data"])
    unread = s["rejected_by_reason"].get("unparseable", 0)
    if top != "unparseable" and unread:
        # lines the reader could not read come first: they are often what the rest was missing (a snapshot line
        # behind another prefix leaves every update without a book -- the count names the consequence, not the cause)
        read_ex = "; ".join(s["reject_examples"].get("unparseable", [])[:2])
        cause = (f"{unread:,} line(s) could not be read at all ({read_ex}) -- if those are the snapshots or the "
                 f"header the other rows need, that is the cause: make the reader read them (data.reader: its "
                 f"receive_time.separator / line prefix, or the delimiter). Otherwise: {cause}")
    others = ", ".join(f"{k} {v:,}" for k, v in sorted(s["rejected_by_reason"].items(), key=lambda kv: -kv[1])
                       if k != top)
    return UserError(f"no row of data={s['data']} was accepted: {count:,} of {s['rows_in']:,} rejected as {top!r}"
                     + (f" (e.g. {ex})" if ex else " (examples: the rejects table of the run that read the files)")
                     + (f"; also {others}" if others else ""),
                     where=f"data={s['data']} ({', '.join(str(f['path']) for f in s['files'][:3])})",
                     fix=f"Likely cause: {cause}. Check data.path and the data config "
                         f"(conf/data/{s['data']}.yaml); the rejects are kept in the store with file, line and reason.")


def _report(s: dict[str, Any]) -> None:
    import pandas as pd

    def ts(v: int | None) -> str:
        return "-" if v is None else str(pd.Timestamp(v, tz="UTC"))

    rows = [("data", s["data"]), ("files", len(s["files"]) if s["files"] else 0),
            ("rows_in", f"{s['rows_in']:,}"), ("accepted", f"{s['accepted']:,}"),
            ("rejected", f"{s['rejected']:,}")]
    for reason, count in s["rejected_by_reason"].items():
        ex = "; ".join(s["reject_examples"].get(reason, [])[:2])
        rows.append((f"  {reason}", f"{count:,}   e.g. {ex}"))
    if "book" in s:  # rebuilt from updates: what the builder did, and the venue's own top of book
        b = s["book"]
        rows.append(("book rebuilt from updates", ", ".join(
            f"{k} {b.get(k, 0):,}" for k in ("deltas_in", "deltas_applied", "sequence_gaps", "snapshots_out"))))
        if "top_of_book_match" in b:
            rows.append(("top_of_book_match", f"{b['top_of_book_match']:.4f} of {b['ticker_checks']:,} venue ticks "
                                              "with the same update id"))
    rows += [("levels (canonical/source)", f"{s['levels']}/{s['source_levels']}"),
             ("rows with missing levels", f"{s['missing_level_rows']:,}"),
             *([("receive - exchange time", _skew_text(s["clock_skew"]))] if s.get("clock_skew") else []),
             ("symbols", ", ".join(f"{k}: {v:,}" for k, v in s["symbols"].items())),
             ("time range (UTC)", f"{ts(s['first_ts'])} -> {ts(s['last_ts'])}"),
             ("seconds", f"{s['seconds']} ({s['rows_per_s'] or 0:,} rows/s)")]
    if s.get("read_on", "this process") != "this process":
        rows.append(("files read and mapped on", f"{s['read_on']} (validated and stored here, in file order)"))
    if s["store"]:
        reused = sum(1 for f in s["files"] if f["reused"])
        rows += [("store", s["store"]), ("newly inserted", f"{s['inserted']:,}"),
                 ("rows in store", f"{s['store_rows']:,}")]
        if reused:
            rows.append(("files already ingested (skipped)", reused))
    print_table(f"{s['mode']}: rows_in = accepted + rejected", rows)
    other = {k.split(":", 1)[1]: v for k, v in s.get("book", {}).items() if k.startswith("other_symbol:")}
    if other:
        from l2exp.summary import console

        names = ", ".join(f"{k} ({v:,} updates)" for k, v in other.items())
        console.print(f"[bold yellow]updates of another symbol in the capture were rejected (symbol_mismatch): "
                      f"{escape(str(names))}; data={escape(str(s['data']))} is configured for "
                      f"{escape(', '.join(s['symbols']) or '?')}[/]")


def _skew_text(c: dict[str, Any]) -> str:
    """The two clocks in one line: latency plus clock offset, and receive times that went back."""
    return (f"p50 {c['p50_ms']:,.3f} ms, p99 {c['p99_ms']:,.3f} ms (min {c['min_ms']:,.3f}, max {c['max_ms']:,.3f}; "
            f"{c['rows']:,} rows with both clocks; receive time went back {c['recv_backwards']:,} time(s))")
