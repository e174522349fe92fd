"""artifacts.list/clean --kind: known kinds only (a typo is exit 2, not an empty answer)."""

import subprocess
import sys

import pytest

from tiramisu_tasks import serverbuild
from tiramisu_tasks.apps import build
from tiramisu_tasks.artifacts import debsource, listing, nginx, unwind, wasmtime
from tiramisu_tasks.errors import UsageError


def test_every_builder_kind_is_known():
    for kind in (serverbuild.KIND, build.CACHE_KIND, nginx.KIND, wasmtime.KIND, unwind.KIND, debsource.SOURCE_KIND):
        assert listing.check_kind(kind) == kind
    # literal kinds used by aot.py and the npm tool builders
    assert listing.check_kind("aot") == "aot"
    assert listing.check_kind("npm-tools") == "npm-tools"
    assert listing.check_kind(None) is None


def test_unknown_kind_is_one_line_usage_error():
    with pytest.raises(UsageError) as err:
        listing.check_kind("bogus")
    assert "unknown artifact kind 'bogus'" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("task", ["artifacts.list", "artifacts.clean"])
def test_cli_refuses_unknown_kind(task, tmp_path):
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    run = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", task, "--kind", "bogus"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [
        "tiramisu: unknown artifact kind 'bogus': use one of " + ", ".join(listing.KINDS)
    ]
