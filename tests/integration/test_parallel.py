"""Several hosts at once: a group for setup, a comma list for deploy, per-host
settings from the inventory, and a per-host summary."""

import pytest

from tests.helpers import cli, host_results
from tests.integration.test_deploy import wat_app
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow
SETTINGS = {"env_dir": "~/tiramisu-fleet", "http_port": 8181, "server_port": 9191}


def test_setup_and_deploy_on_two_hosts_in_parallel(x86_host, aarch64_host, tmp_inventory, tmp_path):
    x86_host.register(tmp_inventory, "a", groups=["fleet"], settings=SETTINGS)
    aarch64_host.register(tmp_inventory, "b", groups=["fleet"], settings=SETTINGS)
    try:
        proc = cli("tiramisu", "setup", "--host", "fleet", "--json")
        assert proc.returncode == 0, proc.stderr
        summaries = {s["host"]: s for s in host_results(proc)}
        assert summaries["a"]["target"] == "x86_64-linux-gnu" and summaries["b"]["target"] == "aarch64-linux-gnu"
        assert all(s["env_dir"].endswith("/tiramisu-fleet") for s in summaries.values())
        app = wat_app(tmp_path / "fleet.wat", "hello fleet")
        dep = cli("inv", "deploy", app, "--host", "a,b")
        assert dep.returncode == 0, dep.stderr
        assert "[a] " in dep.stdout and "[b] " in dep.stdout  # per-host output
        assert "RESULT" in dep.stderr  # the per-host summary table
        for host in (x86_host, aarch64_host):
            assert get(f"http://{host.hostname}:8181/fleet/") == (200, b"hello fleet\n")
        status = cli("tiramisu", "webserv.status", "--host", "fleet", "--json")
        assert status.returncode == 0 and all(s["healthy"] for s in host_results(status))
    finally:
        cli("tiramisu", "teardown", "--host", "fleet", "--yes")
