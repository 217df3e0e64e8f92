"""OmegaConf resolvers shared by the CLI and the tests.

``${l2exp_root:}`` is the repository root and ``${shared_data:}`` the folder of real recordings
(``L2EXP_SHARED_DATA`` or ``<root>/../shared/data``), so data configs can point at recordings
without copying them and without depending on the directory the user runs from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# the config groups ship inside the package (a wheel installed anywhere carries them); conf/ at the
# repository's top is a link to this folder, where the docs and commands name it
CONF_DIR = Path(__file__).resolve().parent / "conf"


def shared_data_dir() -> Path:
    return Path(os.environ.get("L2EXP_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def user_config_dir() -> Path | None:
    """Your own config groups outside the package: the folder ``L2EXP_CONFIG_DIR`` names, else ``./conf`` of
    the working directory (when that is not l2exp's own). ``conf/config.yaml`` puts the same folder on
    Hydra's search path (``hydra.searchpath``), after l2exp's ``conf/``: its ``data/my_venue.yaml`` is
    ``data=my_venue``, and a file named like a shipped one does not replace it. None when the folder does
    not exist. Used where l2exp lists or fingerprints config files (``--help``, the composition cache)."""
    d = Path(os.environ.get("L2EXP_CONFIG_DIR") or "conf").absolute()
    if not d.is_dir() or d.resolve() == CONF_DIR.resolve():
        return None
    return d


def config_dirs() -> list[Path]:
    """l2exp's ``conf/`` and the user's (:func:`user_config_dir`), in Hydra's search order."""
    user = user_config_dir()
    return [CONF_DIR, *([user] if user else [])]


def group_options(dirs: list[Path]) -> dict[str, set[str]]:
    """Every config group of ``dirs`` (``data``, ``execution/order_type`` ...) and its options (file stems);
    Hydra's own groups (``hydra/...``) left out. Read by ``--help`` and the command-line check."""
    groups: dict[str, set[str]] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for f in d.rglob("*.yaml"):
            group = f.parent.relative_to(d).as_posix()
            if group != "." and group.split("/")[0] != "hydra":
                groups.setdefault(group, set()).add(f.stem)
    return groups


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("l2exp_root"):
        OmegaConf.register_new_resolver("l2exp_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("abspath"):
        OmegaConf.register_new_resolver("abspath", lambda p: str(Path(str(p)).resolve()))
    if not OmegaConf.has_resolver("shared_data"):
        OmegaConf.register_new_resolver("shared_data", lambda: str(shared_data_dir()))


def instantiate(node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` that lets a :class:`~l2exp.errors.UserError` raised by the target
    through unchanged (Hydra wraps every exception in ``InstantiationException``), so a bad value in
    a config group reaches the user as one clear message from any caller, not only the CLI."""
    import hydra

    from l2exp.errors import UserError

    try:
        return hydra.utils.instantiate(node, **kwargs)
    except hydra.errors.InstantiationException as err:
        cause: BaseException | None = err.__cause__
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        raise
