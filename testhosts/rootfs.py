"""The arm64 Debian root of the aarch64 test host: build once, cache, extract.

``debootstrap`` runs the arm64 second stage under qemu-user (binfmt_misc), which
takes minutes; the slimmed result is cached as ``rootfs.tar.zst`` in the artifact
cache (``<cache dir>/testhosts/<key>/``, key = every input, see
:func:`commands.rootfs_inputs`) and each host extracts its own copy in ~1 s.
A file lock keeps two processes (two pytest sessions, a person's
``scripts/testhost up``) from building it twice.
"""

import contextlib
import fcntl
import glob
import os
import shutil
import tempfile
from pathlib import Path

from tiramisu_tasks.artifacts import cache
from tiramisu_tasks.errors import BuildError, ToolMissing
from tiramisu_tasks.paths import cache_dir

from . import commands as cmd
from .system import run, umount_below

KIND = "testhosts"
TARBALL = "rootfs.tar.zst"

# What the deploy code expects on a box (see the brief of the test hosts).
REQUIRED_IN_ROOT = (
    "bin/bash",
    "bin/sh",
    "bin/tar",
    "bin/gzip",
    "usr/bin/sha256sum",
    "usr/bin/nohup",
    "usr/bin/setsid",
    "bin/kill",
    "bin/df",
    "bin/ss",
    "usr/sbin/sshd",
    "usr/bin/pgrep",
)


def machine_mirror():
    """The Debian mirror this machine's apt uses (so debootstrap goes the same way)."""
    deb822 = ""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with contextlib.suppress(OSError):
            deb822 += Path(path).read_text() + "\n\n"
    listed = ""
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        with contextlib.suppress(OSError):
            listed += Path(path).read_text() + "\n"
    return cmd.parse_debian_mirror(deb822, listed)


def cached_tarball(mirror=None):
    """The verified cached tarball, or None (no build)."""
    entry = cache.lookup(KIND, cmd.rootfs_inputs(mirror or machine_mirror()))
    return entry.file(TARBALL) if entry else None


@contextlib.contextmanager
def _build_lock():
    base = cache_dir() / KIND
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".rootfs.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def rootfs_tarball(progress=None):
    """Path of the cached arm64 root tarball, building it first if needed."""
    mirror = machine_mirror()
    inputs = cmd.rootfs_inputs(mirror)
    entry = cache.lookup(KIND, inputs)
    if entry:
        return entry.file(TARBALL)
    if shutil.which("debootstrap") is None:
        raise ToolMissing("debootstrap is not installed (apt-get install debootstrap)")
    with _build_lock():  # another process may have built it while we waited
        _remove_stale_builds()
        entry = cache.get_or_build(KIND, inputs, lambda out: _build(out, mirror, progress))
    return entry.file(TARBALL)


def _remove_stale_builds():
    """Work dirs of a killed build (we hold the lock, so none is in use): unmount, then delete.

    debootstrap mounts /proc and /sys inside the target; rmtree must never walk into them.
    """
    base = cache_dir() / KIND
    for work in base.glob(".build-*"):
        umount_below(work)
        shutil.rmtree(work, ignore_errors=True)
    # The artifact cache's own temp dirs (".<key>.<random>") of a killed build.
    for tmp in base.glob(".*.*"):
        if tmp.is_dir() and not tmp.name.startswith(".build-"):
            shutil.rmtree(tmp, ignore_errors=True)


def _build(out_dir, mirror, progress):
    say = progress or (lambda *a: None)
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=str(Path(out_dir).parent)))
    root = work / "root"
    try:
        say(f"testhosts: building the arm64 Debian root with debootstrap from {mirror} (a few minutes, once)")
        res = run(cmd.debootstrap_argv(str(root), mirror), check=False, capture=True)
        if res.returncode != 0:
            log = root / "debootstrap" / "debootstrap.log"
            tail = log.read_text().strip().splitlines()[-3:] if log.exists() else []
            detail = " | ".join(tail) or res.stderr.strip().splitlines()[-1:] or ["?"]
            raise BuildError(f"debootstrap of the arm64 root failed (exit {res.returncode}): {detail}")
        umount_below(root)
        for argv in cmd.rootfs_user_cmds(str(root)):
            run(argv)
        arch = run(["chroot", str(root), "uname", "-m"], capture=True).stdout.strip()
        if arch != "aarch64":
            raise BuildError(f"the arm64 root does not run as aarch64 code (uname -m: {arch!r})")
        for pattern in cmd.SLIM_PATHS:
            for path in glob.glob(str(root / pattern)):
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        missing = [p for p in REQUIRED_IN_ROOT if not os.path.lexists(root / p)]
        if missing:
            raise BuildError(f"the arm64 root lacks {', '.join(missing)}")
        run(cmd.tar_create_argv(str(root), str(Path(out_dir) / TARBALL)))
        say("testhosts: arm64 root cached")
    finally:
        umount_below(root)
        shutil.rmtree(work, ignore_errors=True)


def extract(tarball, dest):
    """Unpack the root into ``dest`` (an empty directory), as root, owners kept."""
    run(cmd.tar_extract_argv(str(tarball), str(dest)))
