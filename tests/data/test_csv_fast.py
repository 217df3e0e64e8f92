"""The compiled CSV parser: the reader with it gives exactly the tables, line numbers and malformed rows
of the reader with pyarrow parsing every block, on any text -- numbers it decides bit for bit as
fast_float does, everything else handed back to pyarrow."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from l2exp.data import readers
from l2exp.data.csv_fast import _UNDECIDED, _WORD_SLACK, FastCsvParser, _number, _number_bytes, _number_words
from l2exp.data.readers import CsvReader

NUMBERS = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.decimals(min_value=-10**9, max_value=10**9, places=6,
                allow_nan=False, allow_infinity=False).map(str),
    st.tuples(st.integers(0, 99999), st.integers(0, 99999)).map(lambda t: f"{t[0]}.{t[1]}"),
    st.tuples(st.integers(1, 999), st.integers(-30, 30)).map(lambda t: f"{t[0]}e{t[1]}"),
    st.sampled_from(["", "0", "-0", "0.0", "00012.50", ".5", "5.", "1E5", "1e+5", "2.5e-3", "12345678901234567",
                     "123456789012345678901", "9007199254740993", "1e400", "-1e-400", "0e400", "-0e-400",
                     "-0.000", "1e22", "1e23", "1e-22", "1e-23", "9007199254740992e-22", "9007199254740992e22"]),
)
ODD = st.sampled_from(["nan", "inf", "+1", " 1", "1 ", "1e", "-", ".", "1.2.3", "0x10", '"7"', '""', "1_0", "é"])
TEXT = st.one_of(st.from_regex(r"[A-Za-z0-9 :\-]{0,12}", fullmatch=True), st.sampled_from(['"XBTUSD\x00\x00"', '"a,b"',
                                                                                            '"q""q"', "é", "ab\rc"]))


def _line(row: tuple) -> str:
    return ",".join(row)


rows = st.lists(st.tuples(TEXT, st.one_of(NUMBERS, NUMBERS, NUMBERS, ODD), NUMBERS), min_size=1, max_size=40)


def _read(path: str, fast: bool, columns: list[str] | None) -> list:
    out = []
    for c in CsvReader(1, columns=columns, fast=fast).iter_chunks(path, 7, {"x", "y"}):
        out.append((c.table, c.lines.tolist(), c.bad_rows))  # noqa: PERF401
    return out


def _same(a: list, b: list) -> None:
    """The same chunks: tables (NaN-aware: Arrow's equals says NaN != NaN; null apart from NaN; the
    sign of zero), line numbers and malformed rows."""
    assert len(a) == len(b)
    for (ta, la, ba), (tb, lb, bb) in zip(a, b, strict=True):
        assert (la, ba) == (lb, bb)
        assert ta.schema == tb.schema and ta.num_rows == tb.num_rows
        for name in ta.column_names:
            ca, cb = ta.column(name), tb.column(name)
            assert ca.is_null().to_pylist() == cb.is_null().to_pylist(), name
            if pa.types.is_floating(ca.type):
                np.testing.assert_array_equal(ca.to_numpy(), cb.to_numpy(), err_msg=name)
                assert np.signbit(ca.to_numpy()).tolist() == np.signbit(cb.to_numpy()).tolist(), name
            else:
                assert ca.to_pylist() == cb.to_pylist(), name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows, header=st.booleans(), crlf=st.booleans(), trailing_newline=st.booleans(),
       block=st.sampled_from([48, 200, 1 << 25]), gz=st.booleans())
# an integer with a trailing blank: pyarrow's CSV conversion reads it, a compute cast refuses it
@example(rows=[("0 ", "0", "0")], header=False, crlf=False, trailing_newline=True, block=48, gz=False)
def test_fast_reader_equals_pyarrow_reader(tmp_path, monkeypatch, rows, header, crlf, trailing_newline, block, gz):
    monkeypatch.setattr(readers, "_BLOCK_BYTES", block)  # many blocks, lines across window edges
    end = "\r\n" if crlf else "\n"
    text = ("s,x,y" + end if header else "") + end.join(_line(r) for r in rows) + (end if trailing_newline else "")
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    columns = None if header else ["s", "x", "y"]
    try:
        want = _read(str(path), False, columns)
    except Exception as exc:  # noqa: BLE001 - the fast reader must fail the same way
        with pytest.raises(type(exc)):
            _read(str(path), True, columns)
        return
    _same(_read(str(path), True, columns), want)


@given(st.one_of(NUMBERS, ODD), st.sampled_from(["", ",", "\n", ",9999999999", "e5,", ".5,", "x" * 30]))
@settings(max_examples=400, deadline=None)
def test_numbers_decided_here_are_correctly_rounded(text, after):
    """Decided numbers are Python's (correctly rounded) floats -- at a buffer's end (byte by byte) and
    followed by more text (the word path, which may read past the number)."""
    buf = np.frombuffer((text + after).encode() or b"", np.uint8)
    v, nxt = _number(buf, 0, len(text.encode()))
    if nxt == len(text.encode()) and text:
        assert np.float64(v).tobytes() == np.float64(float(text)).tobytes(), text


BOOK_NUMBERS = st.tuples(st.booleans(), st.integers(0, 9_999_999),
                         st.one_of(st.none(), st.text("0123456789", max_size=7))).map(
    lambda t: ("-" if t[0] else "") + str(t[1]) + ("" if t[2] is None else "." + t[2]))
DIGITS_AND_SIGNS = st.text("0123456789.-+eE,\n x", max_size=20)


@given(st.one_of(BOOK_NUMBERS, NUMBERS, ODD, DIGITS_AND_SIGNS), st.text("0123456789.,\n-e", max_size=30))
@settings(max_examples=600, deadline=None)
def test_the_word_path_decides_book_numbers_exactly_as_the_byte_path(text, after):
    """``_number_words`` reads eight bytes at a time, past the number's end: whatever it decides is
    the byte path's (value bit for bit, end position), it decides every ``[-]d{1,7}[.d{0,7}]``
    followed by a non-digit, and never a number that runs past the piece's ``end``."""
    raw = (text + after).encode()
    buf = np.frombuffer(raw + b"#" * _WORD_SLACK, np.uint8)  # room for the words; '#' ends any number
    for end in (len(raw), len(text.encode())):
        v, nxt = _number_words(buf, 0, end)
        if nxt == _UNDECIDED:
            continue
        v_bytes, nxt_bytes = _number_bytes(buf, 0, end)
        assert nxt == nxt_bytes and 0 < nxt <= end, (text, after, end)
        assert np.float64(v).tobytes() == np.float64(v_bytes).tobytes(), (text, after)
    if re.fullmatch(r"-?\d{1,7}(\.\d{0,7})?", text) and not re.match(r"[0-9eE.]", after):
        v, nxt = _number_words(buf, 0, len(raw))
        assert nxt == len(text) and np.float64(v).tobytes() == np.float64(float(text)).tobytes(), text


