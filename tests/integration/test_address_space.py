"""host.check reports the box's virtual address space and what custom_server's
pooling allocator will do there, read without root in the probe's one round trip."""

import pytest

from tests.helpers import cli, host_result

pytestmark = pytest.mark.slow


def test_host_check_reports_address_space(any_host, tmp_inventory):
    any_host.register(tmp_inventory, "box")
    proc = cli("tiramisu", "host.check", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    report = host_result(proc)
    space = report["address_space"]
    # Both test hosts run on this x86_64 machine's kernel (the arm64 one under
    # qemu-user, whose guest mappings qemu places in the host's 47-bit space).
    assert space["bits"] == 47 and space["source"] == "/proc/PID/maps"
    assert space["size_gib"] == 128 * 1024
    assert space["pooling"] == "ok"
    assert report["va_bits"] == 47
    if any_host.arch == "x86_64":
        assert space["cpu_virtual_bits"] in (48, 57)  # /proc/cpuinfo "address sizes"
    human = cli("tiramisu", "host.check", "box")
    assert human.returncode == 0
    assert "47-bit user address space (128 TiB" in human.stdout
    assert "pooling allocator ok" in human.stdout
