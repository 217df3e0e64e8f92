"""Strict configs: every command-line value is checked against the schema of its group before a run.

The schema of a group is its YAML files (one source of truth, no second copy to drift): the
composed default for the chosen options gives every valid key and its type; :data:`RANGES` adds the
value ranges a YAML cannot say. Checked for each override on the command line:

* a key that the composition does not have (``+risk.max_pos=3``) -> unknown key, naming the closest
  valid key (keys under an open mapping, :data:`OPEN`, may be added: they pass through to a library);
* a value whose type differs from the default's (``levels=abc``, ``risk.enabled=3``) -> the type wanted;
* a value outside its range (``levels=0``, ``mode.sample_ms=-5``, a fraction outside (0, 1)).

Every failure is a :class:`~l2exp.errors.UserError` (one message, exit 2). The typed builders
(``backtest.params.from_config``) check the engine's groups once more when they are built.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from l2exp.errors import UserError

# keys under these mappings pass through to a library (ccxt options, instrument tables, fees)
OPEN = ("feed.client.options", "data.instruments", "data.tick_size", "data.fees", "data.trades", "data.mapping",
        "data.reader", "execution.tick_size", "execution.lot_size", "hydra.", "model.extra")

# key -> (low, high, low inclusive, high inclusive, whole number)
RANGES: dict[str, tuple[float | None, float | None, bool, bool, bool]] = {
    "data.levels": (1, None, True, False, True),
    "levels": (1, None, True, False, True),
    "mode.sample_ms": (0, None, True, False, False),
    "mode.stale_ms": (0, None, False, False, False),
    "mode.ring_capacity": (1, None, True, False, True),
    "mode.flush_every": (1, None, True, False, True),
    "mode.log_every": (1, None, True, False, True),
    "mode.max_snapshots": (0, None, True, False, True),
    "mode.duration_s": (0, None, True, False, False),
    "mode.rotate_rows": (1, None, True, False, True),
    "mode.rotate_s": (0, None, False, False, False),
    "validation.chunk_rows": (1, None, True, False, True),
    "labels.horizon": (0, None, False, False, False),
    "split.train": (0, 1, False, False, False),
    "split.valid": (0, 1, True, False, False),
    "split.test": (0, 1, False, False, False),
    "split.valid_fraction": (0, 1, False, False, False),
    "split.n_folds": (1, None, True, False, True),
    "split.train_blocks": (1, None, True, False, True),
    "split.embargo_ms": (0, None, True, False, False),
    "model.n_estimators": (1, None, True, False, True),
    "model.learning_rate": (0, None, False, False, False),
    "model.subsample": (0, 1, False, True, False),
    "model.colsample_bytree": (0, 1, False, True, False),
    "model.threads": (1, None, True, False, True),
    # the libraries' own bounds, checked before the data work (LightGBM raised on num_leaves=-5 after 25 s)
    "model.num_leaves": (2, 131072, True, True, True),
    "model.min_child_samples": (1, None, True, False, True),
    "model.reg_lambda": (0, None, True, False, False),
    "model.early_stopping_rounds": (1, None, True, False, True),
    "model.iterations": (1, None, True, False, True),
    "model.depth": (1, 16, True, True, True),
    "model.l2_leaf_reg": (0, None, True, False, False),
    "feed.speed": (0, None, True, False, False),
    "feed.client.timeout_ms": (1, None, True, False, False),
    "feed.client.max_failures": (1, None, True, False, True),
    "feed.client.silence_s": (0, None, False, False, False),
    "store.lock_wait_s": (0, None, True, False, False),
    "compute.workers": (0, None, True, False, True),
    "compute.num_cpus": (0, None, False, False, False),
    "mode.rows.max_rows": (1, None, True, False, True),
    "execution.latency_ms": (0, None, True, False, False),
    "execution.cancel_latency_ms": (0, None, True, False, False),
    "execution.queue_model.front_prob": (0, 1, True, True, False),
    "strategy.decision_ms": (0, None, True, False, False),
    "strategy.base_size": (0, None, False, False, False),
}

_MISSING = object()


def _select(cfg: DictConfig, key: str) -> Any:
    try:
        return OmegaConf.select(cfg, key, default=_MISSING, throw_on_missing=False)
    except Exception:  # noqa: BLE001 - an interpolation that cannot resolve in the base: no type to compare
        return None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _siblings(base: DictConfig, key: str) -> list[str]:
    parent, _, _ = key.rpartition(".")
    node = _select(base, parent) if parent else base
    if not isinstance(node, DictConfig):
        return []
    return [f"{parent}.{k}" if parent else str(k) for k in node]


def _all_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, DictConfig):
        return [prefix] if prefix else []
    out = []
    for k in node:
        out += _all_keys(node._get_node(k), f"{prefix}.{k}" if prefix else str(k))  # noqa: SLF001
    return out


def _check_type(key: str, default: Any, value: Any) -> None:
    if default is None or default is _MISSING or isinstance(default, DictConfig | ListConfig):
        return
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}", where=key)
    elif _is_number(default) and not _is_number(value):
        raise UserError(f"{key} must be a number, got {value!r}", where=key, fix=f"e.g. {key}={default}")


def _check_range(key: str, value: Any) -> None:
    if key not in RANGES or not _is_number(value):
        return
    low, high, low_inc, high_inc, whole = RANGES[key]
    bad = (low is not None and (value < low or (value == low and not low_inc))) or \
          (high is not None and (value > high or (value == high and not high_inc)))
    if whole and float(value) != int(value):
        bad = True
    if bad:
        if low is not None and high is not None:
            span = f"{'[' if low_inc else '('}{low:g}, {high:g}{']' if high_inc else ')'}"
        elif low is not None:
            span = f"{'>=' if low_inc else '>'} {low:g}"
        else:
            span = f"{'<=' if high_inc else '<'} {high:g}"
        raise UserError(f"{key} must be {'a whole number ' if whole else ''}{span}, got {value!r}", where=key)


def compose_cached(compose: Callable[[list[str]], DictConfig], directory: Path) -> Callable[[list[str]], DictConfig]:
    """``compose``, remembered on disk: the base composition costs ~0.4 s of every command's start-up,
    and its result depends only on the group choices and the files of ``conf/``, whose contents are
    the key (an edited YAML is a new key). Any failure to read or write the cache just composes."""
    from l2exp.config import config_dirs

    def cached(overrides: list[str]) -> DictConfig:
        h = hashlib.blake2b(json.dumps(sorted(overrides)).encode(), digest_size=16)
        for d in config_dirs():  # the user's own config folder too: an edit there is a new key
            h.update(str(d).encode())
            for f in sorted(d.rglob("*.yaml")):
                h.update(f.relative_to(d).as_posix().encode())
                h.update(f.read_bytes())
        path = directory / f"base-{h.hexdigest()}.yaml"
        try:
            return OmegaConf.load(path)
        except (OSError, ValueError):
            pass
        cfg = compose(overrides)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            OmegaConf.save(cfg, tmp, resolve=False)
            os.replace(tmp, path)
        except OSError:
            pass
        return cfg

    return cached


def check_config(cfg: DictConfig, overrides: list[str], choices: dict[str, Any],
                 compose: Callable[[list[str]], DictConfig]) -> None:
    """Check the command-line ``overrides`` of the composed ``cfg`` (see the module docstring).

    ``choices``: the group -> option chosen (Hydra's runtime choices); ``compose``: composes the
    config for a list of group choices (the base the values are compared with)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups = {g for g in choices if not g.startswith("hydra")}
    parsed = OverridesParser.create().parse_overrides(overrides)
    values = [ov for ov in parsed if not (ov.key_or_group in groups or ov.key_or_group.startswith("hydra")
                                          or ov.is_delete())]
    # the base composition costs ~0.4 s: only when some value (not a group choice) is to be checked
    base = compose([f"{g}={o}" for g, o in choices.items() if g in groups and o is not None]) if values else None
    for ov in values:
        key = ov.key_or_group
        if any(key == p.rstrip(".") or key.startswith(p if p.endswith(".") else p + ".") for p in OPEN):
            continue
        default = _select(base, key)
        value = _select(cfg, key)
        if default is _MISSING:
            known = _siblings(base, key)
            name = key.rpartition(".")[2]
            here = {k.rpartition(".")[2]: k for k in known}
            hit = difflib.get_close_matches(name, list(here), n=1, cutoff=0.6)
            close = [here[hit[0]]] if hit else []
            if not close and "." in key:  # the right name in another section of the same group
                top = key.split(".")[0]
                leaves = {k.rpartition(".")[2]: f"{top}.{k}" for k in _all_keys(_select(base, top))}
                hit = difflib.get_close_matches(name, list(leaves), n=1, cutoff=0.6)
                close = [leaves[hit[0]]] if hit else []
            parent = key.rpartition(".")[0] or "the top level"
            raise UserError(f"unknown key {key!r}: {parent} has no {name!r}", where=key,
                            fix=(f"Did you mean {close[0]}? " if close else "")
                            + (f"Keys there: {', '.join(k.rpartition('.')[2] for k in known)}" if known else ""))
        _check_type(key, default, value)
    for key in RANGES:
        value = _select(cfg, key)
        if value is not _MISSING:
            _check_range(key, value)


def check_choices(args: list[str], dirs: list[Path], config_file: Path) -> UserError | None:
    """A mistyped group option (``model=lightgbmm``, ``mode=trian``) or group name (``modle=lightgbm``) on the
    command line, as one ``error / where / fix`` message -- before Hydra composes anything, which would print
    its config search path and the ``HYDRA_FULL_ERROR`` line and exit 1. ``dirs``: the config folders in
    search order (l2exp's ``conf/`` and the user's). Sweep values (``model=a,b``) are checked one by one;
    sweep functions (``choice(...)``), ``null`` and Hydra's own groups are left to Hydra."""
    import re

    dirs = list(dirs)
    for arg in args:  # folders given to Hydra on the command line hold options too
        if arg.lstrip("+").startswith("hydra.searchpath="):
            dirs += [Path(p) for p in re.findall(r"file://([^,\]\s'\"]+)", arg)]
    from l2exp.config import group_options

    groups = group_options(dirs)
    top = [k for k in OmegaConf.load(config_file) if k not in ("defaults", "hydra")]
    for arg in args:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        bare = key.lstrip("~+")
        if bare.startswith("hydra") or "." in bare or key.startswith(("+", "~")):
            continue
        if bare not in groups:
            if bare in top:
                continue
            close = difflib.get_close_matches(bare, [*groups, *top], n=2)
            return UserError(f"no config group or key {bare!r}", where=arg,
                             fix=(f"Did you mean {' or '.join(close)}? " if close else "")
                                 + f"(groups: {', '.join(sorted(groups))}; `l2exp --help` lists their options)")
        if "(" in value:
            continue
        for v in value.split(","):
            v = v.strip()
            if v in ("", "null") or v in groups[bare]:
                continue
            close = difflib.get_close_matches(v, sorted(groups[bare]), n=1)
            return UserError(f"no option {v!r} in group {bare}", where=f"{bare}={v}",
                             fix=(f"Did you mean {close[0]}? " if close else "")
                                 + f"(options: {', '.join(sorted(groups[bare]))}; your own go in "
                                   f"$L2EXP_CONFIG_DIR/{bare}/, docs/data.md)")
    return None