def test_the_common_shape_is_decided_here_and_odd_blocks_go_to_pyarrow():
    p = FastCsvParser(["t", "sym", "p", "q"], {"p", "q"}, ",", threads=2)
    good = b'"2020-03-10 18:25:10","XBTUSD\x00\x00",7823.5,1448760\n' * 1000
    t = p.parse(np.frombuffer(good, np.uint8))
    assert t is not None and t.num_rows == 1000
    assert t.column("p").to_pylist()[:2] == [7823.5, 7823.5] and t.column("sym")[0].as_py() == "XBTUSD\x00\x00"
    for odd in (b"a,b,nan,1\n", b"a,b,1,2,3\n", b"a,b,1\n", b"\n", b'a,"b""c",1,2\n', b"a,b,+1,2\n"):
        assert p.parse(np.frombuffer(good + odd, np.uint8)) is None, odd
    p.close()


def test_mapping_slices_adjacent_parsed_levels_and_maps_the_same(tmp_path):
    """BitMEX's layout (a1..a10, av1..av10, ...): each side's levels are adjacent columns of the parser's
    float matrix, so the mapping takes them as slices instead of copying -- and maps exactly what it maps
    from the table's columns; a mapping that rewrites values in place (scaling) copies."""
    from l2exp.data.mapping import LayoutMapping

    rng = np.random.default_rng(3)
    lines = []
    for k in range(500):
        mid = 7000 + k * 0.5
        asks = [mid + 0.5 * i for i in range(1, 4)]
        bids = [mid - 0.5 * i for i in range(1, 4)]
        sizes = rng.integers(1, 10**6, 12)
        lines.append(",".join([f'"2020-03-10 00:00:{k % 60:02d}"', str(k % 1000), '"XBTUSD"',
                               *map(str, asks), *map(str, sizes[:3]), *map(str, bids), *map(str, sizes[3:6])]))
    path = tmp_path / "ob.csv"
    path.write_text("\n".join(lines) + "\n")
    cfg = {"bid_price": "b{i}", "bid_size": "bv{i}", "ask_price": "a{i}", "ask_size": "av{i}",
           "timestamp": {"column": "moment", "unit": "iso", "tz": "UTC", "plus": {"column": "millis", "unit": "ms"}},
           "symbol": {"column": "symbol"}, "exchange": {"value": "bitmex"}}
    reader = CsvReader(3, columns=["moment", "millis", "symbol", "a{i}", "av{i}", "b{i}", "bv{i}"])
    for extra, sliced in (({}, True), ({"price_scale": 2.0}, False)):
        mapping = LayoutMapping.from_config({**cfg, **extra}, source_levels=3, levels=3)
        raw = next(reader.iter_chunks(str(path), 1000, mapping.numeric_columns()))
        assert raw.floats is not None
        chunk, bad, _ = mapping.apply(raw)
        assert np.shares_memory(chunk.ask_price, raw.floats) is sliced
        raw.floats = None  # the same rows mapped from the table's columns
        ref, ref_bad, _ = mapping.apply(raw)
        for name in ("bid_price", "bid_size", "ask_price", "ask_size"):
            np.testing.assert_array_equal(getattr(chunk, name), getattr(ref, name))
        np.testing.assert_array_equal(chunk.timestamp, ref.timestamp)
        assert not bad.any() and not ref_bad.any()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=3), st.binary(max_size=30)), max_size=12),
       st.binary(max_size=3))
