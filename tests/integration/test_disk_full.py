"""A full disk on the box during an upload is reported as "disk full", not as a cut
transfer, and the installed app keeps serving.

setup refuses up front when free space is short (tests/integration/test_lifecycle.py:
test_full_disk_is_a_clear_error); this covers the disk filling up after that check,
here between setup and a deploy, on the x86_64 test host's small tmpfs home."""

import re

import pytest

from tests.helpers import cli, one_line_error
from tests.integration.test_deploy import wat_app
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow


def big_app(path, kib):
    """A valid app whose module carries ``kib`` KiB of data (so its upload needs room)."""
    blob = "a" * (kib * 1024)
    path.write_text(f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {kib // 64 + 2})
  (data (i32.const 64) "Content-Type: text/plain\\n\\nbig\\n")
  (data (i32.const 1024) "{blob}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 30))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
""")
    return path


def test_disk_full_during_deploy_is_reported_as_disk_full(fresh_x86_host, tmp_inventory, tmp_path):
    host = fresh_x86_host(name="full-later", home_size="96M")
    host.register(tmp_inventory, "box")
    try:
        assert cli("tiramisu", "setup", "--host", "box").returncode == 0
        good = cli("tiramisu", "deploy", wat_app(tmp_path / "app.wat", "v1"), "--host", "box", "--name", "app")
        assert good.returncode == 0, good.stderr
        url = f"http://{host.hostname}:8080/app/"
        assert get(url) == (200, b"v1\n")

        # Fill the home, then give back 64 KiB: less than the 600 KiB module needs.
        host.ssh("dd if=/dev/zero of=filler bs=1M 2>/dev/null; truncate -s -64K filler", check=True)
        proc = cli("tiramisu", "deploy", big_app(tmp_path / "app-big.wat", 600), "--host", "box", "--name", "app")
        line = one_line_error(proc)
        assert proc.returncode == 1, proc.stderr
        assert "transfer cut short" not in proc.stderr
        match = re.search(
            r"disk full on \S+: (\d+\.\d) KiB needed at (\S+), (\d+\.\d) KiB free; nothing was "
            r"replaced; the previous version \([0-9a-f]{12}\) keeps serving$",
            line,
        )
        assert match, line
        assert 600 <= float(match.group(1)) < 700
        assert match.group(2).endswith("/tiramisu-env")
        assert float(match.group(3)) < 600

        # Nothing half-written, no staging dir, and the old release still answers.
        assert host.ssh("ls -A tiramisu-env | grep -c '^.tiramisu-upload-'").stdout.strip() == "0"
        assert get(url) == (200, b"v1\n")
    finally:
        host.ssh("rm -f filler")
        cli("tiramisu", "teardown", "--host", "box", "--yes")
