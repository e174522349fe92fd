"""One builder per toolchain that turns a language into a WASI command module.

Each builder answers three questions:

* ``problem()`` — None when the toolchain works here, else ONE line naming
  what to install. Checks are real (a probe compile for clang, the sysroot's
  installed targets for rustc, ``go env GOVERSION``), never assumed from a
  binary's presence.
* ``identity()`` — a string that changes whenever the toolchain would produce
  different output (versions), part of the artifact cache key.
* ``build(ctx)`` — produce ``ctx.out`` from the working copy ``ctx.src``.

The argv for every tool comes from a pure ``*_argv`` function below, so the
exact commands are tested with tables; only ``build`` runs them (through
``ctx.run``, see :mod:`toolrun`).
"""

import functools
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import BuildError
from .detect import C_SUFFIXES, CPP_SUFFIXES, list_source_files
from .toolrun import BuildFailed, Step, capture, first_error_line, locked

# Pinned AssemblyScript toolchain, installed with npm into the artifact cache on
# first use (never globally). assemblyscript 0.28 needs Node.js >= 20.
ASSEMBLYSCRIPT_VERSION = "0.28.20"
AS_WASI_SHIM_VERSION = "0.1.0"
NODE_MIN_MAJOR = 20

RUST_WASM_TARGETS = ("wasm32-wasip1", "wasm32-wasi")  # preferred first
GO_MIN_WASIP1 = (1, 21)
TINYGO_MIN_WASIP1 = (0, 30)
DEBIAN_CLANG_MAJOR = 14  # bookworm's, for install hints when clang is absent

