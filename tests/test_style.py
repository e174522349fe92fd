"""The tree keeps its declared style: `ruff check` and `ruff format --check` are clean, and the C
sources match cserver/.clang-format."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _c_sources():
    files = [
        *sorted((REPO / "cserver").glob("*.[ch]")),
        *sorted((REPO / "cserver" / "fuzz").glob("*.c")),
        *sorted((REPO / "tests" / "cserver" / "c").glob("*.c")),
    ]
    return files


def _missing(what):
    """Skip where a tool is missing, but never in CI (the bootstrap installs both)."""
    if os.environ.get("CI") or os.environ.get("TIRAMISU_REQUIRE_TESTHOSTS"):
        pytest.fail(f"{what} is not installed: scripts/bootstrap test installs it")
    pytest.skip(f"{what} is not installed")


def _ruff():
    candidate = Path(sys.executable).parent / "ruff"
    found = str(candidate) if candidate.exists() else shutil.which("ruff")
    if not found:
        _missing("ruff (pip install -e '.[test]')")
    return found


def test_ruff_check_is_clean():
    proc = subprocess.run(
        [_ruff(), "check", "--no-cache", "--output-format", "concise", "."],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]


def test_python_is_formatted():
    proc = subprocess.run(
        [_ruff(), "format", "--check", "--no-cache", "."], cwd=str(REPO), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, "run ruff format on these files:\n" + proc.stdout[-4000:] + proc.stderr[-2000:]


def test_c_sources_match_clang_format():
    tool = shutil.which("clang-format") or shutil.which("clang-format-14")
    if not tool:
        _missing("clang-format (apt-get install clang-format)")
    files = _c_sources()
    assert len(files) > 10, files
    proc = subprocess.run(
        [tool, "--dry-run", "--Werror", *map(str, files)],
        cwd=str(REPO / "cserver"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, "run clang-format -i on these files:\n" + proc.stderr[-4000:]
