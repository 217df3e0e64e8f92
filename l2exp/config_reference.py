"""The config reference (``docs/config.md``), generated from ``conf/`` itself: every group, every option,
every key with its default and the comment that explains it.

Run ``python -m l2exp.config_reference > docs/config.md`` after editing a YAML file;
``tests/test_config_reference.py`` fails while the committed page differs from what this prints, so the
reference cannot go stale. The YAML comments are the documentation: a key without one shows an empty
"meaning" cell, which is the nudge to write it.

Written here rather than with a YAML library: PyYAML and OmegaConf drop comments, and the page needs the
comment beside each key (and the block above it) as written.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from l2exp.config import CONF_DIR

_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w\-]*):(?:\s+(?P<rest>.*))?$")
GROUP_ORDER = ["data", "store", "validation", "features", "labels", "split", "model", "hparams_search",
               "execution", "execution/order_type", "execution/queue_model", "risk", "strategy", "feed", "stress",
               "compute", "tracking", "mode", "experiment"]


def _split_comment(rest: str) -> tuple[str, str]:
    """``value  # comment`` -> (value, comment); a ``#`` inside quotes belongs to the value."""
    quote = None
    for i, ch in enumerate(rest):
        if ch in "'\"":
            quote = None if quote == ch else (quote or ch)
        elif ch == "#" and quote is None and (i == 0 or rest[i - 1] in " \t"):
            return rest[:i].strip(), rest[i + 1:].strip()
    return rest.strip(), ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def describe_file(path: Path) -> tuple[str, list[tuple[str, str, str]]]:
    """(the file's header comment, [(dotted key, default, meaning)])."""
    header: list[str] = []
    rows: list[tuple[str, str, str]] = []
    above: list[str] = []
    stack: list[tuple[int, str]] = []
    started = False
    in_defaults = False
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("# @package"):
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            (above if started else header).append(text)
            continue
        if not stripped:
            if started:
                above = []
            continue
        m = _KEY.match(line)
        if m is None:  # a list item or a continuation line
            continue
        started = True
        indent = len(m.group("indent"))
        key = m.group("key")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if indent == 0:
            in_defaults = key == "defaults"
        if in_defaults or (indent == 0 and key == "hydra"):
            above = []
            stack.append((indent, key))
            continue
        dotted = ".".join([k for _, k in stack] + [key])
        value, comment = _split_comment(m.group("rest") or "")
        meaning = " ".join([*above, comment]).strip()
        if value or meaning:
            rows.append((dotted, value, meaning))
        above = []
        stack.append((indent, key))
    return " ".join(header).strip(), rows


def render(conf_dir: Path = CONF_DIR) -> str:
    groups: dict[str, list[Path]] = {}
    for f in sorted(conf_dir.rglob("*.yaml")):
        g = f.parent.relative_to(conf_dir).as_posix()
        if g != "." and not g.startswith("hydra"):
            groups.setdefault(g, []).append(f)
    order = [g for g in GROUP_ORDER if g in groups] + sorted(set(groups) - set(GROUP_ORDER))
    out = ["# Config reference", "",
           "Generated from `conf/` by `python -m l2exp.config_reference > docs/config.md` -- do not edit by hand; "
           "`tests/test_config_reference.py` fails when this page and the YAML files differ. Choose an option with "
           "`group=option` (e.g. `model=catboost`), override any key with `group.key=value` "
           "(e.g. `model.n_estimators=200`); your own options go in `$L2EXP_CONFIG_DIR/<group>/` (docs/data.md).",
           "", "Groups: " + ", ".join(f"[`{g}`](#{g.replace('/', '')})" for g in order), ""]
    head, rows = describe_file(conf_dir / "config.yaml")
    out += ["## Top level (`conf/config.yaml`)", "", head, "", *_table(rows), ""]
    for g in order:
        out += [f"## {g}", ""]
        for f in groups[g]:
            head, rows = describe_file(f)
            out += [f"### `{g}={f.stem}`", ""]
            if head:
                out += [head, ""]
            if rows:
                out += [*_table(rows), ""]
    return "\n".join(out).rstrip() + "\n"


def _table(rows: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [f"| `{k}` | {('`' + _cell(v) + '`') if v else ''} | {_cell(m)} |" for k, v, m in rows]
    return lines


if __name__ == "__main__":
    sys.stdout.write(render())
