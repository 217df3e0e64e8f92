"""One self-contained HTML page from Plotly figures and small tables: plotly.js is embedded once in
the head (no network: the MLflow UI previews the artifact in a sandboxed frame, and a report must open
on a laptop with no internet), every figure is a ``<div class="chart">`` with its own id, and each
section has an anchor in the page's table of contents."""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import cache

import pandas as pd
import plotly.graph_objects as go

_CSS = """body{font-family:system-ui,sans-serif;margin:16px 24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 6px;border-bottom:1px solid #ddd}
.sub{color:#555;font-size:13px;margin-bottom:10px}nav a{margin-right:14px;font-size:13px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:12px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.chart{margin:4px 0 12px}
.note{font-size:12px;color:#555;max-width:1100px}table.facts td{text-align:left}"""

Block = go.Figure | str


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def table_html(rows: pd.DataFrame | Sequence[dict], float_format: str = "{:.6g}") -> str:
    """A small table (metrics, comparisons); floats to 6 significant digits, NaN as an empty cell."""
    df = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    return df.to_html(index=False, na_rep="", border=0, classes="l2exp",
                      float_format=lambda v: float_format.format(v))


def facts_html(facts: Sequence[tuple[str, object]]) -> str:
    """Two-column key/value table for a run's headline facts."""
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    return f"<table class='facts'>{cells}</table>"


def page(title: str, sections: Sequence[tuple[str, Sequence[Block]]], subtitle: str = "") -> str:
    """``sections``: (heading, blocks) where a block is a Plotly figure or an HTML fragment."""
    body, toc, n = [], [], 0
    for k, (heading, blocks) in enumerate(sections):
        anchor = f"s{k}"
        toc.append(f"<a href='#{anchor}'>{html.escape(heading)}</a>")
        body.append(f"<h2 id='{anchor}'>{html.escape(heading)}</h2>")
        for b in blocks:
            if isinstance(b, go.Figure):
                n += 1
                body.append("<div class='chart'>" + b.to_html(
                    full_html=False, include_plotlyjs=False, div_id=f"chart{n}",
                    config={"displaylogo": False, "responsive": True, "scrollZoom": True}) + "</div>")
            else:
                body.append(b)
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
            f"<script type='text/javascript'>{_plotly_js()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1><div class='sub'>{html.escape(subtitle)}</div>"
            f"<nav>{''.join(toc)}</nav>{''.join(body)}</body></html>")