def test_gather_strings_copies_each_field_and_tests_only_its_bytes(fields, tail):
    """Fields copied a word at a time: every field's bytes exact (short, long, empty, at the very end of
    the buffer), and the ASCII verdict sees only the fields -- a high byte between fields does not count."""
    from l2exp.data.csv_fast import gather_strings

    text, pos, want = b"", [], []
    for gap, field in fields:
        text += gap
        pos += [len(text), len(text) + len(field)]
        text += field
        want.append(field)
    text += tail
    buf = np.frombuffer(text, np.uint8) if text else np.zeros(0, np.uint8)
    offsets, data, ascii_only = gather_strings(buf, np.asarray(pos, np.int64), len(want))
    got = [bytes(data[offsets[i]:offsets[i + 1]]) for i in range(len(want))]
    assert got == want
    assert ascii_only == all(b < 128 for f in want for b in f)


def test_a_blocks_numbers_are_never_overwritten_while_anything_holds_them():
    """The parser reuses an earlier block's float matrix only once nothing refers to it: a table, a
    column of it, or a view of the matrix kept from block A survive parsing blocks B and C intact,
    and once dropped the memory is reused (not a new 60 MB per block)."""
    p = FastCsvParser(["a", "b"], {"a", "b"}, ",", threads=2)
    block = lambda k: np.frombuffer("".join(f"{k}.5,{i}\n" for i in range(1000)).encode(), np.uint8)  # noqa: E731
    table_a, mat_a = p.parse_block(block(1))
    column_a = table_a.column("a")
    view_a = mat_a[:10, 1]
    del table_a, mat_a
    for k in (2, 3):
        table, mat = p.parse_block(block(k))
        assert mat[0, 0] == k + 0.5
    assert column_a.to_pylist() == [1.5] * 1000 and view_a.tolist() == list(range(10))
    del column_a, view_a, table, mat
    spares = len(p._spares)
    for k in range(4, 9):
        t, m = p.parse_block(block(k))
        assert t.column("a").to_pylist() == [k + 0.5] * 1000
        del t, m
    assert len(p._spares) == spares  # reused
    p.close()
