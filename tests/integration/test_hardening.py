"""The hardened behaviour of a whole install on real x86_64 hosts (case numbers
name the hardening review's cases), once with an ordinary SSH user and once with
a box reached as root:

- case 1: request bodies and large responses to slow clients arrive whole
  whatever user the box runs as (nginx temp files inside the 0700 env dir);
- the nginx side of the CGI/proxy contract: HTTP/1.0 without Host, X-Accel-*
  from a guest neither obeyed nor forwarded, big response headers;
- case 9: an nginx master killed with -9 leaves workers that status reports
  and start/stop clean up; never two nginx on one port.
- the server's side behind nginx: REMOTE_ADDR and SERVER_PORT are the
  client's (cases 6, 7), hop-by-hop fields never reach a client (case 4), one
  response-header limit (case 5), exit codes in the log (case 8).
"""

import os
import socket
import time
import urllib.request

import pytest

from tests.helpers import REPO, cli, host_result
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow

GUESTS = REPO / "tests" / "cserver" / "guests"
OWN_GUESTS = REPO / "tests" / "integration" / "guests"
MIB = 1024 * 1024
# nginx processes of this box's env (x86_64 test hosts share this machine's pid
# space: other hosts' nginx are visible too, and to a root box all of them).
ENV_NGINX = "$(for p in $(pgrep -x nginx); do [ /proc/$p/cwd -ef ~/tiramisu-env ] && echo $p; done)"


@pytest.fixture(scope="module", params=["user", "root"])
def hbox(request, tmp_path_factory):
    """A set-up box (ordinary user or root) with the echo, bigout, xaccel and bighdr guests."""
    host = request.getfixturevalue("x86_host" if request.param == "user" else "x86_root_host")
    home = tmp_path_factory.mktemp(f"hardening-{request.param}")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    host.register(home / "tiramisu.yaml", "box")
    try:
        proc = cli("tiramisu", "setup", "--host", "box")
        assert proc.returncode == 0, proc.stderr
        for source, name in (
            (GUESTS / "echo.c", "echo"),
            (GUESTS / "bigout.c", "bigout"),
            (OWN_GUESTS / "xaccel.c", "xaccel"),
            (OWN_GUESTS / "bighdr.c", "bighdr"),
            (GUESTS / "cgiout.c", "cgiout"),
        ):
            proc = cli("tiramisu", "deploy", source, "--host", "box", "--name", name)
            assert proc.returncode == 0, proc.stderr
        yield host
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def url(host, path):
    return f"http://{host.hostname}:8080{path}"