LANGUAGE_TITLES = {
    "c": "C", "cpp": "C++", "rust": "Rust", "go": "Go", "zig": "Zig", "wat": "WAT",
    "assemblyscript": "AssemblyScript", "emscripten": "Emscripten", "wasm": "ready .wasm",
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


# ------------------------------------------------------------ pure argv ---

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
    return [emcc, "-O2", "-sSTANDALONE_WASM"] + include_flags(root) + ["-o", str(out)] + [
        str(s) for s in sources]


def zig_exe_argv(zig, entry, out, cache_dir):
    return list(zig) + ["build-exe", "-target", "wasm32-wasi", "-O", "ReleaseSmall",
                        "--cache-dir", str(cache_dir), f"-femit-bin={out}", str(entry)]


def zig_build_argv(zig, prefix, cache_dir):
    return list(zig) + ["build", "-Dtarget=wasm32-wasi", "-Doptimize=ReleaseSmall",
                        "--prefix", str(prefix), "--cache-dir", str(cache_dir)]


def cargo_argv(cargo, target):
    return [cargo, "build", "--release", "--target", target,
            "--message-format=json-render-diagnostics"]


def cargo_env(rustc, target_dir):
    # RUSTC pins the compiler we checked: otherwise a rustup shim earlier in
    # PATH (without the wasm target) would be used by Debian's cargo.
    # Debian's wasm32 std carries debug info: strip it or a hello is 5 MB.
    return {"RUSTC": str(rustc), "CARGO_TARGET_DIR": str(target_dir), "RUSTC_WRAPPER": None,
            "CARGO_PROFILE_RELEASE_STRIP": "debuginfo"}


def rustc_argv(rustc, entry, out, target):
    return [rustc, "--target", target, "--edition", "2021", "-C", "opt-level=s",
            "-C", "strip=debuginfo", "-o", str(out), str(entry)]


def tinygo_argv(tinygo, target, out, package):
    return [tinygo, "build", f"-target={target}", "-opt=z", "-no-debug", "-o", str(out), package]


def go_argv(go, out, package):
    return [go, "build", "-trimpath", "-o", str(out), package]


GO_ENV = {"GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0"}


def asc_argv(node, tools, entry, out, cwd):
    asc = Path(tools) / "node_modules" / "assemblyscript" / "bin" / "asc.js"
    shim = Path(tools) / "node_modules" / "@assemblyscript" / "wasi-shim" / "asconfig.json"
    # The shim's config must be given relative to the working directory: asc
    # 0.28 resolves its "lib" wrongly from an absolute --config path
    # ("Element 'wasi_abort' not found").
    return [node, str(asc), str(entry), "--config", os.path.relpath(shim, cwd), "--optimize",
            "--outFile", str(out)]


def npm_install_argv(npm, prefix, packages):
    specs = [f"{name}@{version}" for name, version in sorted(packages.items())]
    return [npm, "install", "--prefix", str(prefix), "--no-save", "--no-package-lock",
            "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"] + specs


def pick_rust_target(installed: Sequence[str]):
    """The best WASI target among the installed ones (pure)."""
    for t in RUST_WASM_TARGETS:
        if t in installed:
            return t
    return None


def go_supports_wasip1(goversion):
    v = version_tuple(goversion)
    return v is not None and v >= GO_MIN_WASIP1


def tinygo_target(version_text):
    v = version_tuple(version_text)
    return "wasip1" if v is None or v >= TINYGO_MIN_WASIP1 else "wasi"


def cargo_wasm_outputs(messages_text):
    """Executables a `cargo build --message-format=json` run produced (pure)."""
    found = []
    for line in (messages_text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        exe = msg.get("executable") if msg.get("reason") == "compiler-artifact" else None
        if exe and exe.endswith(".wasm") and exe not in found:
            found.append(exe)
    return found


# ----------------------------------------------------------------- probes ---
# Memoized for the life of the process: a build asks each at most once.
# Tests that change the machine call reset_probes().

@functools.lru_cache(maxsize=None)
def which(name):
    return shutil.which(name)


@functools.lru_cache(maxsize=None)
def probe_text(argv):
    return capture(list(argv))


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
        src.write_text("#include <string>\nint main(){std::string s(\"x\");return (int)s.size()-1;}\n"
                       if cpp else "#include <stdio.h>\nint main(void){puts(\"x\");return 0;}\n")
        try:
            proc = subprocess.run(clang_argv(clang, [src], Path(tmp) / "p.wasm", tmp, cpp),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"probe compile failed to run ({exc})", version
        if proc.returncode != 0:
            detail = first_error_line(proc.stdout.decode("utf-8", "replace")).replace(tmp + "/", "")
            return f"cannot build for wasm32-wasi ({detail})", version
    return None, version


@dataclass(frozen=True)
class RustToolchain:
    rustc: str
    cargo: Optional[str]
    version: str  # `rustc -vV` first line
    targets: tuple  # installed WASI targets (with a std library)


def rustc_candidates():
    """rustc binaries to consider, in order: $RUSTC, PATH's, Debian's /usr/bin/rustc."""
    seen, out = set(), []
    for cand in (os.environ.get("RUSTC"), which("rustc"), "/usr/bin/rustc"):
        if cand and cand not in seen and Path(cand).exists():
            seen.add(cand)
            out.append(cand)
    return out


def installed_wasi_targets(sysroot):
    """WASI targets whose std library is installed under a rustc sysroot."""
    found = []
    for t in RUST_WASM_TARGETS:
        libdir = Path(sysroot) / "lib" / "rustlib" / t / "lib"
        if libdir.is_dir() and any(libdir.glob("libstd-*.rlib")):
            found.append(t)
    return tuple(found)


@functools.lru_cache(maxsize=None)
def probe_rust(rustc):
    vv = capture([rustc, "-vV"])
    sysroot = capture([rustc, "--print", "sysroot"])
    if not vv or not sysroot:
        return None
    cargo = Path(rustc).parent / "cargo"
    return RustToolchain(rustc, str(cargo) if cargo.exists() else None,
                         vv.splitlines()[0].strip(), installed_wasi_targets(sysroot.strip()))


def reset_probes():
    for fn in (which, probe_text, probe_clang, probe_rust):
        fn.cache_clear()


def _short(path):
    home = str(Path.home())
    return "~" + path[len(home):] if path and path.startswith(home + "/") else path


# --------------------------------------------------------------- builders ---

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
        ctx.run(Step(zig_cc_argv(python_zig(), sources, ctx.out, ctx.src, self.cpp), ctx.src,
                     label=self.title))


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
                raise BuildError(f"zig build: expected one .wasm in zig-out/bin, found {names} "
                                 f"(does build.zig use b.standardTargetOptions?)")
            shutil.copyfile(found[0], ctx.out)
            return
        ctx.run(Step(zig_exe_argv(python_zig(), ctx.src / ctx.entry, ctx.out, cache), ctx.src,
                     label=self.title))


class CargoBuilder(Builder):
    """Rust: the first rustc whose sysroot has a WASI std; cargo beside it."""

    language = "rust"
    toolchain = "cargo"

    def toolchain_info(self):
        for rustc in rustc_candidates():
            info = probe_rust(rustc)
            if info and pick_rust_target(info.targets) and info.cargo:
                return info
        return None

    def problem(self):
        if self.toolchain_info():
            return None
        seen = []
        for rustc in rustc_candidates():
            info = probe_rust(rustc)
            seen.append(f"{_short(rustc)} ({info.version if info else 'does not run'}) has none")
        checked = f" ({'; '.join(seen)})" if seen else ""
        return ("rustc: no toolchain with the wasm32-wasip1/wasm32-wasi target" + checked +
                "; install Debian packages rustc cargo libstd-rust-dev-wasm32, "
                "or run: rustup target add wasm32-wasip1")

    def identity(self):
        info = self.toolchain_info()
        return f"{info.version} {pick_rust_target(info.targets)}" if info else ""

    def build(self, ctx):
        info = self.toolchain_info()
        target = pick_rust_target(info.targets)
        if ctx.single_file:
            ctx.run(Step(rustc_argv(info.rustc, ctx.src / ctx.entry, ctx.out, target), ctx.src,
                         env={"RUSTC_WRAPPER": None}, label=self.title))
            return
        target_dir = ctx.scratch / "cargo-target"
        output = ctx.run(Step(cargo_argv(info.cargo, target), ctx.src,
                              env=cargo_env(info.rustc, target_dir), label=self.title))
        wasm = cargo_wasm_outputs(output)
        if len(wasm) != 1:
            names = ", ".join(Path(w).name for w in wasm) or "none"
            raise BuildError(f"cargo: expected one binary, built {names} "
                             f"(a Tiramisu app is one [[bin]] crate)")
        shutil.copyfile(wasm[0], ctx.out)


class TinyGoBuilder(Builder):
    language = "go"
    toolchain = "tinygo"

    def problem(self):
        if not which("tinygo"):
            return "tinygo: not installed (TinyGo is not in the Debian/PyPI/npm registries; see tinygo.org)"
        if not probe_text((which("tinygo"), "version")):
            return "tinygo: `tinygo version` failed"
        return None

    def identity(self):
        return (probe_text((which("tinygo"), "version")) or "").strip()

    def build(self, ctx):
        target = tinygo_target(self.identity())
        package = ctx.entry if ctx.single_file else "."
        ctx.run(Step(tinygo_argv(which("tinygo"), target, ctx.out, package), ctx.src,
                     label=self.title))


class GoBuilder(Builder):
    language = "go"
    toolchain = "go"

    def goversion(self):
        go = which("go")
        return (probe_text((go, "env", "GOVERSION")) or "").strip() if go else ""

    def problem(self):
        if not which("go"):
            return "go: not installed (Go >= 1.21 is needed for GOOS=wasip1; Debian 12 has 1.19)"
        version = self.goversion()
        if not go_supports_wasip1(version):
            return (f"go: {version or 'unknown version'} cannot build GOOS=wasip1 "
                    f"(needs Go >= {GO_MIN_WASIP1[0]}.{GO_MIN_WASIP1[1]})")
        return None

    def identity(self):
        return self.goversion()

    def build(self, ctx):
        package = ctx.entry if ctx.single_file else "."
        ctx.run(Step(go_argv(which("go"), ctx.out, package), ctx.src, env=dict(GO_ENV),
                     label=self.title))


class AscBuilder(Builder):
    language = "assemblyscript"
    toolchain = "asc"

    def node_version(self):
        node = which("node")
        return (probe_text((node, "--version")) or "").strip() if node else ""

    def problem(self):
        if not which("node") or not which("npm"):
            return ("asc: needs Node.js >= 20 and npm (Debian/NodeSource package nodejs; "
                    "AssemblyScript itself is installed from npm on first use)")
        major = version_tuple(self.node_version(), 1)
        if not major or major[0] < NODE_MIN_MAJOR:
            return (f"asc: assemblyscript {ASSEMBLYSCRIPT_VERSION} needs Node.js >= {NODE_MIN_MAJOR}, "
                    f"found {self.node_version() or 'unknown'}")
        return None

    def identity(self):
        return (f"assemblyscript {ASSEMBLYSCRIPT_VERSION} wasi-shim {AS_WASI_SHIM_VERSION} "
                f"node {self.node_version()}")

    def packages(self):
        return {"assemblyscript": ASSEMBLYSCRIPT_VERSION,
                "@assemblyscript/wasi-shim": AS_WASI_SHIM_VERSION}

    def tools_dir(self, run, progress, cache_root=None):
        """The pinned npm packages, installed once into the artifact cache."""
        from ..artifacts import cache

        def install(tmp):
            progress(f"installing AssemblyScript {ASSEMBLYSCRIPT_VERSION} from npm (once)")
            run(Step(npm_install_argv(which("npm"), tmp, self.packages()), tmp,
                     label=f"npm install assemblyscript@{ASSEMBLYSCRIPT_VERSION}", what="install"))

        base = Path(cache_root) if cache_root else None
        from ..paths import cache_dir

        with locked((base or cache_dir()) / "npm-tools"):
            entry = cache.get_or_build("npm-tools", {"packages": self.packages()}, install, root=cache_root)
        return entry.path

    def build(self, ctx):
        if not ctx.entry:
            raise BuildError("AssemblyScript project without assembly/index.ts (the entry file)")
        tools = self.tools_dir(ctx.run, ctx.progress, ctx.cache_root)
        ctx.run(Step(asc_argv(which("node"), tools, ctx.src / ctx.entry, ctx.out, ctx.src), ctx.src,
                     label=self.title))


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


class WatBuilder(Builder):
    """WebAssembly text, assembled in-process by the `wasmtime` package."""

    language = "wat"
    toolchain = "wat2wasm"

    def problem(self):
        if importlib.util.find_spec("wasmtime") is None:
            return "wat2wasm: the Python package wasmtime is not installed (pip install wasmtime)"
        return None

    def identity(self):
        from importlib.metadata import version

        return f"wasmtime-py {version('wasmtime')}"

    def build(self, ctx):
        import wasmtime

        path = ctx.src / ctx.entry
        ctx.progress(f"assembling {ctx.entry}")
        try:
            ctx.out.write_bytes(wasmtime.wat2wasm(path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            raise BuildFailed(f"{self.title}: {ctx.entry} is not UTF-8 text") from None
        except wasmtime.WasmtimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise BuildFailed(f"{self.title}: {ctx.entry}: {' '.join(lines[:3])[:300]}",
                              str(exc)) from None


class ReadyWasmBuilder(Builder):
    language = "wasm"
    toolchain = "copy"

    def problem(self):
        return None

    def identity(self):
        return "copy"

    def build(self, ctx):
        shutil.copyfile(ctx.src / ctx.entry, ctx.out)


def builders_for(language) -> List[Builder]:
    """The builders that can handle a language, preferred first."""
    table = {
        "c": [ClangBuilder(), ZigCcBuilder()],
        "cpp": [ClangBuilder(cpp=True), ZigCcBuilder(cpp=True)],
        "zig": [ZigBuilder()],
        "rust": [CargoBuilder()],
        "go": [TinyGoBuilder(), GoBuilder()],
        "assemblyscript": [AscBuilder()],
        "emscripten": [EmccBuilder()],
        "wat": [WatBuilder()],
        "wasm": [ReadyWasmBuilder()],
    }
    return table.get(language, [])
