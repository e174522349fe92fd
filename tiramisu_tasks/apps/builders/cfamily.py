"""C and C++ (clang with a WASI sysroot, zig cc), Zig (zig build / build-exe) and Emscripten builders."""

import functools
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import BuildError
from ...subproc import run_local
from ..detect import C_SUFFIXES, CPP_SUFFIXES
from ..toolrun import Step, first_error_line
from .base import Builder, include_flags, probe_text, python_zig, sources_with, version_tuple, which

DEBIAN_CLANG_MAJOR = 14  # bookworm's, for install hints when clang is absent


def clang_argv(clang, sources, out, root, cpp=False):
    argv = [clang, "--target=wasm32-wasi", "-O2", "-Wl,--strip-debug"]
    if cpp:
        argv.append("-fno-exceptions")
    return argv + include_flags(root) + ["-o", str(out)] + [str(s) for s in sources]


def zig_cc_argv(zig, sources, out, root, cpp=False):
    argv = list(zig) + ["c++" if cpp else "cc", "-target", "wasm32-wasi", "-O2", "-Wl,--strip-debug"]
    if cpp:
        argv.append("-fno-exceptions")
    return argv + include_flags(root) + ["-o", str(out)] + [str(s) for s in sources]


def emcc_argv(emcc, sources, out, root):
    # STANDALONE_WASM: WASI imports instead of the JavaScript glue's `env`.
    return [emcc, "-O2", "-sSTANDALONE_WASM"] + include_flags(root) + ["-o", str(out)] + [str(s) for s in sources]


def zig_exe_argv(zig, entry, out, cache_dir):
    return list(zig) + [
        "build-exe",
        "-target",
        "wasm32-wasi",
        "-O",
        "ReleaseSmall",
        "--cache-dir",
        str(cache_dir),
        f"-femit-bin={out}",
        str(entry),
    ]


def zig_build_argv(zig, prefix, cache_dir):
    return list(zig) + [
        "build",
        "-Dtarget=wasm32-wasi",
        "-Doptimize=ReleaseSmall",
        "--prefix",
        str(prefix),
        "--cache-dir",
        str(cache_dir),
    ]


@functools.lru_cache(maxsize=None)
def probe_clang(cpp):
    """(None, version) if clang links a WASI hello, else (reason, version)."""
    clang = which("clang++" if cpp else "clang")
    if not clang:
        return "not installed", None
    version = (probe_text((clang, "--version")) or "").splitlines()[:1]
    version = version[0] if version else "clang"
    with tempfile.TemporaryDirectory(prefix="tiramisu-probe-") as tmp:
        src = Path(tmp) / ("probe.cpp" if cpp else "probe.c")
        src.write_text(
            '#include <string>\nint main(){std::string s("x");return (int)s.size()-1;}\n'
            if cpp
            else '#include <stdio.h>\nint main(void){puts("x");return 0;}\n'
        )
        try:
            proc = run_local(clang_argv(clang, [src], Path(tmp) / "p.wasm", tmp, cpp), timeout=120, merge_stderr=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"probe compile failed to run ({exc})", version
        if proc.returncode != 0:
            detail = first_error_line(proc.stdout).replace(tmp + "/", "")
            return f"cannot build for wasm32-wasi ({detail})", version
    return None, version


def _c_sources(ctx, suffixes):
    if ctx.single_file:
        return [ctx.src / ctx.entry]
    srcs = sources_with(ctx.src, suffixes)
    if not srcs:
        raise BuildError("no C/C++ source files found")
    return [ctx.src / s for s in srcs]


class ClangBuilder(Builder):
    toolchain = "clang"

    def __init__(self, cpp=False):
        self.cpp = cpp
        self.language = "cpp" if cpp else "c"

    def _debs(self, version):
        major = version_tuple(version or "", 1)
        n = major[0] if major else DEBIAN_CLANG_MAJOR
        if self.cpp:
            return f"clang lld wasi-libc libclang-rt-{n}-dev-wasm32 libc++-{n}-dev-wasm32 libc++abi-{n}-dev-wasm32"
        return f"clang lld wasi-libc libclang-rt-{n}-dev-wasm32"

    def problem(self):
        reason, version = probe_clang(self.cpp)
        if reason is None:
            return None
        return f"clang: {reason}; install Debian packages {self._debs(version)}"

    def identity(self):
        return probe_clang(self.cpp)[1] or "clang"

    def build(self, ctx):
        clang = which("clang++" if self.cpp else "clang")
        sources = _c_sources(ctx, CPP_SUFFIXES + C_SUFFIXES if self.cpp else C_SUFFIXES)
        ctx.run(Step(clang_argv(clang, sources, ctx.out, ctx.src, self.cpp), ctx.src, label=self.title))


class ZigCcBuilder(Builder):
    toolchain = "zig"

    def __init__(self, cpp=False):
        self.cpp = cpp
        self.language = "cpp" if cpp else "c"

    def problem(self):
        return zig_problem()

    def identity(self):
        return zig_identity()

    def build(self, ctx):
        sources = _c_sources(ctx, CPP_SUFFIXES + C_SUFFIXES if self.cpp else C_SUFFIXES)
        ctx.progress("zig cc: the first build for wasm32-wasi also builds wasi-libc (about a minute)")
        ctx.run(Step(zig_cc_argv(python_zig(), sources, ctx.out, ctx.src, self.cpp), ctx.src, label=self.title))


def zig_problem():
    if importlib.util.find_spec("ziglang") is None:
        return "zig: the Python package ziglang is not installed (pip install ziglang)"
    if not zig_identity():
        return "zig: `python -m ziglang version` failed (reinstall the ziglang package)"
    return None


def zig_identity():
    text = probe_text(tuple(python_zig() + ["version"]))
    return f"zig {text.strip()}" if text else ""


class ZigBuilder(Builder):
    language = "zig"
    toolchain = "zig"

    def problem(self):
        return zig_problem()

    def identity(self):
        return zig_identity()

    def build(self, ctx):
        cache = ctx.scratch / "zig-cache"
        if ctx.entry is None:  # build.zig project: its own build script decides
            prefix = ctx.src / "zig-out"
            ctx.run(Step(zig_build_argv(python_zig(), prefix, cache), ctx.src, label=self.title))
            found = sorted((prefix / "bin").glob("*.wasm"))
            if len(found) != 1:
                names = ", ".join(p.name for p in found) or "none"
                raise BuildError(
                    f"zig build: expected one .wasm in zig-out/bin, found {names} "
                    f"(does build.zig use b.standardTargetOptions?)"
                )
            shutil.copyfile(found[0], ctx.out)
            return
        ctx.run(Step(zig_exe_argv(python_zig(), ctx.src / ctx.entry, ctx.out, cache), ctx.src, label=self.title))


class EmccBuilder(Builder):
    language = "emscripten"
    toolchain = "emcc"

    def problem(self):
        if not which("emcc"):
            return "emcc: not installed; install Debian package emscripten (or the emsdk)"
        if not self.identity():
            return "emcc: `emcc --version` failed"
        return None

    def identity(self):
        text = probe_text((which("emcc"), "--version")) if which("emcc") else None
        return text.splitlines()[0].strip() if text else ""

    def build(self, ctx):
        sources = _c_sources(ctx, CPP_SUFFIXES + C_SUFFIXES)
        cpp = any(str(s).lower().endswith(CPP_SUFFIXES) for s in sources)
        tool = which("em++") if cpp else which("emcc")
        ctx.run(Step(emcc_argv(tool, sources, ctx.out, ctx.src), ctx.src, label=self.title))