def post(u, body, timeout=60):
    req = urllib.request.Request(u, data=body, method="POST", headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


def raw_request(host, head, slow_start=0.0, chunk=65536, pause=0.0, timeout=60):
    """Send ``head`` as is; read the whole answer (optionally like a slow client)."""
    with socket.create_connection((host.hostname, 8080), timeout=timeout) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(head.encode())
        time.sleep(slow_start)
        parts = []
        while True:
            data = s.recv(chunk)
            if not data:
                break
            parts.append(data)
            time.sleep(pause)
    answer = b"".join(parts)
    head_part, _, body = answer.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def guest_env(body):
    return dict(
        line[4:].split("=", 1) for line in body.decode().splitlines() if line.startswith("env:") and "=" in line
    )


# ------------------------------------------------- case 1: any user ---


def test_nginx_workers_run_as_the_box_user(hbox):
    uid = hbox.ssh("id -u", check=True).stdout.strip()
    users = hbox.ssh(f"for p in {ENV_NGINX}; do stat -c %u /proc/$p; done", check=True).stdout.split()
    assert len(users) >= 2 and set(users) == {uid}  # master and workers alike
    assert hbox.ssh("stat -c %a tiramisu-env", check=True).stdout.strip() == "700"
    conf = hbox.ssh("cat tiramisu-env/conf/nginx.conf", check=True).stdout
    assert ("user root root;" in conf) == (uid == "0")


@pytest.mark.parametrize("size", [16 * 1024, 5 * MIB], ids=["16KiB", "5MiB"])
def test_post_body_reaches_the_guest_whole(hbox, size):
    body = os.urandom(size // 2).hex().encode()
    status, answer = post(url(hbox, "/echo/"), body)
    assert status == 200
    assert answer.split(b"---stdin---\n", 1)[1] == body
    assert f"env:CONTENT_LENGTH={size}\n".encode() in answer


def test_12mib_response_to_a_slow_client_arrives_whole(hbox):
    kib = 12 * 1024
    status, headers, body = raw_request(
        hbox,
        f"GET /bigout/?{kib} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n",
        slow_start=2.0,
        chunk=256 * 1024,
        pause=0.01,
    )
    assert status == 200
    if headers.get("transfer-encoding") == "chunked":
        pytest.fail("expected a Content-Length response")
    assert len(body) == kib * 1024 == int(headers["content-length"])
    assert body == (b"x" * 1023 + b"\n") * kib
    log = hbox.ssh("cat tiramisu-env/logs/nginx-error.log", check=True).stdout
    assert "Permission denied" not in log and "[crit]" not in log, log[-500:]


# ----------------------------------------- nginx side of the contract ---


def test_http10_without_host_is_answered_with_the_server_name(hbox):
    status, _, _ = raw_request(hbox, "GET /.well-known/tiramisu/health HTTP/1.0\r\n\r\n")
    assert status == 200
    status, _, body = raw_request(hbox, "GET /echo/ HTTP/1.0\r\n\r\n")
    assert status == 200, body[:300]
    env = guest_env(body)
    # nginx sends Host: <server_name>, the address the box is reached at
    assert hbox.hostname in (env.get("HTTP_HOST"), env.get("SERVER_NAME")), env


def test_client_address_and_public_port_reach_the_guest(hbox):
    """REMOTE_ADDR is the client's address, SERVER_PORT the public port (nginx's X-Real-IP, X-Forwarded-Port)."""
    with socket.create_connection((hbox.hostname, 8080)) as s:
        me = s.getsockname()[0]  # this machine's address on the box's link
    status, _, body = raw_request(hbox, "GET /echo/ HTTP/1.0\r\n\r\n")
    assert status == 200
    env = guest_env(body)
    assert env.get("REMOTE_ADDR") == me and env.get("SERVER_PORT") == "8080", env
    assert env.get("SERVER_NAME") == hbox.hostname, env
    assert env.get("CONTENT_LENGTH") == "0"  # a GET without a body: "0", as WAGI


def test_x_accel_from_a_guest_is_neither_obeyed_nor_forwarded(hbox):
    started = time.monotonic()
    status, headers, body = raw_request(hbox, "GET /xaccel/ HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"xaccel body\n"  # not the echo app's answer
    assert not [h for h in headers if h.startswith("x-accel")], headers
    assert time.monotonic() - started < 5  # X-Accel-Limit-Rate: 1 byte/s was not applied


def test_a_12kib_response_header_passes_nginx(hbox):
    status, headers, body = raw_request(hbox, "GET /bighdr/?12288 HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    assert status == 200, body[:200]
    assert len(headers["x-big"]) == 12288 and body == b"big header sent\n"


def test_hop_by_hop_fields_from_a_guest_never_reach_a_client(hbox):
    status, headers, body = raw_request(hbox, "GET /cgiout/?hop HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    assert status == 200 and body == b"hop\n"
    assert headers.get("x-kept") == "yes"
    assert not {"upgrade", "te", "proxy-connection", "trailer"} & set(headers), headers


def test_a_response_header_over_the_limit_is_a_deliberate_500(hbox):
    """Over max_response_header (16 KiB) the server answers 500 itself and
    says why; nginx never sees a head it cannot buffer (no 502)."""
    status, _, _ = raw_request(hbox, "GET /cgiout/?big=20000 HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    assert status == 500
    proc = cli("tiramisu", "webserv.logs", "--host", "box", "--which", "server", "--lines", "50")
    assert "max-response-header = 16384 bytes" in proc.stdout


@pytest.mark.parametrize("code", [3, 126, 255])
def test_exit_codes_are_logged_with_their_value(hbox, code):
    status, _, _ = raw_request(hbox, f"GET /cgiout/?exit={code} HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
    assert status == 500
    deadline = time.time() + 10
    while True:
        proc = cli("tiramisu", "webserv.logs", "--host", "box", "--which", "server", "--lines", "50")
        if f"guest exited with status {code}" in proc.stdout or time.time() > deadline:
            break
        time.sleep(0.3)
    assert f"failed (exit): guest exited with status {code}" in proc.stdout


# --------------------------------------------------- case 9: orphans ---


def _status(host_name="box"):
    proc = cli("tiramisu", "webserv.status", "--host", host_name, "--json")
    return proc.returncode, host_result(proc)


def _nginx_family(host):
    """{pid: ppid} of every nginx process on the box."""
    out = host.ssh(f"for p in {ENV_NGINX}; do echo $p $(awk '{{print $4}}' /proc/$p/stat); done", check=True).stdout
    return {int(a): int(b) for a, b in (line.split() for line in out.splitlines())}


def test_orphaned_nginx_worker_is_reported_and_start_cleans_it(hbox):
    code, st = _status()
    assert code == 0 and st["services"]["nginx"]["orphans"] == []
    master = st["services"]["nginx"]["pid"]
    workers = [p for p, pp in _nginx_family(hbox).items() if pp == master]
    assert workers
    hbox.netns_exec(["kill", "-9", str(master)], check=True)
    time.sleep(0.5)
    code, st = _status()
    nginx = st["services"]["nginx"]
    assert code == 1 and not st["healthy"]
    assert nginx["state"] == "orphaned" and nginx["orphans"] == sorted(workers)
    human = cli("tiramisu", "webserv.status", "--host", "box")
    assert "orphaned" in human.stdout and str(workers[0]) in human.stdout and human.returncode == 1

    proc = cli("tiramisu", "webserv.start", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    assert "orphaned" in proc.stderr + proc.stdout
    code, st = _status()
    assert code == 0 and st["healthy"] and st["services"]["nginx"]["orphans"] == []
    family = _nginx_family(hbox)
    new_master = st["services"]["nginx"]["pid"]
    assert not set(workers) & set(family)
    assert all(p == new_master or pp == new_master for p, pp in family.items())  # one nginx on the port
    assert get(url(hbox, "/.well-known/tiramisu/health"))[0] == 200


def test_stop_stops_orphans_too(hbox):
    _, st = _status()
    hbox.netns_exec(["kill", "-9", str(st["services"]["nginx"]["pid"])], check=True)
    time.sleep(0.3)
    assert _nginx_family(hbox)  # the orphaned workers still serve
    proc = cli("tiramisu", "webserv.stop", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    assert "orphaned" in proc.stdout
    assert _nginx_family(hbox) == {}
    with pytest.raises(OSError):
        socket.create_connection((hbox.hostname, 8080), timeout=3).close()
    code, st = _status()
    assert {s["state"] for s in st["services"].values()} == {"stopped"}
    assert cli("tiramisu", "webserv.start", "--host", "box").returncode == 0
    assert _status()[0] == 0


# ------------------------------------ Host, connections, settings ---


def test_the_clients_host_reaches_the_guest_port_included(hbox):
    """nginx passes the client's Host as sent; the server name only when there is none."""
    status, _, body = raw_request(hbox, "GET /echo/x?q=1 HTTP/1.1\r\nHost: box:8080\r\nConnection: close\r\n\r\n")
    assert status == 200, body[:300]
    env = guest_env(body)
    assert env.get("HTTP_HOST") == "box:8080" and env.get("X_FULL_URL") == "http://box:8080/echo/x?q=1", env
    status, _, body = raw_request(hbox, "GET /echo/ HTTP/1.0\r\n\r\n")
    assert status == 200, body[:300]
    assert guest_env(body).get("HTTP_HOST") == hbox.hostname


def test_nginx_open_files_stay_within_the_boxs_hard_limit(hbox):
    from tiramisu_tasks.render import nginx_limits

    hard = hbox.ssh("ulimit -Hn", check=True).stdout.strip()
    limits = nginx_limits(hard)
    conf = hbox.ssh("cat tiramisu-env/conf/nginx.conf", check=True).stdout
    assert f"worker_connections {limits['nginx_connections']};" in conf
    assert ("worker_rlimit_nofile" in conf) == (limits["nginx_rlimit_nofile"] is not None)
    log = hbox.ssh("cat tiramisu-env/logs/nginx-error.log", check=True).stdout
    assert "setrlimit" not in log and "exceed open file resource limit" not in log, log[-2000:]


def test_1500_idle_connections_leave_the_public_port_serving(hbox):
    idle = []
    try:
        for _ in range(1500):
            idle.append(socket.create_connection((hbox.hostname, 8080), timeout=10))
        time.sleep(0.5)
        assert get(url(hbox, "/.well-known/tiramisu/health"))[0] == 200
        status, _, _ = raw_request(hbox, "GET /echo/ HTTP/1.0\r\n\r\n")
        assert status == 200
    finally:
        for s in idle:
            s.close()


def test_a_setting_in_inventory_defaults_reaches_server_conf(hbox):
    """Inventory ``defaults:`` apply to setup (they were read and ignored)."""
    from tiramisu_tasks.inventory import locked_inventory

    path = os.environ["TIRAMISU_INVENTORY"]
    with locked_inventory(path) as inv:
        inv.defaults.update(request_timeout_ms=1500, app_queue=7)
    try:
        proc = cli("tiramisu", "setup", "--host", "box")
        assert proc.returncode == 0, proc.stderr
        conf = hbox.ssh("cat tiramisu-env/conf/server.conf", check=True).stdout
        assert "\ntimeout-ms = 1500\n" in conf and "\napp-queue = 7\n" in conf, conf
        assert "proxy_read_timeout 7s;" in hbox.ssh("cat tiramisu-env/conf/nginx.conf", check=True).stdout
        assert get(url(hbox, "/.well-known/tiramisu/health"))[0] == 200
        status, _, _ = raw_request(hbox, "GET /echo/ HTTP/1.0\r\n\r\n")
        assert status == 200
    finally:
        with locked_inventory(path) as inv:
            inv.defaults.clear()
