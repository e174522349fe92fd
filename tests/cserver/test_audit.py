"""Inputs that once broke custom_server (found by review and hardening), sent straight to it.

Each test replays one input that failed before and checks the right value.
The memory-safety cases also run against a build with AddressSanitizer and
UndefinedBehaviorSanitizer (`asan_server`), whose reports fail the test.
"""

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.server import REPO

from .test_server import env_of

SRC = REPO / "cserver"


# ------------------------------------------------------------ fixtures ---


@pytest.fixture(scope="session")
def asan_server(server_build, tmp_path_factory):
    """custom_server built with -fsanitize=address,undefined against the same Wasmtime library."""
    cc = shutil.which("clang") or shutil.which("clang-14")
    if not cc:
        pytest.skip("the sanitizer build needs clang (apt-get install clang libclang-rt-14-dev)")
    out = tmp_path_factory.mktemp("asan-build")
    (out / "bin").mkdir()
    lib = server_build / "lib"
    argv = [
        cc,
        "-std=c11",
        "-D_GNU_SOURCE",
        "-pthread",
        "-g",
        "-O1",
        "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined",
        "-fno-sanitize-recover=undefined",
        '-DTS_VERSION="asan"',
        '-DTS_WASMTIME_VERSION="asan"',
        "-I",
        str(SRC),
        *map(str, sorted(SRC.glob("ts_*.c"))),
        "-o",
        str(out / "bin" / "custom_server"),
        "-L",
        str(lib),
        "-lwasmtime",
        f"-Wl,-rpath,{lib}",
        "-ldl",
        "-lm",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "bin" / "custom_server"


# Wasmtime handles its own faults (traps) with signal handlers: ASan must not
# take SIGSEGV/SIGBUS first. Leaks at exit are not what these tests look for.
ASAN_ENV = {
    "ASAN_OPTIONS": "handle_segv=0:handle_sigbus=0:detect_leaks=0:abort_on_error=0",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}


@pytest.fixture(params=["plain", "asan"])
def any_build(request, run_server):
    """run_server for the normal build and for the sanitizer build."""
    if request.param == "plain":
        return run_server
    binary = request.getfixturevalue("asan_server")

    def start(*args, **kwargs):
        return run_server(*args, binary=binary, env=dict(os.environ, **ASAN_ENV), **kwargs)

    return start


def sanitizer_reports(srv):
    text = srv.stderr()
    return [line for line in text.splitlines() if "Sanitizer" in line or "runtime error" in line]


def connect(srv, timeout=10):
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_response(sock, timeout=10):
    """One HTTP/1.1 response with Content-Length: (status, headers dict lowercased, body)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data[:200]!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(rest) < length:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed inside a body")
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture
def guests_dir(wasm_guests, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    for name in ("echo", "hello", "bigout", "cgiout", "stderr_exit"):
        shutil.copy(wasm_guests[name], mods / f"{name}.wasm")
    return mods


# ------------------------------------ views into the buffer, no Host ---


@pytest.mark.parametrize("body_len", [0, 1, 15000, 16384, 100000, 1 << 20])
def test_cgi_variables_come_from_the_requests_own_host(any_build, guests_dir, body_len):
    """A head sent alone, the body trickling in while the buffer grows: the
    CGI variables are the request's own Host, never bytes of another client."""
    srv = any_build(guests_dir, max_body="2m", workers=1)
    victim = connect(srv)
    head = (f"POST /echo/x?q=1 HTTP/1.1\r\nHost: victim.example:4242\r\nContent-Length: {body_len}\r\n\r\n").encode()
    victim.sendall(head)
    stop = threading.Event()

    def noisy_neighbour():
        # another client's header bytes, over and over, on the same worker
        while not stop.is_set():
            try:
                s = connect(srv, timeout=5)
                s.sendall(b"GET /hello/ HTTP/1.1\r\nHost: other\r\nX-Secret: " + b"S" * 3000 + b"\r\n\r\n")
                read_response(s)
                s.close()
            except OSError:
                pass

    t = threading.Thread(target=noisy_neighbour, daemon=True)
    t.start()
    try:
        body = bytes((i * 7) % 251 for i in range(body_len))
        piece = 8192
        for off in range(0, body_len, piece):
            victim.sendall(body[off : off + piece])
            time.sleep(0.002 if body_len > 200000 else 0.02)
        status, _, data, _ = read_response(victim, timeout=30)
    finally:
        stop.set()
        t.join(10)
        victim.close()
    assert status == 200, data[:300]
    env, _, stdin = env_of(data)
    assert env["SERVER_NAME"] == "victim.example"
    assert env["X_FULL_URL"] == "http://victim.example:4242/echo/x?q=1"
    assert env["CONTENT_LENGTH"] == str(body_len)
    assert stdin == body
    assert b"SSSS" not in data
    assert not sanitizer_reports(srv), sanitizer_reports(srv)


@pytest.mark.parametrize("split", ["head-alone", "byte-by-byte-head", "with-body", "chunked"])
def test_every_split_of_head_and_body(any_build, guests_dir, split):
    srv = any_build(guests_dir, max_body="1m", workers=1)
    body = b"0123456789" * 3000
    if split == "chunked":
        chunks = (
            b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7000]), body[i : i + 7000]) for i in range(0, len(body), 7000))
            + b"0\r\n\r\n"
        )
        msg = b"POST /echo/ HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    else:
        msg = b"POST /echo/ HTTP/1.1\r\nHost: h.example\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    head_len = msg.index(b"\r\n\r\n") + 4
    s = connect(srv)
    try:
        if split == "byte-by-byte-head":
            for i in range(head_len):
                s.sendall(msg[i : i + 1])
            s.sendall(msg[head_len:])
        elif split == "head-alone":
            s.sendall(msg[:head_len])
            time.sleep(0.05)
            for i in range(head_len, len(msg), 5000):
                s.sendall(msg[i : i + 5000])
                time.sleep(0.01)
        else:
            for i in range(0, len(msg), 4099):
                s.sendall(msg[i : i + 4099])
        status, _, data, _ = read_response(s)
    finally:
        s.close()
    assert status == 200
    env, _, stdin = env_of(data)
    assert env["SERVER_NAME"] == "h.example" and stdin == body
    assert not sanitizer_reports(srv)


