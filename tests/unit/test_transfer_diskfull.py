"""A full disk on the box is reported as "disk full", not as "transfer cut short".

Pure parsing and message tables, then the real sh receiver on a tiny tmpfs
(root only: mounting needs it) so ENOSPC comes from a real kernel."""

import hashlib
import io
import os
import subprocess
import tarfile

import pytest

from tiramisu_tasks.errors import DiskFullError, RemoteError
from tiramisu_tasks.transfer import (
    DISK_FULL_EXIT,
    Upload,
    disk_full_message,
    parse_disk_full,
    receiver_error,
    receiver_script,
)


@pytest.mark.parametrize(
    "line, parsed",
    [
        ("tiramisu-upload: disk full: 1200 KiB free at /home/pi/tiramisu-env", (1200 * 1024, "/home/pi/tiramisu-env")),
        ("tiramisu-upload: disk full: 0 KiB free at /e", (0, "/e")),
        ("tiramisu-upload: disk full:  KiB free at /e", (None, "/e")),  # no df on the box
        ("tiramisu-upload: transfer cut short", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_disk_full(line, parsed):
    assert parse_disk_full(line) == parsed


def test_disk_full_message_names_host_need_path_and_free():
    assert disk_full_message("pi", 25 * 1048576, 1258291, "/home/pi/tiramisu-env") == (
        "disk full on pi: 25.0 MiB needed at /home/pi/tiramisu-env, 1.2 MiB free; nothing was replaced"
    )
    assert "unknown free" in disk_full_message("pi", 10, None, "/e")


@pytest.mark.parametrize(
    "status, line, kind, text, code",
    [
        (
            75,
            "tiramisu-upload: disk full: 512 KiB free at /e",
            DiskFullError,
            "disk full on box: 2.0 MiB needed at /e, 512.0 KiB free",
            1,
        ),
        (2, "tar: 0: Cannot write: No space left on device", DiskFullError, "disk full on box: 2.0 MiB needed", 1),
        (
            71,
            "tiramisu-upload: transfer cut short",
            RemoteError,
            "upload failed (exit 71), nothing was replaced: tiramisu-upload: transfer cut short",
            71,
        ),
        (72, "", RemoteError, "upload failed (exit 72), nothing was replaced", 72),
    ],
)
def test_receiver_error_kinds(status, line, kind, text, code):
    exc = receiver_error("box", status, line, 2 * 1048576)
    assert type(exc) is kind and text in exc.message and exc.code == code


# --------------------------------------------------- the real receiver ---


def _tar(payloads):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for i, data in enumerate(payloads):
            info = tarfile.TarInfo(str(i))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def tiny_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_receiver_on_a_full_disk_says_disk_full_and_keeps_the_old_files(tiny_disk):
    (tiny_disk / "f0").write_bytes(b"old")
    payloads = [os.urandom(600 * 1024), os.urandom(600 * 1024)]  # 1.2 MiB onto a 1 MiB disk
    ups = [
        Upload(f"/local/{i}", str(tiny_disk / f"f{i}"), hashlib.sha256(d).hexdigest(), len(d))
        for i, d in enumerate(payloads)
    ]
    proc = subprocess.run(["sh", "-c", receiver_script(str(tiny_disk), ups)], input=_tar(payloads), capture_output=True)
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert proc.returncode == DISK_FULL_EXIT, proc.stderr
    free, path = parse_disk_full(last)
    assert path == str(tiny_disk) and 900 * 1024 <= free <= 1024 * 1024  # staging removed before df
    assert (tiny_disk / "f0").read_bytes() == b"old" and sorted(os.listdir(tiny_disk)) == ["f0"]
    exc = receiver_error("box", proc.returncode, last, sum(len(p) for p in payloads))
    assert isinstance(exc, DiskFullError)
    assert exc.message.startswith(f"disk full on box: 1.2 MiB needed at {tiny_disk}, ")


def test_receiver_on_a_disk_with_no_free_block_says_disk_full(tiny_disk):
    subprocess.run(["dd", "if=/dev/zero", f"of={tiny_disk}/fill", "bs=64k"], capture_output=True)
    # Not one free block: the staging dir is still created (a tmpfs dir takes no block),
    # the first member cannot be written.
    payloads = [b"z" * 8192]
    ups = [Upload("/local/0", str(tiny_disk / "f0"), hashlib.sha256(payloads[0]).hexdigest(), 8192)]
    proc = subprocess.run(["sh", "-c", receiver_script(str(tiny_disk), ups)], input=_tar(payloads), capture_output=True)
    assert proc.returncode == DISK_FULL_EXIT, proc.stderr
    assert parse_disk_full(proc.stderr.decode().strip().splitlines()[-1])[0] == 0
    assert sorted(os.listdir(tiny_disk)) == ["fill"]
