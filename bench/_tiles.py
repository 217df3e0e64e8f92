"""Make large benchmark inputs by tiling a real recording (timestamps shifted per tile).

The tiled files live in bench/_work (git-ignored); the recordings themselves are only read.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from l2exp.config import shared_data_dir
from l2exp.data.readers import expand_columns

WORK = Path(__file__).resolve().parent / "_work"
BITMEX = "bitmex/orderbook10_2020-03-10.csv.gz"
BITMEX_COLUMNS = expand_columns(["moment", "millis", "symbol", "a{i}", "av{i}", "b{i}", "bv{i}"], 10)


def bitmex_source() -> Path:
    src = shared_data_dir() / BITMEX
    if not src.exists():
        raise SystemExit(f"benchmark needs {src} (set L2EXP_SHARED_DATA or place ../shared beside the repo)")
    return src


def tiled_bitmex(rows: int, gz: bool) -> Path:
    """CSV (or CSV.gz) of >= ``rows`` rows in the BitMEX orderbook10 layout, made by repeating the
    real 03-10 recording with each tile shifted past the previous one in time."""
    WORK.mkdir(exist_ok=True)
    out = WORK / f"bitmex_tiled_{rows}.csv{'.gz' if gz else ''}"
    if out.exists():
        return out
    base = pacsv.read_csv(bitmex_source(), read_options=pacsv.ReadOptions(column_names=BITMEX_COLUMNS))
    span = pc.max(base["moment"]).as_py() - pc.min(base["moment"]).as_py()
    shift_s = int(span.total_seconds()) + 1
    tiles = -(-rows // base.num_rows)
    tmp = out.with_suffix(out.suffix + ".tmp")
    sink = pa.CompressedOutputStream(str(tmp), "gzip") if gz else pa.OSFile(str(tmp), "wb")
    opts = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with sink:
        for k in range(tiles):
            moment = pc.add(base["moment"], pa.scalar(k * shift_s, pa.duration("s")))
            t = base.set_column(0, "moment", pc.strftime(moment, "%Y-%m-%d %H:%M:%S"))
            pacsv.write_csv(t, sink, write_options=opts)
    os.replace(tmp, out)
    return out
