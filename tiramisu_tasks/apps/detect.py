"""Which language is this source? A ready .wasm, one source file, or a project dir.

The classification is pure (:func:`classify_file`, :func:`classify_dir` take
names and a way to read a file's head); :func:`detect` only lists the directory
and hands over. Every answer carries the reasons, so ``build`` can say *why* it
picked cargo rather than leaving the user to guess.

A directory can match several languages (a Rust crate with a C helper file);
the order of :data:`DIR_RULES` decides, and ``--lang`` overrides it.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import UsageError

# Every language a builder exists for, in the order `build --languages` lists them.
LANGUAGES = ("rust", "go", "c", "cpp", "zig", "wat", "assemblyscript", "emscripten", "python", "wasm")

# Never looked into when classifying or hashing a source tree: build outputs,
# dependency caches and VCS data (they are big and do not define the app).
IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "target",
        "node_modules",
        "zig-cache",
        ".zig-cache",
        "zig-out",
        "build",
        "dist",
        "__pycache__",
        ".venv",
        ".tiramisu",
    }
)

C_SUFFIXES = (".c",)
CPP_SUFFIXES = (".cc", ".cpp", ".cxx", ".c++")
FILE_LANG = {
    ".wasm": "wasm",
    ".wat": "wat",
    ".wast": "wat",
    ".zig": "zig",
    ".rs": "rust",
    ".go": "go",
    ".ts": "assemblyscript",
    **{s: "c" for s in C_SUFFIXES},
    **{s: "cpp" for s in CPP_SUFFIXES},
}
MANIFEST_FILES = ("Cargo.toml", "go.mod", "build.zig", "package.json", "asconfig.json")

_EMSCRIPTEN_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]emscripten(\.h|/)', re.M)


@dataclass(frozen=True)
class Detection:
    """What to build: ``root`` is the project dir (a single file's parent),
    ``entry`` the main file relative to it (None when the project's own build
    file drives the build: Cargo.toml, go.mod, build.zig, or all C files)."""

    language: str
    root: Path
    entry: Optional[str]
    single_file: bool
    reasons: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def why(self):
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Candidate:
    language: str
    entry: Optional[str]
    reason: str
    fallback: bool = False  # possible (emcc builds any C) but not suggested by the source


def uses_emscripten(text):
    """True when C/C++ source includes an Emscripten header."""
    return bool(_EMSCRIPTEN_INCLUDE.search(text or ""))


def classify_file(name, head=""):
    """Candidates for a single source file, best first (pure)."""
    suffix = Path(name).suffix.lower()
    lang = FILE_LANG.get(suffix)
    if lang is None:
        return []
    if lang in ("c", "cpp"):
        plain = Candidate(lang, name, f"{name} is {'C' if lang == 'c' else 'C++'} source")
        ems = Candidate("emscripten", name, f"{name} includes an Emscripten header")
        if uses_emscripten(head):
            return [ems, Candidate(lang, name, plain.reason, fallback=True)]
        return [plain, Candidate("emscripten", name, f"{name} is C/C++ source (emcc can build it)", fallback=True)]
    return [Candidate(lang, name, f"{name} has suffix {suffix}")]


def classify_dir(files: Sequence[str], read_head: Callable[[str], str]) -> List[Candidate]:
    """Candidates for a project directory, best first (pure).

    ``files`` are posix paths relative to the directory (ignored dirs already
    left out); ``read_head(rel)`` returns the start of a file as text.
    """
    names = set(files)
    top = {f for f in names if "/" not in f}
    found: List[Candidate] = []

    if "Cargo.toml" in top:
        found.append(Candidate("rust", None, "Cargo.toml (a cargo project)"))
    if "go.mod" in top:
        found.append(Candidate("go", None, "go.mod (a Go module)"))
    else:
        top_go = sorted(f for f in top if f.endswith(".go") and not f.endswith("_test.go"))
        if top_go:  # package main without a module file: built from these files
            found.append(Candidate("go", None, f"{len(top_go)} Go source file(s), no go.mod"))

    zig_files = sorted(f for f in names if f.endswith(".zig") and f != "build.zig")
    if "build.zig" in top:
        found.append(Candidate("zig", None, "build.zig (a zig build project)"))
    else:
        for main in ("main.zig", "src/main.zig"):
            if main in names:
                found.append(Candidate("zig", main, f"{main}"))
                break
        else:
            top_zig = [f for f in zig_files if "/" not in f]
            if len(top_zig) == 1:
                found.append(Candidate("zig", top_zig[0], f"{top_zig[0]} (the only .zig file)"))

    as_reason = None
    if "asconfig.json" in top:
        as_reason = "asconfig.json (an AssemblyScript project)"
    elif "package.json" in top and "assemblyscript" in (read_head("package.json") or ""):
        as_reason = "package.json depends on assemblyscript"
    elif "assembly/index.ts" in names:
        as_reason = "assembly/index.ts (AssemblyScript layout)"
    if as_reason:
        entry = "assembly/index.ts" if "assembly/index.ts" in names else None
        found.append(Candidate("assemblyscript", entry, as_reason))

    c_files = sorted(f for f in names if f.lower().endswith(C_SUFFIXES))
    cpp_files = sorted(f for f in names if f.lower().endswith(CPP_SUFFIXES))
    if c_files or cpp_files:
        lang = "cpp" if cpp_files else "c"
        count = len(c_files) + len(cpp_files)
        plain = Candidate(lang, None, f"{count} {'C++' if cpp_files else 'C'} source file(s)")
        ems_users = [f for f in c_files + cpp_files if uses_emscripten(read_head(f))]
        if ems_users:
            found.append(Candidate("emscripten", None, f"{ems_users[0]} includes an Emscripten header"))
            found.append(Candidate(plain.language, None, plain.reason, fallback=True))
        else:
            found.append(plain)
            found.append(Candidate("emscripten", None, "C/C++ sources (emcc can build them)", fallback=True))

    wat = sorted(f for f in top if f.endswith((".wat", ".wast")))
    if len(wat) == 1:
        found.append(Candidate("wat", wat[0], f"{wat[0]} (the only .wat file)"))
    elif "main.wat" in wat:
        found.append(Candidate("wat", "main.wat", "main.wat"))

    if "app.py" in top:  # a Python CGI app, made a WASI 0.2 component by componentize-py
        found.append(Candidate("python", "app.py", "app.py (a Python app)"))

    wasm = sorted(f for f in top if f.endswith(".wasm"))
    if len(wasm) == 1:
        found.append(Candidate("wasm", wasm[0], f"{wasm[0]} (a ready module, the only .wasm file)"))
    return found


def choose(candidates, where, language=None):
    """Pick the candidate for ``language`` (or the best one); one-line errors otherwise."""
    if language is not None:
        if language not in LANGUAGES:
            raise UsageError(f"unknown language {language!r} (known: {', '.join(LANGUAGES)})")
        for cand in candidates:
            if cand.language == language:
                return cand, [cand.reason, f"--lang {language}"]
        seen = ", ".join(sorted({c.language for c in candidates})) or "nothing buildable"
        raise UsageError(f"--lang {language}: no {language} source in {where} (found: {seen})")
    if not candidates:
        raise UsageError(
            f"cannot tell the language of {where}: expected Cargo.toml, go.mod, build.zig or "
            f"*.zig, an AssemblyScript project, *.c/*.cpp, app.py, one *.wat or one *.wasm"
        )
    best = candidates[0]
    reasons = [best.reason]
    others = sorted({c.language for c in candidates[1:] if not c.fallback} - {best.language})
    if others:
        reasons.append(f"also looks like {', '.join(others)} (use --lang to choose)")
    return best, reasons


def list_source_files(root):
    """Relative posix paths of the files under root, skipping IGNORED_DIRS and dotfiles' dirs."""
    root = Path(root)
    out = []
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(d.iterdir())
        except OSError as exc:
            raise UsageError(f"cannot read {d}: {exc.strerror or exc}") from exc
        for p in entries:
            if p.is_dir() and not p.is_symlink():
                if p.name in IGNORED_DIRS or p.name.startswith("."):
                    continue
                stack.append(p)
            elif p.is_file():
                out.append(p.relative_to(root).as_posix())
    return sorted(out)


def _head(path, limit=65536):
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def detect(source, language=None):
    """Detection for a path the user gave: a file or a project directory."""
    path = Path(source).expanduser()
    if not path.exists():
        raise UsageError(f"{source}: no such file or directory")
    if path.is_file():
        if path.name in MANIFEST_FILES:  # `build app/Cargo.toml` means the project
            return detect(path.parent, language)
        cands = classify_file(path.name, _head(path) if path.suffix.lower() in FILE_LANG else "")
        if not cands:
            raise UsageError(
                f"{source}: unknown kind of source (expected .wasm, .wat, .c, .cpp, .zig, .rs, "
                f".go, .ts, or a project directory)"
            )
        cand, reasons = choose(cands, source, language)
        return Detection(cand.language, path.parent.resolve(), path.name, True, tuple(reasons))
    root = path.resolve()
    files = list_source_files(root)
    cands = classify_dir(files, lambda rel: _head(root / rel))
    cand, reasons = choose(cands, source, language)
    return Detection(cand.language, root, cand.entry, False, tuple(reasons))
