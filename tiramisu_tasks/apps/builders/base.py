"""What every builder shares: the build context, the Builder interface, tool lookups and version parsing."""

import functools
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..detect import list_source_files
from ..toolrun import Step, capture

LANGUAGE_TITLES = {
    "c": "C",
    "cpp": "C++",
    "rust": "Rust",
    "go": "Go",
    "zig": "Zig",
    "wat": "WAT",
    "assemblyscript": "AssemblyScript",
    "emscripten": "Emscripten",
    "python": "Python",
    "wasm": "ready .wasm",
}


@dataclass
class BuildContext:
    src: Path  # working copy of the project (a scratch dir, safe to write into)
    entry: Optional[str]  # main file relative to src, or None (project build file drives)
    single_file: bool
    out: Path  # the .wasm to produce
    scratch: Path  # persistent per-project dir for incremental state (target/, zig cache)
    run: Callable[[Step], str]
    progress: Callable[[str], None] = lambda msg: None
    cache_root: Optional[Path] = None  # artifact cache (None: the user's cache dir)


def version_tuple(text, parts=2):
    """First dotted version in text as a tuple of ints, or None (pure)."""
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return None
    return tuple(int(g or 0) for g in m.groups())[:parts]


def python_zig():
    """argv prefix that runs the `ziglang` PyPI package's zig."""
    return [sys.executable, "-m", "ziglang"]


def sources_with(root, suffixes):
    return [rel for rel in list_source_files(root) if rel.lower().endswith(suffixes)]


def include_flags(root):
    flags = ["-I", str(root)]
    if (Path(root) / "include").is_dir():
        flags += ["-I", str(Path(root) / "include")]
    return flags


@functools.lru_cache(maxsize=None)
def which(name):
    return shutil.which(name)


@functools.lru_cache(maxsize=None)
def probe_text(argv):
    return capture(list(argv))


def _short(path):
    home = str(Path.home())
    return "~" + path[len(home) :] if path and path.startswith(home + "/") else path


class Builder:
    language = ""
    toolchain = ""

    def problem(self) -> Optional[str]:
        raise NotImplementedError

    def identity(self) -> str:
        raise NotImplementedError

    def build(self, ctx: BuildContext) -> None:
        raise NotImplementedError

    @property
    def title(self):
        return f"{LANGUAGE_TITLES.get(self.language, self.language)} ({self.toolchain})"
