"""Compressed uploads: codec choice, the cached wire copies, and the real sh receiver unpacking them."""

import hashlib
import io
import os
import shutil
import subprocess
import tarfile

import pytest

from tiramisu_tasks.transfer import CODECS, Upload, compress_file, pick_codec, receiver_script, wire_copy


@pytest.mark.parametrize(
    "available, codec",
    [
        (["zstd", "xz", "gzip"], "zstd"),
        (["xz", "gzip"], "xz"),
        (["gzip"], "gzip"),
        ([], None),
        (None, None),
    ],
)
def test_pick_codec_prefers_zstd_then_xz_then_gzip(available, codec):
    assert pick_codec(available) == codec


def _upload(path, remote, mode="600"):
    return Upload.of(path, remote, mode)


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("codec", list(CODECS))
def test_receiver_unpacks_compressed_members_and_checks_the_plain_bytes(tmp_path, codec):
    if not shutil.which(codec):
        pytest.skip(f"no {codec} here")
    big = (b"wasm runtime " * 20000) + os.urandom(1000)
    (tmp_path / "big").write_bytes(big)
    (tmp_path / "small").write_bytes(b"conf")
    box = tmp_path / "box"
    box.mkdir()
    ups = [_upload(tmp_path / "big", str(box / "lib.so"), "700"), _upload(tmp_path / "small", str(box / "a.conf"))]
    wire = wire_copy(ups[0], codec, cache_root=tmp_path / "cache")
    assert os.path.getsize(wire) < len(big) // 10
    assert wire_copy(ups[0], codec, cache_root=tmp_path / "cache") == wire  # made once, then reused
    stream = _tar([("0.z", open(wire, "rb").read()), ("1", b"conf")])
    script = receiver_script(str(box), ups, codec=codec, compressed={0})
    proc = subprocess.run(["sh", "-c", script], input=stream, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert (box / "lib.so").read_bytes() == big and (box / "a.conf").read_bytes() == b"conf"
    assert oct((box / "lib.so").stat().st_mode & 0o777) == "0o700"
    assert sorted(os.listdir(box)) == ["a.conf", "lib.so"]  # no staging dir, no .z left


def test_receiver_refuses_a_corrupt_compressed_member_and_changes_nothing(tmp_path):
    data = b"x" * 200000
    (tmp_path / "f").write_bytes(data)
    box = tmp_path / "box"
    box.mkdir()
    (box / "lib.so").write_bytes(b"old")
    ups = [_upload(tmp_path / "f", str(box / "lib.so"))]
    compress_file(tmp_path / "f", tmp_path / "f.gz", "gzip")
    blob = bytearray((tmp_path / "f.gz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    proc = subprocess.run(
        ["sh", "-c", receiver_script(str(box), ups, codec="gzip", compressed={0})],
        input=_tar([("0.z", bytes(blob))]),
        capture_output=True,
    )
    assert proc.returncode in (71, 72), proc.stderr
    assert b"tiramisu-upload" in proc.stderr
    assert (box / "lib.so").read_bytes() == b"old" and os.listdir(box) == ["lib.so"]


def test_wire_copy_is_keyed_by_content(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"same" * 50000)
    b.write_bytes(b"same" * 50000)
    ua, ub = _upload(a, "/x/a"), _upload(b, "/x/b")
    assert ua.sha256 == hashlib.sha256(a.read_bytes()).hexdigest()
    assert wire_copy(ua, "gzip", cache_root=tmp_path / "c") == wire_copy(ub, "gzip", cache_root=tmp_path / "c")
