"""``libgcc_s.so.1`` for musl targets, built from the LLVM libunwind that ships with zig.

The musllinux Wasmtime library needs ``libgcc_s.so.1`` (``_Unwind_*``,
``__register_frame`` for JIT code). Alpine boxes have it only when the
``libgcc`` package is installed, and a Debian machine running a musl binary
with Debian's musl loader has none at all (glibc's libgcc_s needs glibc-only
symbols such as ``_dl_find_object``). This builds a drop-in shared library
with that soname from libunwind's sources in the ``ziglang`` package, for any
supported arch; musl ignores symbol versions, so the GCC_* version tags the
Wasmtime library asks for are not needed.

Cached (kind ``libgcc_s``), keyed by zig version and target.
"""

import os
import sys
from pathlib import Path

from ..errors import BuildError, ToolMissing, UsageError
from ..subproc import run_local
from . import cache
from .elf import check_machine

KIND = "libgcc_s"
SONAME = "libgcc_s.so.1"
RECIPE = 1

SOURCES = (
    "libunwind.cpp",
    "UnwindLevel1.c",
    "UnwindLevel1-gcc-ext.c",
    "UnwindRegistersSave.S",
    "UnwindRegistersRestore.S",
    "gcc_personality_v0.c",
)


def libunwind_dir():
    try:
        import ziglang
    except ImportError:
        raise ToolMissing("building libgcc_s for musl needs the Python package ziglang") from None
    path = Path(ziglang.__file__).parent / "lib" / "libunwind"
    if not (path / "src" / "libunwind.cpp").is_file():
        raise ToolMissing(f"no libunwind sources in the ziglang package ({path})")
    return path


def build_argv(python, zig_target, unwind_dir, output):
    """Pure: one ``zig c++`` command that builds the shared unwinder."""
    src = Path(unwind_dir) / "src"
    return [
        python,
        "-m",
        "ziglang",
        "c++",
        "-target",
        zig_target,
        "-shared",
        "-fPIC",
        "-O2",
        # libunwind needs no C++ runtime; without these zig would link libc++
        "-nostdlib++",
        "-fno-exceptions",
        "-fno-rtti",
        "-funwind-tables",
        "-D_LIBUNWIND_IS_NATIVE_ONLY",
        f"-I{Path(unwind_dir) / 'include'}",
        f"-Wl,-soname,{SONAME}",
        "-s",
        "-o",
        str(output),
        *[str(src / name) for name in SOURCES],
    ]


def musl_libgcc_s(target, root=None):
    """Cache entry holding ``lib/libgcc_s.so.1`` for a musl target."""
    if target.libc != "musl":
        raise UsageError(f"{target.name} is a glibc target: the box's own libgcc_s is used")
    from ..toolchains import _zig_version

    zig = _zig_version()
    if zig is None:
        raise ToolMissing("building libgcc_s for musl needs the Python package ziglang")
    unwind = libunwind_dir()
    inputs = {"target": target.name, "zig": zig, "recipe": RECIPE}

    def build(out):
        lib = out / "lib" / SONAME
        lib.parent.mkdir(parents=True)
        proc = run_local(build_argv(sys.executable, target.zig_target, unwind, lib), merge_stderr=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-10:])
            raise BuildError(f"building {SONAME} for {target.name} failed\n{tail}")
        check_machine(lib, target.arch)
        os.chmod(lib, 0o755)

    return cache.get_or_build(KIND, inputs, build, root=root)
