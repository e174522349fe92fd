"""Toolchain backends: how C code is compiled for a target.

A build (see ``serverbuild``) is a list of commands built by pure functions
from a compiler argv prefix (``Toolchain.cc(target)``); the toolchain runs them.
Local backends (zig, gcc) run them here; the docker backend runs them in a
container with the same absolute paths mounted, so argv needs no translation.

Interface every backend implements::

    name                      "zig" | "gcc" | "docker"
    problem(target) -> str|None   None when usable for target, else what to install
    cc(target) -> list[str]       compiler argv prefix (as seen by run())
    run(argv, cwd, read_only=(), writable=(), env=None)  execute one build command
    identity(target) -> dict      what goes into cache keys (compiler + version)
"""

import os
import shutil
import subprocess
import sys
from functools import lru_cache

from ..errors import BuildError, ToolMissing, UsageError
from ..subproc import run_local

BACKENDS = ("zig", "gcc", "docker")


class Toolchain:
    name = "?"

    def problem(self, target):
        raise NotImplementedError

    def cc(self, target):
        raise NotImplementedError

    def identity(self, target):
        raise NotImplementedError

    def require(self, target):
        why = self.problem(target)
        if why:
            raise ToolMissing(f"toolchain {self.name} cannot build for {target.name}: {why}")
        return self

    def glibc_version(self, target):
        """The glibc the compiler links against for target ("2.17"), None for musl.

        This is the most a binary built here can need from the box's glibc, read
        from the compiler's own predefined ``__GLIBC__``/``__GLIBC_MINOR__``.
        """
        if target.libc != "glibc":
            return None
        import tempfile

        with tempfile.TemporaryDirectory(prefix="tiramisu-glibc-probe-") as tmp:
            probe = os.path.join(tmp, "probe.c")
            with open(probe, "w") as fh:
                fh.write("#include <features.h>\n")
            text = self.run([*self.cc(target), "-dM", "-E", probe], cwd=tmp, read_only=(tmp,))
        return parse_glibc_macros(text)

    def run(self, argv, cwd=None, read_only=(), writable=(), env=None):
        """Run a build command locally; raise BuildError with the compiler's last lines."""
        proc = run_local(argv, cwd=cwd, env=env or {}, merge_stderr=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            raise BuildError(
                f"{self.name}: build command failed (exit {proc.returncode}): {' '.join(argv[:3])} ...\n{tail}"
            )
        return proc.stdout


def parse_glibc_macros(text):
    """Pure: "2.17" from preprocessor output defining __GLIBC__ and __GLIBC_MINOR__."""
    import re

    major = re.search(r"^#define __GLIBC__ (\d+)", text, re.M)
    minor = re.search(r"^#define __GLIBC_MINOR__ (\d+)", text, re.M)
    if not (major and minor):
        raise BuildError("the compiler does not define __GLIBC__/__GLIBC_MINOR__ for a glibc target")
    return f"{major.group(1)}.{minor.group(1)}"


@lru_cache(maxsize=None)
def _zig_version():
    try:
        proc = run_local([sys.executable, "-m", "ziglang", "version"], timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


class ZigToolchain(Toolchain):
    """``zig cc`` from the PyPI ``ziglang`` package: any target, glibc floor pinned."""

    name = "zig"

    def problem(self, target):
        if _zig_version() is None:
            return "the Python package 'ziglang' is not installed (pip install ziglang)"
        return None

    def cc(self, target):
        return [sys.executable, "-m", "ziglang", "cc", "-target", target.zig_target]

    def identity(self, target):
        return {"toolchain": "zig", "zig": _zig_version(), "zig_target": target.zig_target}


def _gcc_for(target):
    import platform

    native = platform.machine() == target.arch and target.libc == "glibc"
    candidates = [f"{target.gcc_prefix}gcc"]
    if native:
        candidates += ["gcc", "cc"]
    if target.libc == "musl" and platform.machine() == target.arch:
        candidates.insert(0, "musl-gcc")
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


class GccToolchain(Toolchain):
    """A system gcc: native, or a Debian cross compiler (``aarch64-linux-gnu-gcc``)."""

    name = "gcc"

    def problem(self, target):
        if _gcc_for(target) is None:
            if target.libc == "musl":
                return f"no {target.gcc_prefix}gcc or musl-gcc found (apt-get install musl-tools, native only)"
            return f"no {target.gcc_prefix}gcc found (apt-get install gcc-{target.arch.replace('_', '-')}-linux-gnu)"
        return None

    def cc(self, target):
        return [_gcc_for(target)]

    def identity(self, target):
        cc = _gcc_for(target)
        version = run_local([cc, "-dumpfullversion"]).stdout.strip()
        return {"toolchain": "gcc", "cc": os.path.basename(cc), "version": version}


def settings_from_config(c):
    """Toolchain settings from an invoke/fabric context's ``tiramisu`` config section.

    Only ``docker_base_image`` so far; a missing section gives ``{}``.
    """
    try:
        section = c.config.get("tiramisu") or {}
    except AttributeError:
        section = {}
    keys = ("docker_base_image",)
    return {k: section.get(k) for k in keys if section.get(k) is not None}


def get_toolchain(name, settings=None):
    """Backend by name (``auto`` is resolved by :func:`choose_toolchain`).

    ``settings`` (see :func:`settings_from_config`) configures backends that
    have settings: ``docker_base_image`` for docker.
    """
    settings = settings or {}
    if name == "zig":
        return ZigToolchain()
    if name == "gcc":
        return GccToolchain()
    if name == "docker":
        from .docker import DockerToolchain

        return DockerToolchain(base_image=settings.get("docker_base_image"))
    raise UsageError(f"unknown toolchain {name!r} (choose from: auto, {', '.join(BACKENDS)})")


def choose_toolchain(name, target, settings=None):
    """``auto`` → the first backend that works for target (zig, gcc, docker)."""
    if name and name != "auto":
        return get_toolchain(name, settings).require(target)
    reasons = []
    for candidate in BACKENDS:
        try:
            tc = get_toolchain(candidate, settings)
        except Exception as exc:  # noqa: BLE001 - e.g. docker package missing
            reasons.append(f"{candidate}: {exc}")
            continue
        why = tc.problem(target)
        if why is None:
            return tc
        reasons.append(f"{candidate}: {why}")
    raise ToolMissing(f"no toolchain can build for {target.name}: " + "; ".join(reasons))
