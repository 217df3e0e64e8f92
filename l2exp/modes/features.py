"""``mode=features``: the partitioned feature table of ``data=`` x ``features=`` computed on
``compute=`` (or found in the cache), reported from the partitions' own counts -- nothing is loaded
back, so the run's memory is one partition per worker."""

from __future__ import annotations

import time
from typing import Any

from omegaconf import DictConfig

from l2exp.modes.build import feature_cache, feature_set, store_with_data
from l2exp.summary import console, print_table, print_where, write_summary


def run_features(cfg: DictConfig) -> dict[str, Any]:
    t0 = time.perf_counter()
    fs = feature_set(cfg)
    cache = feature_cache(cfg)
    pt, digest = cache.partitioned(store_with_data(cfg), fs)
    seconds = time.perf_counter() - t0
    summary = {
        "mode": "features", "data": cache.data_name, "feature_set": fs.name,
        "n_features": len(fs.names), "rows_in": pt.rows, "rows_out": pt.ready_rows,
        "warmup_rows": pt.rows - pt.ready_rows, "feature_names": list(fs.names),
        "undefined_values_after_warmup": pt.undefined(),
        "cache": str(pt.directory), "cache_hit": pt.cache_hit, "seconds": round(seconds, 3),
        "rows_per_s": round(pt.rows / seconds) if seconds > 0 else None,
        "data_digest": digest, "table_digest": pt.digest(), "partitions": len(pt.parts),
        "compute": cache.compute.describe(), "workers": sorted({p.worker for p in pt.parts}),
        "peak_rss_mb_per_worker": max((p.peak_rss_mb for p in pt.parts), default=0.0),
    }
    assert summary["rows_in"] == summary["rows_out"] + summary["warmup_rows"]
    undefined = summary["undefined_values_after_warmup"]
    print_table("features: rows_in = rows_out + warmup_rows", [
        ("data / set", f"{summary['data']} / {summary['feature_set']}"), ("features", summary["n_features"]),
        ("rows_in", f"{summary['rows_in']:,}"), ("rows_out (history complete)", f"{summary['rows_out']:,}"),
        ("warm-up rows (marked, kept out of training)", f"{summary['warmup_rows']:,}"),
        ("undefined values after warm-up", ", ".join(f"{k}: {v}" for k, v in undefined.items()) or "none"),
        ("partitions (symbol, day)", f"{summary['partitions']} on {summary['compute']}"
         + ("" if pt.cache_hit else f", {len(summary['workers'])} worker(s), peak "
            f"{summary['peak_rss_mb_per_worker']:,.0f} MB each")),
        ("cache", f"{'hit' if pt.cache_hit else 'written'}: {pt.directory}"),
        ("seconds", f"{summary['seconds']} ({summary['rows_per_s'] or 0:,} rows/s)"),
    ])
    if summary["rows_out"] == 0:
        console.print("[bold red]warning: no row has complete history: shorten the windows or use more data[/]")
    print_where([("feature table", pt.directory)])
    write_summary(summary)
    return summary
