"""The README's main command, end to end, on the embedded sandbox host."""

import urllib.request

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_job_on_the_sandbox(tmp_inventory):
    try:
        proc = cli("tiramisu", "demo", timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = proc.stdout
        assert "hello-c is live at http://127.0.0.1:" in out
        assert "-> HTTP 200" in out and "Hello from C" in out
        url = next(line.split()[-1] for line in out.splitlines() if " is live at " in line)
        with urllib.request.urlopen(url, timeout=10) as resp:  # still serving after the CLI exited
            assert resp.status == 200
        # the sandbox's env dir lives under the user dir, not in the real ~/tiramisu-env
        assert str(tmp_inventory.parent) in cli("tiramisu", "webserv.status", "--host", "sandbox").stdout
    finally:
        cli("tiramisu", "teardown", "--host", "sandbox", "--yes")
        cli("tiramisu", "sandbox.down")
