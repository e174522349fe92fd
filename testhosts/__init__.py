"""Real SSH test hosts on this machine: x86_64 (netns + fresh user) and aarch64 (qemu-user).

    from testhosts import start_x86_host, start_aarch64_host
    host = start_x86_host(name="box")
    host.ssh("uname -m").stdout        # 'x86_64\\n'
    host.register(inventory_path, "box")
    host.stop()

Layout: :mod:`.commands` (pure builders), :mod:`.rootfs` (the cached arm64 root),
:mod:`.registry` (records, leftovers), :mod:`.hosts` (start/stop, TestHost).
People use ``scripts/testhost``; pytest uses ``tests/fixtures/hosts.py``.
"""

from .hosts import (
    ARCHES,
    TestHost,
    binfmt_problem,
    host_from_record,
    missing_requirements,
    start_aarch64_host,
    start_host,
    start_x86_host,
)
from .registry import cleanup_leftovers
from .system import TestHostError

__all__ = [
    "ARCHES",
    "TestHost",
    "TestHostError",
    "binfmt_problem",
    "cleanup_leftovers",
    "host_from_record",
    "missing_requirements",
    "start_aarch64_host",
    "start_host",
    "start_x86_host",
]