def test_http10_without_host(any_build, guests_dir):
    """HTTP/1.0 has no Host: the configured server name stands in, no undefined behaviour."""
    srv = any_build(guests_dir, server_name="box.example")
    s = connect(srv)
    try:
        s.sendall(b"GET /echo/ HTTP/1.0\r\n\r\n")
        status, _, data, _ = read_response(s)
    finally:
        s.close()
    assert status == 200
    env, _, _ = env_of(data)
    assert env["SERVER_NAME"] == "box.example"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    # an HTTP/1.1 request with an empty Host is valid too (RFC 9112 3.2)
    s = connect(srv)
    try:
        s.sendall(b"GET /echo/ HTTP/1.1\r\nHost:\r\n\r\n")
        status, _, data, _ = read_response(s)
    finally:
        s.close()
    assert status == 200 and env_of(data)[0]["SERVER_NAME"] == "box.example"
    assert not sanitizer_reports(srv)


# ------------------------------- pipelining, compaction, resets ---


def test_forty_pipelined_requests_all_answered_at_once(run_server, guests_dir):
    srv = run_server(guests_dir, idle_timeout_ms=20000)
    s = connect(srv)
    try:
        s.sendall(b"".join(b"GET /nope%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(40)))
        rest = b""
        statuses = []
        for _ in range(40):
            s.settimeout(5)  # far below the 20 s idle timeout that answered them before
            buf = rest
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, rest = buf.partition(b"\r\n\r\n")
            length = int(
                [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1]
            )
            while len(rest) < length:
                rest += s.recv(65536)
            rest = rest[length:]
            statuses.append(int(head.split(b" ")[1]))
    finally:
        s.close()
    assert statuses == [404] * 40


def test_pipelined_guest_requests_beyond_the_output_queue(run_server, guests_dir):
    srv = run_server(guests_dir, idle_timeout_ms=20000)
    s = connect(srv)
    try:
        s.sendall(b"".join(b"GET /hello/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(100)))
        rest = b""
        for i in range(100):
            s.settimeout(10)
            buf = rest
            while b"\r\n\r\n" not in buf:
                buf += s.recv(65536)
            head, _, rest = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), (i, head)
            length = int(
                [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1]
            )
            while len(rest) < length:
                rest += s.recv(65536)
            rest = rest[length:]
    finally:
        s.close()


def test_two_pipelined_large_posts(run_server, guests_dir):
    """The second request's head arrives with the first body's last byte: both answered."""
    srv = run_server(guests_dir, max_body="8m", idle_timeout_ms=20000)
    size = 6 * 1024 * 1024
    body = b"b" * size
    one = b"POST /hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    s = connect(srv, timeout=30)
    try:
        s.sendall(one + body[:-1])
        s.sendall(body[-1:] + one)  # one packet: the end of #1 and the head of #2
        s.sendall(body)
        status1, _, _, rest = read_response(s, timeout=30)
        # the second response may already be in `rest`
        s2 = _Prebuffered(s, rest)
        status2, _, _, _ = read_response(s2, timeout=30)
    finally:
        s.close()
    assert (status1, status2) == (200, 200)


class _Prebuffered:
    """A socket whose first recv returns bytes already read."""

    def __init__(self, sock, data):
        self.sock, self.data = sock, data

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        if self.data:
            out, self.data = self.data[:n], self.data[n:]
            return out
        return self.sock.recv(n)


def test_reset_with_a_full_output_queue_does_not_spin(run_server, guests_dir):
    srv = run_server(guests_dir, idle_timeout_ms=30000, max_output="16m")
    s = connect(srv)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(
        b"".join(b"GET /bigout/?4096 HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(20))
        + b"POST /hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
        + b"x" * 50000
    )
    time.sleep(1.0)  # the server has queued what it may and stopped reading
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # RST
    time.sleep(0.3)
    before = cpu_seconds(srv.proc.pid)
    time.sleep(1.5)
    used = cpu_seconds(srv.proc.pid) - before
    assert used < 0.5, f"server used {used:.2f} s of CPU in 1.5 s after a reset (spinning)"
    status, _, _ = srv.get("/hello/")
    assert status == 200


# ------------------------------ fd limits, output back-pressure ---


def test_fd_limit_pauses_accepting_without_spinning(run_server, guests_dir):
    """With more connections than open files allow, the server backs off
    (no busy loop) and serves again once connections close."""
    prlimit = shutil.which("prlimit")
    if not prlimit:
        pytest.skip("needs prlimit (util-linux)")
    # soft = hard: the server's auto setting cannot raise it
    srv = run_server(guests_dir, prefix=(prlimit, "--nofile=48:48", "--"))
    socks = []
    try:
        for _ in range(80):
            try:
                socks.append(socket.create_connection((srv.host, srv.port), timeout=2))
            except OSError:
                break
        time.sleep(0.5)
        before = cpu_seconds(srv.proc.pid)
        time.sleep(1.5)
        used = cpu_seconds(srv.proc.pid) - before
        assert used < 0.5, f"server used {used:.2f} s of CPU in 1.5 s at the fd limit (spinning)"
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    status, _, _ = srv.get("/hello/", timeout=10)
    assert status == 200
    assert "accept paused" in srv.server_log.read_text()


def test_max_connections_setting(run_server, guests_dir):
    srv = run_server(guests_dir, max_connections=4)
    held = [connect(srv) for _ in range(4)]
    try:
        for s in held:
            s.sendall(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(s)[0] == 200
        extra = connect(srv)  # in the kernel's backlog: not accepted while 4 are open
        extra.sendall(b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        extra.settimeout(0.5)
        with pytest.raises(socket.timeout):
            extra.recv(100)
        held.pop().close()
        assert read_response(extra, timeout=5)[0] == 200
        extra.close()
    finally:
        for s in held:
            s.close()


def test_output_back_pressure_bounds_memory(run_server, guests_dir):
    """Clients pipelining requests for 8 MiB responses and never reading
    cannot make the server queue them all."""
    srv = run_server(guests_dir, idle_timeout_ms=30000, max_output="16m")
    time.sleep(0.3)
    base = rss_mib(srv.proc.pid)
    socks = []
    try:
        for _ in range(2):
            s = connect(srv)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"".join(b"GET /bigout/?8192 HTTP/1.1\r\nHost: x\r\n\r\n" for _ in range(40)))
            socks.append(s)
        peak = base
        for _ in range(30):
            time.sleep(0.1)
            peak = max(peak, rss_mib(srv.proc.pid))
    finally:
        for s in socks:
            s.close()
    # before: 17 -> 502 MiB; now one response per connection (plus one in
    # the making) is queued: a few times 8 MiB
    assert peak - base < 100, f"RSS grew {peak - base:.0f} MiB"


# ------------------------------- what a guest may send, exit codes ---


def test_guest_cannot_send_hop_by_hop_or_proxy_control_fields(run_server, guests_dir):
    srv = run_server(guests_dir)
    for query, body in (("hop", b"hop\n"), ("xaccel", b"xaccel\n")):
        status, headers, data = srv.get(f"/cgiout/?{query}")
        names = {k.lower() for k, _ in headers}
        assert status == 200 and data == body
        assert "x-kept" in names
        assert not names & {"upgrade", "te", "proxy-connection", "keep-alive", "trailer"}
        assert not any(n.startswith("x-accel-") for n in names)


def test_status_outside_the_range_never_reaches_a_client(run_server, guests_dir):
    srv = run_server(guests_dir)
    assert srv.get("/cgiout/?status=599")[0] == 599
    for bad in ("600", "999", "099", "1000"):
        assert srv.get(f"/cgiout/?status={bad}")[0] == 500, bad


def test_response_header_limit(run_server, guests_dir):
    srv = run_server(guests_dir, max_response_header="16k")
    status, headers, _ = srv.get("/cgiout/?big=4096")
    assert status == 200 and len(dict(headers)["X-Big"]) == 4096
    status, _, _ = srv.get("/cgiout/?big=20000")
    assert status == 500
    time.sleep(0.2)
    assert "max-response-header = 16384 bytes" in srv.server_log.read_text()


@pytest.mark.parametrize("code", [1, 3, 125, 126, 255])
def test_every_nonzero_exit_is_logged_with_its_code(run_server, guests_dir, code):
    srv = run_server(guests_dir)
    status, _, _ = srv.get(f"/cgiout/?exit={code}")
    assert status == 500
    deadline = time.time() + 5
    while time.time() < deadline:
        if f"guest exited with status {code}" in srv.server_log.read_text():
            break
        time.sleep(0.05)
    assert f"failed (exit): guest exited with status {code}" in srv.server_log.read_text()
    assert srv.get("/cgiout/?exit=0")[0] == 200


# ------------------------------------------------------ hardening 6, 7 ---


def test_cgi_variables_behind_the_boxs_nginx(run_server, guests_dir):
    """REMOTE_ADDR and SERVER_PORT are the client's and the public port, as
    nginx reports them (X-Real-IP, X-Forwarded-Port) to a loopback peer."""
    srv = run_server(guests_dir)
    status, _, data = srv.get(
        "/echo/", headers={"Host": "alias.test", "X-Real-IP": "127.0.0.2", "X-Forwarded-Port": "8080"}
    )
    env, _, _ = env_of(data)
    assert status == 200
    assert env["REMOTE_ADDR"] == "127.0.0.2"
    assert env["SERVER_PORT"] == "8080"
    assert env["SERVER_NAME"] == "alias.test"
    assert env["CONTENT_LENGTH"] == "0"  # a GET without a body: "0", as WAGI
    # malformed values are ignored, not passed on
    status, _, data = srv.get("/echo/", headers={"Host": "a", "X-Real-IP": '1.2.3.4" x', "X-Forwarded-Port": "99999"})
    env, _, _ = env_of(data)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_PORT"] == str(srv.port)
    # a POST with an empty body has CONTENT_LENGTH 0
    status, _, data = srv.get("/echo/", method="POST", body=b"", headers={"Host": "a"})
    assert env_of(data)[0]["CONTENT_LENGTH"] == "0"


def test_access_log_escapes_request_bytes(run_server, guests_dir):
    srv = run_server(guests_dir)
    s = connect(srv)
    try:
        s.sendall(b'GET /hello/a"b\\c HTTP/1.1\r\nHost: x\r\n\r\n')
        read_response(s)
    finally:
        s.close()
    deadline = time.time() + 3
    text = ""
    while time.time() < deadline and "hello" not in text:
        time.sleep(0.1)
        text = srv.access_log.read_text()
    line = [ln for ln in text.splitlines() if "/hello/" in ln][-1]
    assert "/hello/a\\x22b\\x5cc" in line
    assert line.count('"') == 2


# ------------------------------------------- the stateful connection fuzzer ---


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_connection_fuzzer_under_sanitizers(run_server, asan_server, guests_dir, seed):
    """Whole random connections (splits, pipelining, resets, broken heads)
    through the real connection code of the sanitizer build: no report, and
    the server keeps answering."""
    from tests.cserver import connfuzz

    srv = run_server(
        guests_dir,
        binary=asan_server,
        env=dict(os.environ, **ASAN_ENV),
        max_body="1m",
        timeout_ms=2000,
        idle_timeout_ms=3000,
        workers=2,
    )
    stats = connfuzz.run(srv.host, srv.port, seconds=12, seed=seed)
    assert srv.proc.poll() is None, srv.stderr()[-3000:]
    assert not sanitizer_reports(srv), srv.stderr()[-5000:]
    assert srv.get("/hello/")[0] == 200
    assert stats["executions"] > 20 and stats["responses"] > 20, stats
    print("connfuzz", stats)


# ------------------------------------------------ found by a new user ---


def test_fields_named_in_a_guests_connection_header_are_dropped(run_server, guests_dir):
    srv = run_server(guests_dir)
    status, headers, body = srv.get("/cgiout/?conn")
    names = {k.lower() for k, _ in headers}
    assert status == 200 and body == b"conn\n"
    assert "x-kept" in names and "x-private" not in names


@pytest.mark.parametrize("host", ["a/b", "a b", "[::1", "x:abc", ":80", "user@h"])
def test_malformed_host_is_a_400(run_server, guests_dir, host):
    srv = run_server(guests_dir)
    s = connect(srv)
    try:
        s.sendall(f"GET /echo/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        status, _, _, _ = read_response(s)
    finally:
        s.close()
    assert status == 400


def test_absolute_form_host_wins_over_the_host_header(run_server, guests_dir):
    srv = run_server(guests_dir)
    s = connect(srv)
    try:
        s.sendall(b"GET http://abs.example:4242/echo/x HTTP/1.1\r\nHost: other.example\r\n\r\n")
        status, _, data, _ = read_response(s)
    finally:
        s.close()
    env, _, _ = env_of(data)
    assert status == 200 and env["SERVER_NAME"] == "abs.example"
    assert env["X_FULL_URL"] == "http://abs.example:4242/echo/x"


def test_proxy_request_header_never_becomes_http_proxy(run_server, guests_dir):
    """httpoxy: CGI libraries read HTTP_PROXY as their outgoing proxy."""
    srv = run_server(guests_dir)
    status, _, data = srv.get("/echo/", headers={"Host": "h", "Proxy": "http://evil.example:3128"})
    env, _, _ = env_of(data)
    assert status == 200 and "HTTP_PROXY" not in env


def test_a_guest_cannot_fill_the_disk_through_stderr(run_server, guests_dir):
    """An app's stderr log is rotated at max-app-log: at most twice that on disk."""
    srv = run_server(guests_dir, max_app_log="64k")
    for _ in range(3):
        assert srv.get("/cgiout/?err=200")[0] == 200
    log = srv.app_log("cgiout")
    rotated = log.with_name(log.name + ".1")
    assert rotated.exists()
    assert log.stat().st_size <= 64 * 1024 and rotated.stat().st_size <= 64 * 1024
    # unlimited when 0
    srv2 = run_server(guests_dir, max_app_log="0")
    assert srv2.get("/cgiout/?err=100")[0] == 200
    assert srv2.app_log("cgiout").stat().st_size >= 100 * 1024
