"""The Wasmtime C library for a target, from the pinned PyPI ``wasmtime`` wheel.

No registry ships Wasmtime's C headers or a static library, but every
``wasmtime`` wheel carries ``wasmtime/linux-<arch>/_libwasmtime.so`` (the whole
C API) and ``wasmtime/_bindings.py`` (its ctypes signatures, which the project's
own declarations header is checked against). This module downloads the wheel
for a target's platform tag with pip, extracts those two files, strips the
library and stores them in the artifact cache:

    <cache>/wasmtime/<key>/libwasmtime.so      stripped, no SONAME (link -lwasmtime)
    <cache>/wasmtime/<key>/_bindings.py
    <cache>/wasmtime/<key>/wheel.json          wheel name, platform, sha256s
"""

import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from ..errors import BuildError, ToolMissing
from ..subproc import run_local
from ..versions import WASMTIME_VERSION
from . import cache

KIND = "wasmtime"
LIB_NAME = "libwasmtime.so"
BINDINGS_NAME = "_bindings.py"


def wheel_member(target):
    """Path of the native library inside the wheel for this target."""
    return f"wasmtime/linux-{target.arch}/_libwasmtime.so"


def download_argv(platform_tag, dest, version=WASMTIME_VERSION, python=None):
    """pip command that fetches exactly the pinned wheel for one platform tag."""
    return [
        python or sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        platform_tag,
        "--dest",
        str(dest),
        f"wasmtime=={version}",
    ]


def strip_argv(src, dst):
    """A strip command that handles both arches (llvm-strip, else zig objcopy, else binutils)."""
    tool = shutil.which("llvm-strip") or shutil.which("llvm-strip-14")
    if tool:
        return [tool, "--strip-unneeded", "-o", str(dst), str(src)]
    # zig's objcopy understands every ELF machine zig can target.
    return [sys.executable, "-m", "ziglang", "objcopy", "--strip-all", str(src), str(dst)]


def inputs_for(target, version=WASMTIME_VERSION):
    return {"wasmtime": version, "arch": target.arch, "libc": target.libc, "layout": 1}


def _download_wheel(target, dest, version):
    errors = []
    for tag in target.wheel_platforms:
        proc = run_local(download_argv(tag, dest, version), merge_stderr=True)
        wheels = sorted(Path(dest).glob("wasmtime-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[0], tag
        tail = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        errors.append(f"{tag}: {tail}")
    raise BuildError(f"cannot download wasmtime=={version} for {target.name} from PyPI: " + "; ".join(errors))


def _build(target, version, out_dir):
    from ..taskkit import note

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="tiramisu-wasmtime-") as tmp:
        note(f"wasmtime: downloading wasmtime=={version} wheel for {target.name}")
        wheel, tag = _download_wheel(target, tmp, version)
        member = wheel_member(target)
        with zipfile.ZipFile(wheel) as zf:
            names = set(zf.namelist())
            if member not in names:
                raise BuildError(
                    f"{wheel.name} has no {member}: this wheel carries no native library for {target.name}"
                )
            raw = Path(tmp) / "_libwasmtime.so"
            with zf.open(member) as src, open(raw, "wb") as dst:
                shutil.copyfileobj(src, dst)
            with zf.open("wasmtime/_bindings.py") as src, open(out_dir / BINDINGS_NAME, "wb") as dst:
                shutil.copyfileobj(src, dst)
        lib = out_dir / LIB_NAME
        argv = strip_argv(raw, lib)
        proc = run_local(argv, merge_stderr=True)
        if proc.returncode != 0 or not lib.is_file():
            note(f"wasmtime: strip failed ({proc.stdout.strip()[-200:]}); shipping the library unstripped")
            shutil.copyfile(raw, lib)
        os.chmod(lib, 0o755)
        meta = {
            "wheel": wheel.name,
            "platform": tag,
            "version": version,
            "target": target.name,
            "wheel_sha256": cache.sha256_file(wheel),
            "raw_size": raw.stat().st_size,
            "stripped_size": lib.stat().st_size,
        }
        (out_dir / "wheel.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        note(f"wasmtime: {LIB_NAME} {meta['stripped_size'] // (1 << 20)} MiB for {target.name}")


def wasmtime_library(target, version=WASMTIME_VERSION, root=None):
    """The cache entry holding ``libwasmtime.so`` and ``_bindings.py`` for target.

    The entry's ``lib`` and ``bindings`` attributes are the two paths.
    """
    if not shutil.which("llvm-strip") and not shutil.which("llvm-strip-14"):
        try:
            import ziglang  # noqa: F401
        except ImportError:
            raise ToolMissing(
                "no strip tool for foreign ELF files: install llvm (llvm-strip) or the Python package ziglang"
            ) from None
    entry = cache.get_or_build(KIND, inputs_for(target, version), lambda d: _build(target, version, d), root=root)
    entry.lib = entry.file(LIB_NAME)
    entry.bindings = entry.file(BINDINGS_NAME)
    return entry
