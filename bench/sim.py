"""Live-loop latency and memory: tick -> decision p50/p99 (full feature set, LightGBM champion) and
peak RSS while 1 M synthetic snapshots are replayed through mode=sim (every snapshot decided).

    .venv/bin/python bench/sim.py [--snapshots 1000000]

RSS is read at 10 %, 50 % and 100 % of the replay (flat = bounded buffers work).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from l2exp.config import CONF_DIR  # noqa: E402


def cfg(overrides: list[str]):  # noqa: ANN201
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--snapshots", type=int, default=1_000_000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="l2exp-bench-sim-")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work}/mlruns/mlflow.db"
    common = [f"workdir={work}", f"data.reader.n_snapshots={args.snapshots}", "features=full", "model=lightgbm",
              "model.n_estimators=200"]
    from l2exp.modes.promote import run_promote
    from l2exp.modes.sim import run_sim
    from l2exp.modes.train import run_train

    with contextlib.redirect_stdout(io.StringIO()):
        run_train(cfg(["mode=train", *common]))
        run_promote(cfg(["mode=promote", *common, "mode.require_beat_baseline=false"]))
    proc = psutil.Process()
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def watch() -> None:
        t0 = time.perf_counter()
        while not done.is_set():
            samples.append((time.perf_counter() - t0, proc.memory_info().rss / 2**20))
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        s = run_sim(cfg(["mode=sim", *common, "mode.sample_ms=0", "hydra.run.dir=" + work]))
    done.set()
    wall = time.perf_counter() - t
    rss = [r for _, r in samples]
    n = len(rss)
    print(json.dumps({
        "snapshots": s["snapshots"], "decisions": s["decisions"], "features": 67, "model": "LightGBM, 200 trees",
        "latency_ms_p50": round(s["latency_ms_p50"], 4), "latency_ms_p99": round(s["latency_ms_p99"], 4),
        "decisions_per_s": round(s["decisions"] / wall), "rss_mb_at_10pct": round(rss[n // 10]) if n else None,
        "rss_mb_at_50pct": round(rss[n // 2]) if n else None, "rss_mb_at_end": round(rss[-1]) if n else None,
        "max_rss_mb": round(s["max_rss_mb"]), "cores": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
