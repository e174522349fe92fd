"""Deadlines and per-app queueing on real boxes of both architectures, through nginx.

The server enforces the request deadline while a guest waits in a WASI call
(its own poll_oneoff) and bounds each app's concurrency and queue. Both depend
on the architecture's clocks and threads (the aarch64 box runs under
qemu-user), so both run on each test host: a guest sleeping past
`request_timeout_ms` gets 504 at the deadline, an app whose queue is full gets
503 with Retry-After, and another app keeps answering meanwhile.
"""

import os
import socket
import threading
import time

import pytest

from tests.helpers import REPO, cli

pytestmark = pytest.mark.slow

GUESTS = REPO / "tests" / "cserver" / "guests"
OWN_GUESTS = REPO / "tests" / "integration" / "guests"
TIMEOUT_MS = 1500


@pytest.fixture(scope="module")
def box(any_host, tmp_path_factory):
    """A set-up box with a short request timeout, one guest per app at a time and one waiting."""
    home = tmp_path_factory.mktemp(f"deadlines-{any_host.arch}")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    any_host.register(
        home / "tiramisu.yaml", "box", settings={"request_timeout_ms": TIMEOUT_MS, "app_concurrency": 1, "app_queue": 1}
    )
    try:
        proc = cli("tiramisu", "setup", "--host", "box")
        assert proc.returncode == 0, proc.stderr
        for source, name in ((OWN_GUESTS / "sleeper.c", "wait"), (GUESTS / "hello.c", "hello")):
            proc = cli("tiramisu", "deploy", source, "--host", "box", "--name", name)
            assert proc.returncode == 0, proc.stderr
        yield any_host
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def request(host, path, timeout=30):
    """GET through the box's nginx: (status, lowercased head, seconds)."""
    started = time.monotonic()
    with socket.create_connection((host.hostname, 8080), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head = data.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return int(head.split()[1]), head, time.monotonic() - started


def test_a_guest_sleeping_in_wasi_gets_504_at_the_deadline(box):
    status, _, seconds = request(box, "/wait/?secs=20")
    assert status == 504
    # at the deadline, give or take emulation: never the guest's 20 s
    assert TIMEOUT_MS / 1000 - 0.2 <= seconds < TIMEOUT_MS / 1000 + 5, seconds


def test_a_full_app_queue_is_503_and_other_apps_keep_answering(box):
    results = []

    def sleeper(i):
        results.append(request(box, f"/wait/?secs=20&n={i}"))

    threads = [threading.Thread(target=sleeper, args=(i,)) for i in range(2)]  # one runs, one waits
    for t in threads:
        t.start()
        time.sleep(0.3)
    status, head, seconds = request(box, "/wait/?secs=20&n=late")
    assert status == 503 and "retry-after: 1" in head, head
    assert seconds < TIMEOUT_MS / 1000, "refused at once, not after the sleepers"
    status, _, _ = request(box, "/hello/")
    assert status == 200  # another app is not held up by the sleepers
    for t in threads:
        t.join(30)
    assert sorted(r[0] for r in results) == [504, 504]
