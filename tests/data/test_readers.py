"""Readers: chunking, malformed lines with their line numbers, bad files, companions."""

from __future__ import annotations

import gzip
import threading
import time

import numpy as np
import pytest

from l2exp.data import readers
from l2exp.data.readers import CsvReader, JsonLinesReader
from l2exp.errors import UserError


def write(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_chunks_cover_every_row_with_lines(tmp_path):
    p = write(tmp_path / "a.csv", "x,y\n" + "".join(f"{i},{i}\n" for i in range(25)))
    chunks = list(CsvReader(1).iter_chunks(p, 10, {"x", "y"}))
    assert [c.table.num_rows for c in chunks] == [25]  # one pyarrow block; chunks split at block level
    assert chunks[0].lines.tolist() == list(range(2, 27))


def test_malformed_and_text_rows_keep_exact_lines(tmp_path):
    body = "1,2\n3\n4,5\n6,x\n7,8,9\n10,11"  # no trailing newline, as in LOBSTER files
    p = write(tmp_path / "b.csv", body)
    chunks = list(CsvReader(1, columns=["x", "y"]).iter_chunks(p, 100, {"x", "y"}))
    table = chunks[0].table
    assert table.column("x").to_pylist() == ["1", "4", "6", "10"]  # line mode: text, mapped later
    assert chunks[0].lines.tolist() == [1, 3, 4, 6]
    assert [b[0] for b in chunks[0].bad_rows] == [2, 5]


def test_empty_missing_and_truncated_files(tmp_path):
    with pytest.raises(UserError, match="empty"):
        list(CsvReader(1, columns=["x"]).iter_chunks(write(tmp_path / "e.csv", ""), 10, set()))
    with pytest.raises(UserError, match="not found"):
        list(CsvReader(1, columns=["x"]).iter_chunks(str(tmp_path / "nope.csv"), 10, set()))
    raw = gzip.compress("".join(f"{i},{i * 2}.5\n" for i in range(200_000)).encode())
    (tmp_path / "t.csv.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        list(CsvReader(1, columns=["x", "y"]).iter_chunks(str(tmp_path / "t.csv.gz"), 1000, {"x", "y"}))


def test_companion_file_is_read_in_lockstep(tmp_path):
    write(tmp_path / "X_orderbook_1.csv", "".join(f"{i}\n" for i in range(30)))
    write(tmp_path / "X_message_1.csv", "".join(f"{i * 10}\n" for i in range(30)))
    r = CsvReader(1, columns=["v"], companion={"path_sub": [r"_orderbook_(\d)", r"_message_\1"], "columns": ["t"]})
    chunk = next(r.iter_chunks(str(tmp_path / "X_orderbook_1.csv"), 7, {"v"}))
    np.testing.assert_array_equal(chunk.table.column("t").to_numpy() / 10, chunk.table.column("v").to_numpy())


def test_jsonl_bad_lines_become_rejects_with_lines(tmp_path):
    good = '{"ts": %d, "bids": [[1, 2]], "asks": [[3, 4]]}'
    lines = [good % 1, "{broken", good % 2]
    p = write(tmp_path / "d.jsonl", "\n".join(lines) + "\n")
    chunks = list(JsonLinesReader(1).iter_chunks(p, 100, set()))
    assert sum(c.table.num_rows for c in chunks) == 2
    assert [b[0] for c in chunks for b in c.bad_rows] == [2]
    assert [int(x) for c in chunks for x in c.lines] == [1, 3]


class _CountingStream:
    """A stream of ``data`` that records how far it has been read (``readinto`` as a file's)."""

    def __init__(self, data: bytes, wake_at: int) -> None:
        self.data, self.pos, self.wake_at = data, 0, wake_at
        self.reached = threading.Event()

    def readinto(self, b) -> int:
        n = min(len(b), len(self.data) - self.pos)
        memoryview(b)[:n] = self.data[self.pos: self.pos + n]
        self.pos += n
        if self.pos >= self.wake_at:
            self.reached.set()
        return n


def test_compressed_blocks_are_read_one_ahead_into_the_other_buffer():
    """While the consumer holds block k, block k+1 is read (decompressed) by the reading thread -- into
    the other buffer, so block k's bytes stay intact; the blocks together are the text, whole lines."""
    text = b"".join(b"%d,%d.25\n" % (i, i * 3) for i in range(5000))
    fh = _CountingStream(text, wake_at=2 * 4096)
    blocks = readers._stream_blocks(fh, [4096], 0, "t.csv.gz", lambda: 0)
    first = next(blocks)
    kept = bytes(first)
    assert fh.reached.wait(5), "the next block was not read while the first was held"
    time.sleep(0.05)  # the reader now waits for a free buffer; it must not have taken the held one
    assert bytes(first) == kept and kept.endswith(b"\n")
    rest = [bytes(b) for b in blocks]
    assert kept + b"".join(rest) == text and all(b.endswith(b"\n") for b in rest)


def test_a_reader_left_early_stops_its_thread_and_errors_reach_the_consumer(tmp_path):
    text = b"".join(b"%d,%d\n" % (i, i) for i in range(20000))
    blocks = readers._stream_blocks(_CountingStream(text, 0), [1024], 1, "t.csv.gz", lambda: 0)
    assert next(blocks).tobytes().startswith(b"1,1\n")  # the header line skipped
    blocks.close()
    assert not [t for t in threading.enumerate() if t.name == "l2exp-decompress"]
    (tmp_path / "e.csv.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(UserError, match="empty"):
        list(CsvReader(1, columns=["x"]).iter_chunks(str(tmp_path / "e.csv.gz"), 10, set()))


def test_a_mistyped_reader_key_is_refused_not_ignored():
    """``+data.reader.delimeter=;`` was accepted and ignored (the file then read with ','): one message
    naming the closest key, for every reader kind."""
    from l2exp.data.readers import ParquetReader

    with pytest.raises(UserError, match="unknown key data.reader.delimeter") as e:
        CsvReader(3, delimeter=";")
    assert "data.reader.delimiter" in (e.value.fix or "")
    for cls in (JsonLinesReader, ParquetReader):
        with pytest.raises(UserError, match="unknown key data.reader.colums"):
            cls(3, colums=["a"])
    assert CsvReader(3, delimiter=";").delimiter == ";"
