"""nginx → server over a UNIX socket (setting ``upstream = unix``) on real hosts,
and what setup sends over the wire (compressed, nothing a host already has)."""

import pytest

from tests.helpers import cli, host_result
from tests.integration.test_deploy import wat_app
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow


def _setup(*extra):
    proc = cli("tiramisu", "setup", "--host", "box", "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return host_result(proc)


@pytest.mark.parametrize("which", ["x86_host", "aarch64_host"])
def test_setup_with_upstream_unix_serves_through_nginx_and_back_to_tcp(which, request, tmp_inventory, tmp_path):
    host = request.getfixturevalue(which)
    host.register(tmp_inventory, "box", settings={"upstream": "unix", "upstream_keepalive": 16})
    try:
        first = _setup()
        # a fresh box: every file went, compressed (gzip at least is on every box)
        assert isinstance(first["sent_bytes"], int) and 0 < first["sent_bytes"] < first["uploaded_bytes"] * 0.6
        conf = host.ssh("cat ~/tiramisu-env/conf/nginx.conf ~/tiramisu-env/conf/server.conf").stdout
        assert "server unix:" in conf and "/run/server.sock;" in conf and "keepalive 16;" in conf
        assert "listen-unix = " in conf
        sock = host.ssh("test -S ~/tiramisu-env/run/server.sock && stat -c %a ~/tiramisu-env/run/server.sock")
        assert sock.stdout.strip() == "600"
        app = wat_app(tmp_path / "uds.wat", "hello over a unix socket")
        dep = cli("tiramisu", "deploy", app, "--host", "box")  # its health checks use the TCP admin listener
        assert dep.returncode == 0, dep.stderr
        assert get(f"http://{host.hostname}:8080/uds/") == (200, b"hello over a unix socket\n")
        assert get(f"http://{host.hostname}:8080/.well-known/tiramisu/health")[0] == 200
        # the server's access log: the request came over the socket
        log = host.ssh("tail -n 5 ~/tiramisu-env/logs/access.log").stdout
        assert "unix - - " in log and "GET /uds/" in log

        again = _setup()
        assert again["uploaded"] == [] and again["sent_bytes"] == 0  # nothing the host already has

        host.register(tmp_inventory, "box", settings={"upstream": "tcp"})
        back = _setup()
        assert back["sent_bytes"] < 64 * 1024  # two configs and VERSION
        assert get(f"http://{host.hostname}:8080/uds/") == (200, b"hello over a unix socket\n")
        conf = host.ssh("cat ~/tiramisu-env/conf/nginx.conf").stdout
        assert "server 127.0.0.1:9000;" in conf

        # and onto the socket again on an installed box: the server restarts before nginx reloads
        host.register(tmp_inventory, "box", settings={"upstream": "unix"})
        to_unix = _setup()
        assert to_unix["done"].get("server") == "restart" and to_unix["done"].get("nginx") == "reload"
        assert get(f"http://{host.hostname}:8080/uds/") == (200, b"hello over a unix socket\n")

        # the default (upstream = auto): the socket, as its path fits
        host.register(tmp_inventory, "box", settings={"upstream_keepalive": 64})
        _setup()
        conf = host.ssh("cat ~/tiramisu-env/conf/nginx.conf").stdout
        assert "/run/server.sock;" in conf and "keepalive 64;" in conf
        assert get(f"http://{host.hostname}:8080/uds/") == (200, b"hello over a unix socket\n")
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
