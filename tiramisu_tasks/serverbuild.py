"""Building ``custom_server`` for a target: pure command builders + one build function.

The build is a function of (target, toolchain): every command is an argv list
made here from the toolchain's compiler prefix (``toolchain.cc(target)``), and
the toolchain runs it (locally, or in a container with the same paths).

Output, movable as a pair::

    <out>/bin/custom_server      RUNPATH $ORIGIN/../lib
    <out>/lib/libwasmtime.so     from the pinned PyPI wheel (no SONAME: linked with -lwasmtime)
"""

import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import __version__
from .artifacts import cache
from .errors import BuildError
from .fileops import copy_atomic
from .paths import data_dir
from .versions import WASMTIME_VERSION

KIND = "server"
BINARY = "custom_server"
LIBRARY = "libwasmtime.so"
RPATH = "$ORIGIN/../lib"
# A user-supplied static libwasmtime.a: static Wasmtime, dynamic libc pieces.
STATIC_LINK_TAIL = ("-Wl,-Bstatic", "-lwasmtime", "-Wl,-Bdynamic", "-ldl", "-lpthread", "-lm")
BUILD_LAYOUT = 1  # bump when the build recipe changes in a way the inputs do not show


def source_dir(root=None):
    """The server's C sources: ``root/cserver`` if given, else the checkout's or the packaged copy."""
    return Path(root) / "cserver" if root else data_dir("cserver")


def source_files(src_dir=None):
    """The product's C sources (``cserver/ts_*.c``), sorted: tests and fuzz drivers live elsewhere."""
    src_dir = Path(src_dir or source_dir())
    files = sorted(p for p in src_dir.glob("ts_*.c") if p.is_file())
    if not files:
        raise BuildError(f"no C sources found in {src_dir}")
    return files


def sources_hash(src_dir=None):
    return cache.sha256_tree(src_dir or source_dir(), patterns=("ts_*.c", "ts_*.h"))


def cflags(target=None, server_version=__version__, wasmtime_version=WASMTIME_VERSION, optimize=True):
    """Compiler flags shared by every toolchain (C11, warnings on, versions baked in)."""
    flags = [
        "-std=c11",
        "-D_GNU_SOURCE",
        "-pthread",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter",
        "-Wno-format-truncation",
        "-Wno-unknown-warning-option",
        f'-DTS_VERSION="{server_version}"',
        f'-DTS_WASMTIME_VERSION="{wasmtime_version}"',
        "-fno-strict-aliasing",
    ]
    flags += ["-O2", "-g0"] if optimize else ["-O0", "-g"]
    return flags


def compile_argv(cc, source, obj, include_dir, target=None, extra=()):
    """Compile one source file to an object."""
    return [*cc, *cflags(target), *extra, "-I", str(include_dir), "-c", str(source), "-o", str(obj)]


def link_argv(cc, objects, output, lib_dir, static=False):
    """Link the server. Dynamic (default): against lib_dir/libwasmtime.so with a
    relative RUNPATH. Static: against a user-supplied lib_dir/libwasmtime.a."""
    argv = [*cc, *map(str, objects), "-o", str(output), "-pthread", "-L", str(lib_dir)]
    if static:
        return argv + list(STATIC_LINK_TAIL)
    return argv + ["-lwasmtime", f"-Wl,-rpath,{RPATH}", "-ldl", "-lm", "-s"]


def build_inputs(target, toolchain, static_lib=None, src_dir=None):
    """Everything that changes the binary: the cache key."""
    inputs = {
        "wasmtime": WASMTIME_VERSION,
        "target": target.name,
        "toolchain": toolchain.identity(target),
        "sources": sources_hash(src_dir),
        "server_version": __version__,
        "layout": BUILD_LAYOUT,
    }
    if static_lib:
        inputs["static_lib"] = cache.sha256_file(static_lib)
    return inputs


def _compile_and_link(target, toolchain, lib_path, out, src_dir, static_lib=None):
    from .taskkit import note

    src_dir = Path(src_dir)
    cc = toolchain.cc(target)
    obj_dir = out / "obj"
    (out / "bin").mkdir(parents=True)
    (out / "lib").mkdir(parents=True)
    obj_dir.mkdir()
    sources = source_files(src_dir)
    note(f"server: compiling {len(sources)} files for {target.name} with {toolchain.name}")
    jobs = [compile_argv(cc, s, obj_dir / (s.stem + ".o"), src_dir, target) for s in sources]
    # two at a time: the build machines here have two cores
    with ThreadPoolExecutor(max_workers=2) as pool:
        for fut in [pool.submit(toolchain.run, argv, str(src_dir), (str(src_dir),), (str(obj_dir),)) for argv in jobs]:
            fut.result()
    objects = [obj_dir / (s.stem + ".o") for s in sources]
    binary = out / "bin" / BINARY
    if static_lib:
        link_dir = out / "staticlib"
        link_dir.mkdir()
        shutil.copyfile(static_lib, link_dir / "libwasmtime.a")
        argv = link_argv(cc, objects, binary, link_dir, static=True)
    else:
        shutil.copyfile(lib_path, out / "lib" / LIBRARY)
        argv = link_argv(cc, objects, binary, out / "lib")
    note(f"server: linking {BINARY}")
    toolchain.run(argv, cwd=str(out), read_only=(str(out / "lib"),), writable=(str(out),))
    shutil.rmtree(obj_dir)
    if static_lib:
        shutil.rmtree(out / "staticlib")
        shutil.rmtree(out / "lib")
    os.chmod(binary, 0o755)


def build_server(target, toolchain, out_dir=None, static_lib=None, cache_root=None, src_dir=None):
    """Build (or reuse from the cache) the server for target; copy it to out_dir if given.

    Returns a dict: binary, library (None for a static build), cache key, hit.
    """
    from .artifacts.wasmtime import wasmtime_library

    toolchain.require(target)
    src_dir = Path(src_dir or source_dir())
    lib = None if static_lib else wasmtime_library(target, root=cache_root)
    inputs = build_inputs(target, toolchain, static_lib, src_dir)
    entry = cache.get_or_build(
        KIND,
        inputs,
        lambda tmp: _compile_and_link(target, toolchain, lib.lib if lib else None, Path(tmp), src_dir, static_lib),
        root=cache_root,
    )
    result = {
        "target": target.name,
        "toolchain": toolchain.name,
        "key": entry.key,
        "hit": entry.hit,
        "binary": str(entry.file(f"bin/{BINARY}")),
        "library": None if static_lib else str(entry.file(f"lib/{LIBRARY}")),
    }
    if out_dir:
        out_dir = Path(out_dir)
        (out_dir / "bin").mkdir(parents=True, exist_ok=True)
        copy_atomic(entry.file(f"bin/{BINARY}"), out_dir / "bin" / BINARY, 0o755)
        result["binary"] = str(out_dir / "bin" / BINARY)
        if not static_lib:
            (out_dir / "lib").mkdir(parents=True, exist_ok=True)
            copy_atomic(entry.file(f"lib/{LIBRARY}"), out_dir / "lib" / LIBRARY, 0o755)
            result["library"] = str(out_dir / "lib" / LIBRARY)
    return result
