"""Incremental books: deltas/s of l2exp's ingest of a Binance USD-M depth capture (parse, sequence
checks, compiled rebuild, validation, Parquet store) beside hftbacktest's own converter for that
format (``hftbacktest.data.utils.binancefutures.convert``: parse into its event array, no rebuild,
no checks) on the same file in the same run; peak memory at two file sizes (must stay flat).

    .venv/bin/python bench/book.py [--deltas 5000000]

Data: ../shared/data/binance_capture/usdm_btcusdt_20240808.gz tiled: the first copy whole (REST
snapshot included), then the REST snapshot and the depth messages after it again and again, update
ids and times shifted per copy (each copy re-syncs on its snapshot, so its book is the real one:
replaying a copy's diffs on the previous copy's final book would cross it).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._tiles import WORK  # noqa: E402
from l2exp.config import shared_data_dir  # noqa: E402

CAPTURE = "binance_capture/usdm_btcusdt_20240808.gz"


def tiled_capture(min_deltas: int) -> tuple[Path, int]:
    src = shared_data_dir() / CAPTURE
    if not src.exists():
        raise SystemExit(f"benchmark needs {src} (set L2EXP_SHARED_DATA or place ../shared beside the repo)")
    with gzip.open(src, "rt") as fh:
        lines = fh.read().splitlines()
    snap_at = next(i for i, ln in enumerate(lines) if "lastUpdateId" in ln)
    snap_ts, snap_payload = lines[snap_at].split(" ", 1)
    snapshot = json.loads(snap_payload)
    snap_id = snapshot["lastUpdateId"]
    depth = []
    for ln in lines:
        if "@depth" not in ln[:80]:
            continue
        ts, payload = ln.split(" ", 1)
        d = json.loads(payload)["data"]
        if d["u"] >= snap_id:
            depth.append((int(ts), d))
    per_copy = sum(len(d["b"]) + len(d["a"]) for _, d in depth)
    copies = max(1, -(-min_deltas // per_copy))
    out = WORK / f"usdm_resynced_{copies}x.gz"
    if out.exists():
        return out, copies
    WORK.mkdir(parents=True, exist_ok=True)
    id_span = depth[-1][1]["u"] - depth[0][1]["pu"]
    t_span = depth[-1][0] - depth[0][0] + 1_000_000
    e_span = depth[-1][1]["E"] - depth[0][1]["E"] + 1
    with gzip.open(out, "wt", compresslevel=1) as fh:
        fh.write("\n".join(lines) + "\n")
        for k in range(1, copies):
            snap = {**snapshot, "lastUpdateId": snap_id + k * id_span, "E": snapshot["E"] + k * e_span,
                    "T": snapshot["T"] + k * e_span}
            fh.write(f"{int(snap_ts) + k * t_span} " + json.dumps(snap, separators=(",", ":")) + "\n")
            for ts, d in depth:
                e = {**d, "U": d["U"] + k * id_span, "u": d["u"] + k * id_span, "pu": d["pu"] + k * id_span,
                     "E": d["E"] + k * e_span, "T": d["T"] + k * e_span}
                fh.write(f"{ts + k * t_span} " + json.dumps({"stream": "btcusdt@depth@0ms", "data": e},
                                                             separators=(",", ":")) + "\n")
    return out, copies


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


HWM = 'int([ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]) / 1024'


def ours(path: Path, workdir: Path) -> dict:
    shutil.rmtree(workdir, ignore_errors=True)
    return run(f"""
import contextlib, io, json
from hydra import compose, initialize_config_dir
from l2exp.config import CONF_DIR
from l2exp.modes.ingest import run_ingest
import l2exp.data.incremental.binance  # imports outside the timing, as for hftbacktest's
with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
    cfg = compose("config", overrides=["mode=ingest", "mode.progress=false", "data=binance_usdm_btcusdt",
                  "data.path={path}", "workdir={workdir}"])
with contextlib.redirect_stdout(io.StringIO()):
    s = run_ingest(cfg)
print(json.dumps({{"seconds": s["seconds"], "deltas": s["book"]["deltas_in"], "gaps": s["book"]["sequence_gaps"],
                  "snapshots": s["accepted"], "rejected": s["rejected_by_reason"], "rss_mb": {HWM}}}))
""")


def theirs(path: Path) -> dict:
    return run(f"""
import json, time
from hftbacktest.data.utils import binancefutures
t0 = time.perf_counter()
ev = binancefutures.convert("{path}", combined_stream=True)
print(json.dumps({{"seconds": time.perf_counter() - t0, "events": int(len(ev)), "rss_mb": {HWM}}}))
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--deltas", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        raise SystemExit("the baseline needs hftbacktest: pip install -e .[bench]") from None
    small, _ = tiled_capture(args.deltas // 5)
    big, copies = tiled_capture(args.deltas)
    ours(small, WORK / "book_warm")  # compile once (cached on disk)
    a = min((ours(big, WORK / "book_store") for _ in range(args.repeat)), key=lambda r: r["seconds"])
    b = min((theirs(big) for _ in range(args.repeat)), key=lambda r: r["seconds"])
    s = ours(small, WORK / "book_store_small")
    dps_a, dps_b = a["deltas"] / a["seconds"], a["deltas"] / b["seconds"]
    print(f"file: {big.name} ({copies} copies of the USD-M capture, {a['deltas']:,} deltas, "
          f"{a['snapshots']:,} snapshots accepted, {a['gaps']} sequence gaps; rejected {a['rejected']})")
    print(f"l2exp ingest (parse + sequence + rebuild + validate + Parquet): {a['seconds']:.2f} s = "
          f"{dps_a / 1e6:.2f} M deltas/s, peak RSS {a['rss_mb']:.0f} MB")
    print(f"hftbacktest binancefutures.convert (parse only):             {b['seconds']:.2f} s = "
          f"{dps_b / 1e6:.2f} M deltas/s, peak RSS {b['rss_mb']:.0f} MB")
    print(f"ratio l2exp / hftbacktest: {dps_a / dps_b:.2f}x (target >= 1.0x)")
    print(f"memory: {s['rss_mb']:.0f} MB at {s['deltas']:,} deltas vs {a['rss_mb']:.0f} MB at {a['deltas']:,} "
          f"({a['rss_mb'] / s['rss_mb']:.2f}x for {a['deltas'] / s['deltas']:.1f}x the deltas)")


if __name__ == "__main__":
    main()
