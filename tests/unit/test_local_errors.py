"""Errors of this machine's disk end as one 'tiramisu: local: ...' line and exit 1, never as exit 255.

The inputs fail for root too (root ignores permission bits): a path under a
regular file, an output path that is a directory, a full tmpfs.
"""

import errno
import os
import shutil
import socket
import subprocess

import pytest

from tests.helpers import REPO, cli, one_line_error
from tiramisu_tasks.errors import LocalError, is_local_os_error
from tiramisu_tasks.taskkit import describe_exception


@pytest.mark.parametrize(
    "exc, expected",
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/home/u/.cache/tiramisu/x"),
            ("local: file /home/u/.cache/tiramisu/x: Permission denied", 1),
        ),
        (OSError(errno.ENOSPC, "No space left on device"), ("local: disk: No space left on device", 1)),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp/.x.tmp", None, "/tmp/out/app.wasm"),
            ("local: file /tmp/out/app.wasm: Is a directory", 1),
        ),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/src/a", None, "/dst/a"),
            ("local: file /src/a: No such file or directory", 1),
        ),
    ],
    ids=["permission-with-path", "disk-full-without-path", "rename-onto-directory", "missing-source"],
)
def test_local_os_errors_are_local_and_exit_1(exc, expected):
    assert is_local_os_error(exc)
    assert describe_exception(exc, host="pi") == expected  # no host prefix: the box is not involved


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        socket.timeout("timed out"),
    ],
    ids=["refused", "reset", "unreachable", "timeout"],
)
def test_socket_errors_stay_connection_errors(exc):
    assert not is_local_os_error(exc)
    message, code = describe_exception(exc, host="pi")
    assert message.startswith("pi: ") and code == 255


def test_sftp_errors_name_no_local_file():
    """Paramiko reports a remote ENOENT/EACCES without a file name: not a local error."""
    assert not is_local_os_error(OSError(errno.EACCES, "Permission denied"))
    assert not is_local_os_error(OSError(errno.ENOENT, "No such file"))


def test_a_path_under_a_regular_file_says_not_a_directory(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    try:
        (blocker / "inv.yaml").parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        err = LocalError.from_os_error(exc, "cannot write inventory file", blocker / "inv.yaml")
    assert err.message == f"local: cannot write inventory file {blocker / 'inv.yaml'}: {blocker} is not a directory"
    assert err.code == 1


def _env(tmp_path, **extra):
    return {
        "TIRAMISU_HOME": str(tmp_path / "home"),
        "TIRAMISU_CACHE": str(tmp_path / "cache"),
        "TIRAMISU_INVENTORY": str(tmp_path / "home" / "tiramisu.yaml"),
        **extra,
    }


def test_inventory_under_a_regular_file(tmp_path):
    (tmp_path / "afile").write_text("")
    proc = cli(
        "tiramisu",
        "host.add",
        "pi",
        "--hostname",
        "192.0.2.1",
        timeout=120,
        env=_env(tmp_path, TIRAMISU_INVENTORY=str(tmp_path / "afile" / "tiramisu.yaml")),
    )
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        f"tiramisu: local: cannot write inventory file {tmp_path}/afile/tiramisu.yaml: "
        f"{tmp_path}/afile is not a directory"
    )


def test_cache_under_a_regular_file(tmp_path):
    (tmp_path / "afile").write_text("")
    proc = cli(
        "tiramisu",
        "build",
        REPO / "wasm_examples" / "hello-wat",
        timeout=300,
        env=_env(tmp_path, TIRAMISU_CACHE=str(tmp_path / "afile" / "cache")),
    )
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert line.startswith(f"tiramisu: local: cache {tmp_path}/afile/cache/") and line.endswith(": Not a directory")


@pytest.mark.parametrize("kind", ["out-is-a-file", "target-is-a-directory"])
def test_build_out_that_cannot_take_the_module(tmp_path, kind):
    out = tmp_path / "out"
    if kind == "out-is-a-file":
        out.write_text("")
        reason = f"{out} is not a directory"
    else:
        (out / "hello-wat.wasm").mkdir(parents=True)
        reason = "Is a directory"
    proc = cli("tiramisu", "build", REPO / "wasm_examples" / "hello-wat", "--out", out, timeout=300, env=_env(tmp_path))
    assert proc.returncode == 1
    assert one_line_error(proc) == f"tiramisu: local: cannot write --out {out}/hello-wat.wasm: {reason}"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="mounting a tmpfs needs root")
def test_full_disk_is_a_local_error(tmp_path):
    """A full tmpfs, mounted in a private mount namespace so nothing outlives the test."""
    full = tmp_path / "full"
    full.mkdir()
    tiramisu = REPO / ".venv" / "bin" / "tiramisu"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {full} || exit 90; "
        f"dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; "
        f"exec {tiramisu if tiramisu.exists() else 'tiramisu'} host.add pi --hostname 192.0.2.1"
    )
    env = {**os.environ, **_env(tmp_path, TIRAMISU_INVENTORY=str(full / "tiramisu.yaml"))}
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode == 90:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    assert proc.returncode == 1
    assert one_line_error(proc) == (
        f"tiramisu: local: cannot write inventory file {full}/tiramisu.yaml: No space left on device"
    )
