"""Readers: chunking, malformed lines with their line numbers, bad files, companions."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

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
