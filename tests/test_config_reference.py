"""The config reference (docs/config.md) is generated from conf/ and never goes stale."""

from __future__ import annotations

from l2exp.config import CONF_DIR, PROJECT_ROOT
from l2exp.config_reference import render


def test_the_committed_reference_is_what_the_yaml_files_say():
    """Edit a YAML file without regenerating the page and this fails, naming the command."""
    page = (PROJECT_ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert page == render(), "docs/config.md is stale: run `python -m l2exp.config_reference > docs/config.md`"


def test_every_group_and_option_is_on_the_page():
    page = render()
    for f in CONF_DIR.rglob("*.yaml"):
        group = f.parent.relative_to(CONF_DIR).as_posix()
        if group != "." and not group.startswith("hydra"):
            assert f"### `{group}={f.stem}`" in page, f"{group}={f.stem}"
    assert "| `sizing.unit_notional` | `1000` |" in page  # a key, its default and its comment
