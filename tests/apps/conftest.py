"""Shared setup for the app tests: one artifact cache per test session.

The cache lives in a session temp dir (TIRAMISU_CACHE points there for the
session, so the CLI subprocesses and the AssemblyScript npm install use it too):
tests never read or fill the user's own ~/.cache/tiramisu.
"""

import os
from pathlib import Path

import pytest

from tiramisu_tasks.apps import builders
from tiramisu_tasks.paths import repo_root

EXAMPLES = repo_root() / "wasm_examples"


@pytest.fixture(scope="session")
def apps_cache(tmp_path_factory):
    path = tmp_path_factory.mktemp("apps-cache")
    old = os.environ.get("TIRAMISU_CACHE")
    os.environ["TIRAMISU_CACHE"] = str(path)
    builders.reset_probes()
    yield Path(path)
    if old is None:
        os.environ.pop("TIRAMISU_CACHE", None)
    else:
        os.environ["TIRAMISU_CACHE"] = old


def example_dirs():
    # apps described by tiramisu.toml / modules.toml have their own tests (tests/apps/test_app_examples.py)
    apps = ("tiramisu.toml", "modules.toml")
    return sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and not any((p / f).exists() for f in apps))
