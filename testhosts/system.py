"""Small effectful helpers: run a command, look at processes and mounts, kill by pid."""

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tiramisu_tasks.errors import TiramisuError
from tiramisu_tasks.sshd import add_known_host, proc_alive, proc_comm, proc_starttime  # noqa: F401
from tiramisu_tasks.subproc import run_local


class TestHostError(TiramisuError):
    """A test host could not be created, reached or torn down."""

    __test__ = False  # not a pytest test class


def run(argv, check=True, capture=False, input=None, timeout=600):
    """Run argv here (subproc.run_local); a failure raises TestHostError with stderr's last line."""
    res = run_local(argv, input=input, timeout=timeout, capture=capture)
    if check and res.returncode != 0:
        tail = (res.stderr or "").strip().splitlines()[-1:] or [""]
        raise TestHostError(f"command failed (exit {res.returncode}): {shlex.join(argv)}: {tail[0]}")
    return res


def kill_pids(pids, grace=0.0):
    """Signal each pid (TERM first when grace > 0, then KILL); wait until gone."""
    pids = [int(p) for p in pids if proc_alive(p)]
    if grace > 0:
        for pid in pids:
            _signal(pid, signal.SIGTERM)
        _wait_gone(pids, grace)
    for pid in pids:
        if proc_alive(pid):
            _signal(pid, signal.SIGKILL)
    _wait_gone(pids, 5.0)
    return [p for p in pids if proc_alive(p)]


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _wait_gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids:
            _reap(pid)
        if not any(proc_alive(p) for p in pids):
            return True
        time.sleep(0.02)
    return False


def _reap(pid):
    """Collect our own dead children so they don't linger as zombies."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def mounts_below(path):
    """Mount points at or under ``path`` (deepest first), from /proc/self/mountinfo."""
    base = os.path.realpath(str(path))
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        mnt = line.split()[4].encode().decode("unicode_escape")
        if mnt == base or mnt.startswith(base.rstrip("/") + "/"):
            found.append(mnt)
    return sorted(set(found), key=lambda m: (-m.count("/"), m))


def umount_below(path):
    """Unmount everything at or under ``path``; never leave a mount for rmtree to walk into."""
    for _ in range(3):
        mounts = mounts_below(path)
        if not mounts:
            return
        for mnt in mounts:
            subprocess.run(["umount", "--lazy", mnt], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    left = mounts_below(path)
    if left:
        raise TestHostError(f"cannot unmount {left[0]}")
