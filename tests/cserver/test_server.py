"""The real custom_server over real sockets, with real guests (zig-built C and WAT)."""

import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

from tests.fixtures.server import install_module, sha256_bytes


def raw_exchange(srv, data, read_until_close=True, timeout=10):
    """Send raw bytes, return everything the server sent until it closed (or timeout)."""
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            if not b:
                break
            chunks.append(b)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


def status_of(raw):
    return int(raw.split(b" ", 2)[1])


def env_of(body):
    env, argv = {}, []
    text, _, stdin = body.partition(b"---stdin---\n")
    for line in text.decode().splitlines():
        if line.startswith("env:"):
            k, _, v = line[4:].partition("=")
            env[k] = v
        elif line.startswith("argv["):
            argv.append(line.split("=", 1)[1])
    return env, argv, stdin


@pytest.fixture
def srv(run_server, wasm_guests, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    for name in ("echo", "raw", "hello", "loop", "trap", "alloc", "grow", "bigout", "stderr_exit", "fd_write"):
        shutil.copy(wasm_guests[name], mods / f"{name}.wasm")
    return run_server(
        mods,
        timeout_ms=1000,
        memory_mb=32,
        max_output="256k",
        max_body="64k",
        max_header="4k",
        max_headers=20,
        max_request_line=1024,
        idle_timeout_ms=1500,
    )


# ---------------------------------------------------------------- WAGI ---


def test_wagi_environment_argv_and_stdin(srv):
    status, headers, body = srv.get(
        "/echo/some/pa%20th?a=1&b=two&flag",
        method="POST",
        body=b"hello body",
        headers={"Content-Type": "text/x-test", "X-Custom-Thing": "v1", "Host": "example.test:8123"},
    )
    assert status == 200
    assert ("X-Guest", "echo") in headers
    env, argv, stdin = env_of(body)
    assert argv == ["/echo/some/pa%20th", "a=1", "b=two", "flag"]
    assert stdin == b"hello body"
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/echo"
    assert env["PATH_INFO"] == "/some/pa th"
    assert env["X_RAW_PATH_INFO"] == "/some/pa%20th"
    assert env["QUERY_STRING"] == "a=1&b=two&flag"
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["SERVER_NAME"] == "example.test"
    assert env["SERVER_PORT"] == str(srv.port)  # the port it was received on (RFC 3875 4.1.15)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["HTTP_X_CUSTOM_THING"] == "v1"
    assert env["X_FULL_URL"] == "http://example.test:8123/echo/some/pa%20th?a=1&b=two&flag"
    assert env["X_MATCHED_ROUTE"] == "/echo"


@pytest.mark.parametrize(
    "output, status, expect_headers, body",
    [
        (b"Content-Type: text/plain\n\nplain LF", 200, [("Content-Type", "text/plain")], b"plain LF"),
        (b"Content-Type: text/plain\r\n\r\nCRLF", 200, [("Content-Type", "text/plain")], b"CRLF"),
        (b"Content-Type: text/html\nX-A: 1\nStatus: 201 Made It\n\n<p>", 201, [("X-A", "1")], b"<p>"),
        (b"Location: /elsewhere\n\n", 302, [("Location", "/elsewhere")], b""),
        (b"Location: /x\nStatus: 307\n\n", 307, [("Location", "/x")], b""),
        (b"Set-Cookie: a=1\nContent-Type: text/plain\nSet-Cookie: b=2\n\nc", 200, [], b"c"),
        (b"X-Only: header\n\nno content type", 500, [], None),
        (b"not a header line\n\n", 500, [], None),
        (b"Status: 404 Nope\nContent-Type: text/plain\n\nmissing", 404, [], b"missing"),
    ],
    ids=[
        "lf",
        "crlf",
        "status-anywhere",
        "location-302",
        "location-with-status",
        "dup-cookies",
        "no-content-type-500",
        "malformed-500",
        "status-404",
    ],
)
def test_cgi_output_parsing(srv, output, status, expect_headers, body):
    got, headers, data = srv.get("/raw", method="POST", body=output)
    assert got == status
    for h in expect_headers:
        assert h in headers
    if body is not None:
        assert data == body
    if output.startswith(b"Set-Cookie"):
        assert [v for k, v in headers if k == "Set-Cookie"] == ["a=1", "b=2"]


def test_status_reason_kept_and_head_has_no_body(srv):
    raw = raw_exchange(srv, b"HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"Content-Length: 13" in head
    assert rest == b""


def test_unknown_app_404_and_admin(srv):
    assert srv.get("/nope")[0] == 404
    assert srv.get("/")[0] == 404
    status, _, body = srv.get("/_tiramisu/health")
    assert status == 200 and json.loads(body)["status"] == "ok"
    # what a local proxy forwarded is not an admin client
    assert srv.get("/_tiramisu/health", headers={"X-Forwarded-For": "203.0.113.9"})[0] == 404
    apps = {a["name"]: a for a in srv.apps()["apps"]}
    assert apps["hello"]["state"] == "active" and len(apps["hello"]["sha256"]) == 64
    srv.get("/hello")
    status, headers, metrics = srv.get("/_tiramisu/metrics")
    assert status == 200
    text = metrics.decode()
    assert 'tiramisu_requests_total{app="hello",status="200"}' in text
    assert "tiramisu_request_duration_seconds_bucket" in text
    assert "tiramisu_instances_total" in text and "tiramisu_swaps_total" in text
    assert "tiramisu_compile_errors_total" in text


# ------------------------------------------------------- isolation/limits ---


def test_guest_limits(srv):
    t0 = time.time()
    assert srv.get("/loop")[0] == 504
    assert time.time() - t0 < 5
    assert srv.get("/trap")[0] == 500
    assert srv.get("/alloc")[0] == 500
    assert srv.get("/grow")[0] == 500
    assert srv.get("/bigout?8")[0] == 200
    assert srv.get("/bigout?1024")[0] == 500  # over max-output 256k
    assert srv.get("/stderr_exit?3")[0] == 500
    assert srv.get("/stderr_exit")[0] == 200
    # the server survived all of it
    assert srv.get("/hello")[0] == 200
    log = srv.server_log.read_text()
    assert "app loop" in log and "timeout" in log
    assert "app trap" in log and "unreachable" in log
    assert "guest exited with status 3" in log
    assert "guest stderr line" in srv.app_log("stderr_exit").read_text()


def test_fd_write_errno_and_bounds(srv):
    """The server's own fd_write and fd_fdstat_get answer as Wasmtime's WASI does."""
    status, _, body = srv.get("/fd_write")
    assert (status, body) == (200, b"fd3=08 fd0=08 fd2=00 st3=08 r0=02 r1=64\n")
    assert "to the log" in srv.app_log("fd_write").read_text()
    assert srv.get("/fd_write?oob")[0] == 500
    assert "pointer out of bounds" in srv.server_log.read_text()
    assert srv.get("/hello")[0] == 200


def test_fresh_instance_per_request(srv, run_server, tmp_path, wat_module):
    counter = wat_module("""
    (module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory 1) (export "memory" (memory 0))
      (global $n (mut i32) (i32.const 48))
      (data (i32.const 64) "Content-Type: text/plain\\n\\nX\\n")
      (func (export "_start")
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (i32.store8 (i32.const 90) (global.get $n))
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 28))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    install_module(srv.modules, "counter", counter)
    srv.wait_app("counter", sha256_bytes(counter))
    assert {srv.get("/counter")[2] for _ in range(5)} == {b"1\n"}


# ------------------------------------------------------------------ HTTP ---


def test_keepalive_and_pipelining_in_order(srv):
    reqs = b"".join(
        b"GET /raw HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
        for b in [b"Content-Type: text/plain\n\nreq%d" % i for i in range(5)]
    )
    reqs += b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    raw = raw_exchange(srv, reqs)
    bodies = [part for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert len(bodies) == 6
    for i in range(5):
        assert bodies[i].endswith(b"req%d" % i)
    assert bodies[5].endswith(b"hello from C\n")


def test_chunked_request_body(srv):
    body = b"Content-Type: text/plain\n\nchunked ok"
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
    raw = raw_exchange(
        srv,
        b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunks
        + b"0\r\nTrailer: x\r\n\r\n",
    )
    assert status_of(raw) == 200 and raw.endswith(b"chunked ok")


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n", 431),
        (b"GET /hello HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(30)) + b"\r\n", 431),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 413),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /raw HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n20000\r\n" + b"a" * 70000, 413),
    ],
    ids=[
        "garbage",
        "no-host",
        "bad-header",
        "obs-fold",
        "http2",
        "uri-too-long",
        "header-too-big",
        "too-many-headers",
        "body-too-large",
        "te-gzip",
        "dup-length",
        "te-and-length",
        "bad-chunk",
        "chunked-too-large",
    ],
)
def test_bad_requests_get_the_right_status(srv, request_bytes, status):
    raw = raw_exchange(srv, request_bytes)
    assert raw, "no response"
    assert status_of(raw) == status
    assert srv.get("/hello")[0] == 200


def test_idle_timeout_408_for_partial_request(srv):
    t0 = time.time()
    raw = raw_exchange(srv, b"GET /hello HTTP/1.1\r\nHost: x\r\n", timeout=10)
    assert status_of(raw) == 408
    assert 1.0 < time.time() - t0 < 6


def test_expect_100_continue(srv):
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    body = b"Content-Type: text/plain\n\ncontinued"
    s.sendall(b"POST /raw HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(body)
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"continued")


def test_access_log_lines(srv):
    srv.get("/hello?x=1")
    time.sleep(0.5)
    lines = srv.access_log.read_text().splitlines()
    assert any('"GET /hello?x=1 HTTP/1.1" 200 13 ' in ln and ln.endswith(" hello") for ln in lines), lines


# ---------------------------------------------------------------- routes ---


def test_routes_file_longest_prefix(run_server, wasm_guests, tmp_path):
    mods = tmp_path / "m"
    mods.mkdir()
    shutil.copy(wasm_guests["echo"], mods / "echo.wasm")
    shutil.copy(wasm_guests["hello"], mods / "hello.wasm")
    routes = tmp_path / "routes.conf"
    routes.write_text("# comment\n/ hello\n/api echo\n/api/v2/ hello\n")
    srv = run_server(mods, routes=str(routes))
    assert srv.get("/")[2] == b"hello from C\n"
    assert srv.get("/whatever/else")[2] == b"hello from C\n"
    env, _, _ = env_of(srv.get("/api/users?id=3")[2])
    assert env["SCRIPT_NAME"] == "/api" and env["PATH_INFO"] == "/users" and env["X_MATCHED_ROUTE"] == "/api"
    assert srv.get("/api/v2/x")[2] == b"hello from C\n"
    assert srv.get("/apix")[2] == b"hello from C\n"  # segment-aware: /apix is not under /api
    env, _, _ = env_of(srv.get("/echo/a")[2])  # implicit /<app> route still works
    assert env["SCRIPT_NAME"] == "/echo"
    # SIGHUP reloads routes
    routes.write_text("/ echo\n")
    srv.signal(signal.SIGHUP)
    deadline = time.time() + 5
    while time.time() < deadline and b"---stdin---" not in srv.get("/")[2]:
        time.sleep(0.05)
    assert b"---stdin---" in srv.get("/")[2]


# -------------------------------------------------------------- hot swap ---


def test_hot_swap_bad_module_and_delete(srv, text_module):
    v1 = text_module("version one")
    sha1 = install_module(srv.modules, "app", v1)
    srv.wait_app("app", sha1)
    assert srv.get("/app")[2] == b"version one\n"
    bad = b"\0asm\x01\0\0\0garbage"
    sha_bad = install_module(srv.modules, "app", bad)
    info = srv.wait_app("app", sha_bad, state="failed")
    assert info["error"] and info["sha256"] == sha1 and info["failed_sha256"] == sha_bad
    assert srv.get("/app")[2] == b"version one\n"  # old one keeps serving
    v2 = text_module("version two")
    sha2 = install_module(srv.modules, "app", v2)
    srv.wait_app("app", sha2)
    assert srv.get("/app")[2] == b"version two\n"
    (srv.modules / "app.wasm").unlink()
    deadline = time.time() + 5
    while time.time() < deadline and srv.get("/app")[0] != 404:
        time.sleep(0.02)
    assert srv.get("/app")[0] == 404
    assert srv.app("app") is None
    assert "rejected" in srv.server_log.read_text()


def test_malformed_module_at_startup_and_not_a_command(run_server, tmp_path, wat_module):
    mods = tmp_path / "m"
    mods.mkdir()
    (mods / "broken.wasm").write_bytes(b"this is not wasm")
    (mods / "noimport.wasm").write_bytes(wat_module('(module (import "env" "nope" (func)))'))
    (mods / "nostart.wasm").write_bytes(wat_module("(module)"))
    srv = run_server(mods)
    apps = {a["name"]: a for a in srv.apps()["apps"]}
    assert apps["broken"]["state"] == "failed" and apps["broken"]["error"]
    assert apps["noimport"]["state"] == "failed" and "nope" in apps["noimport"]["error"]
    assert srv.get("/broken")[0] == 503
    assert srv.get("/nostart")[0] == 500


@pytest.mark.slow
def test_hot_swap_under_load_zero_failures(srv, text_module):
    versions = [text_module(f"swap v{i}") for i in range(2)]
    install_module(srv.modules, "swap", versions[0])
    srv.wait_app("swap", sha256_bytes(versions[0]))
    import http.client

    failures, done, count = [], threading.Event(), [0]

    def client():
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        while not done.is_set():
            try:
                conn.request("GET", "/swap")
                r = conn.getresponse()
                body = r.read()
                if r.status != 200 or not body.startswith(b"swap v"):
                    failures.append((r.status, body))
                count[0] += 1
            except Exception as exc:  # noqa: BLE001
                failures.append(repr(exc))
                conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    lag = []
    for i in range(30):
        data = versions[(i + 1) % 2]
        install_module(srv.modules, "swap", data)
        t0 = time.time()
        want = b"swap v%d\n" % ((i + 1) % 2)
        while srv.get("/swap")[2] != want and time.time() - t0 < 5:
            pass
        lag.append(time.time() - t0)
        time.sleep(0.1)
    done.set()
    for t in threads:
        t.join()
    assert failures == []
    assert count[0] > 100
    assert max(lag) < 2.0, lag
    assert srv.app("swap")["state"] == "active"


def test_compiled_module_cache_survives_restart(run_server, wasm_guests, tmp_path):
    mods = tmp_path / "m"
    mods.mkdir()
    shutil.copy(wasm_guests["echo"], mods / "echo.wasm")
    cache = tmp_path / "c"
    srv = run_server(mods, cache=str(cache))
    assert srv.app("echo")["from_cache"] is False
    assert srv.stop() == 0
    assert list(cache.glob("*.cwasm"))
    srv2 = run_server(mods, cache=str(cache))
    assert srv2.app("echo")["from_cache"] is True
    assert srv2.get("/echo")[0] == 200


# ------------------------------------------------------------- lifecycle ---


def test_sigterm_drains_in_flight_request(run_server, wasm_guests, tmp_path, wat_module):
    mods = tmp_path / "m"
    mods.mkdir()
    # busy-waits ~0.6 s (the epoch deadline is far away), then answers
    (mods / "slow.wasm").write_bytes(
        wat_module("""
    (module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
      (memory 1) (export "memory" (memory 0))
      (data (i32.const 64) "Content-Type: text/plain\\n\\nslow\\n")
      (func $now (result i64) (drop (call $t (i32.const 1) (i64.const 1) (i32.const 200))) (i64.load (i32.const 200)))
      (func (export "_start") (local $end i64)
        (local.set $end (i64.add (call $now) (i64.const 600000000)))
        (loop $l (br_if $l (i64.lt_u (call $now) (local.get $end))))
        (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 31))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")
    )
    srv = run_server(mods, timeout_ms=10000)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=srv.get("/slow")))
    t.start()
    time.sleep(0.2)
    pid_file = srv.base / "custom_server.pid"
    assert int(pid_file.read_text()) == srv.proc.pid
    srv.signal(signal.SIGTERM)
    t.join(10)
    assert result["r"][0] == 200 and result["r"][2] == b"slow\n"
    assert srv.proc.wait(10) == 0
    assert not pid_file.exists()
    assert "draining" in srv.server_log.read_text()


def test_sigusr1_reopens_logs(srv):
    srv.get("/hello")
    time.sleep(0.3)
    os.rename(srv.access_log, srv.access_log.with_suffix(".1"))
    os.rename(srv.server_log, srv.server_log.with_suffix(".1"))
    srv.signal(signal.SIGUSR1)
    deadline = time.time() + 5
    while time.time() < deadline and not srv.server_log.exists():
        time.sleep(0.05)
    srv.get("/hello")
    time.sleep(0.5)
    assert "logs reopened" in srv.server_log.read_text()
    assert "/hello" in srv.access_log.read_text()


def test_startup_errors_are_one_line(run_server, server_build, tmp_path):
    import subprocess

    binary = str(server_build / "bin" / "custom_server")
    first = run_server()
    p = subprocess.run(
        [
            binary,
            "--listen",
            f"127.0.0.1:{first.port}",
            "--modules",
            str(tmp_path / "m2"),
            "--log-dir",
            str(tmp_path / "l2"),
            "--cache",
            str(tmp_path / "c2"),
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert p.returncode != 0
    assert str(first.port) in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([binary, "--workers", "lots"], capture_output=True, text=True)
    assert p.returncode != 0 and "workers" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([binary, "--no-such-flag", "1"], capture_output=True, text=True)
    assert p.returncode != 0 and "no-such-flag" in p.stderr
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "file").write_text("x")
    p = subprocess.run(
        [binary, "--listen", "127.0.0.1:0", "--log-dir", str(ro / "file" / "logs")], capture_output=True, text=True
    )
    assert p.returncode != 0 and "log" in p.stderr
    p = subprocess.run([binary, "--help"], capture_output=True, text=True)
    for key in (
        "listen",
        "modules",
        "routes",
        "cache",
        "log-dir",
        "pid-file",
        "workers",
        "timeout-ms",
        "memory-mb",
        "max-output",
        "max-body",
        "max-header",
        "max-headers",
        "idle-timeout-ms",
        "pooling",
        "server-name",
    ):
        assert f"--{key}" in p.stdout
    p = subprocess.run([binary, "--version"], capture_output=True, text=True)
    assert "wasmtime 50.0.1" in p.stdout


def test_config_file_relative_to_env_dir(server_build, tmp_path, wasm_guests):
    import subprocess

    from tests.fixtures.server import free_port

    env = tmp_path / "env"
    (env / "conf").mkdir(parents=True)
    (env / "wasm_modules").mkdir()
    shutil.copy(wasm_guests["hello"], env / "wasm_modules" / "hello.wasm")
    port = free_port()
    (env / "conf" / "server.conf").write_text(
        f"# server settings\nlisten = 127.0.0.1:{port}\nmodules = wasm_modules\nlog-dir = logs\n"
        "cache = cache\npid-file = run/custom_server.pid\nworkers = 1\n"
    )
    (env / "run").mkdir()
    proc = subprocess.Popen(
        [str(server_build / "bin" / "custom_server"), "--config", "conf/server.conf", "--workers", "2"],
        cwd=str(env),
        stderr=subprocess.PIPE,
    )
    try:
        import http.client

        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/hello")
                r = c.getresponse()
                assert r.read() == b"hello from C\n"
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("server did not come up")
        assert (env / "logs" / "server.log").exists()
        assert (env / "run" / "custom_server.pid").read_text().strip() == str(proc.pid)
        assert "2 worker(s)" in (env / "logs" / "server.log").read_text()  # flag beats config
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_check_module(server_build, wasm_guests, tmp_path):
    import subprocess

    binary = str(server_build / "bin" / "custom_server")
    p = subprocess.run(
        [binary, "--check-module", str(wasm_guests["hello"]), "--cache", ""], capture_output=True, text=True
    )
    assert p.returncode == 0 and p.stdout.startswith("ok ")
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asmnope")
    p = subprocess.run([binary, "--check-module", str(bad), "--cache", ""], capture_output=True, text=True)
    assert p.returncode != 0 and len(p.stdout.strip().splitlines()) == 1 and "compile failed" in p.stdout


def test_pooling_off_fallback_serves(run_server, wasm_guests, tmp_path):
    mods = tmp_path / "m"
    mods.mkdir()
    shutil.copy(wasm_guests["hello"], mods / "hello.wasm")
    srv = run_server(mods, pooling="off")
    assert srv.get("/hello")[2] == b"hello from C\n"
    assert srv.apps()["server"]["pooling"] is False
    assert "on-demand" in srv.server_log.read_text()
