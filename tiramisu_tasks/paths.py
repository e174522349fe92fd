"""Local paths: the user's Tiramisu directory and cache, all overridable.

Functions, not constants: the environment is read when asked (tests point these
at temporary directories with the variables below), never at import time.

    TIRAMISU_HOME    user dir (sandbox keys, user-level inventory)
                     default $XDG_CONFIG_HOME/tiramisu or ~/.config/tiramisu
    TIRAMISU_CACHE   build/download cache
                     default $XDG_CACHE_HOME/tiramisu or ~/.cache/tiramisu
"""

import os
from pathlib import Path


def _xdg(var, fallback):
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def user_dir():
    value = os.environ.get("TIRAMISU_HOME")
    return Path(value).expanduser() if value else _xdg("XDG_CONFIG_HOME", ".config") / "tiramisu"


def cache_dir():
    value = os.environ.get("TIRAMISU_CACHE")
    return Path(value).expanduser() if value else _xdg("XDG_CACHE_HOME", ".cache") / "tiramisu"


def repo_root():
    """The source checkout (cserver/, nginx/, wasm_examples/ live here)."""
    return Path(__file__).resolve().parent.parent


# Directories the code reads at run time. A checkout has them at its top level;
# an installed wheel has a copy in tiramisu_tasks/_data/ (made by setup.py).
DATA_DIRS = ("cserver", "wasm_examples")


def packaged_data_dir():
    return Path(__file__).resolve().parent / "_data"


def data_dir(name):
    """cserver/ or wasm_examples/: the checkout's first, then the copy packaged in the wheel.

    The checkout wins so that an editable install (and every test) sees the files a
    developer is editing. If neither exists the packaged path is returned and the
    caller's "not found" error names it.
    """
    if name not in DATA_DIRS:
        raise ValueError(f"unknown data directory {name!r}")
    checkout = repo_root() / name
    if (repo_root() / "setup.cfg").is_file() and checkout.is_dir():
        return checkout
    return packaged_data_dir() / name


def examples_dir():
    return data_dir("wasm_examples")


def ensure_dir(path, mode=0o700):
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    return path
