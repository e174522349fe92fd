"""Guests run on the guest-thread pool, off the I/O threads: a looping guest
must not stall other connections of the same worker; order, disconnects and
drain still hold."""

import http.client
import json
import signal
import socket
import struct
import subprocess
import threading
import time

from tests.fixtures.server import install_module

HELLO = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\\n\\nhi\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 29))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""

LOOP = '(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))'


def busy(ms, text):
    """A guest that busy-waits `ms` (wall clock), then answers `text`."""
    out = f"Content-Type: text/plain\n\n{text}\n"
    escaped = out.replace("\n", "\\n")
    return f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $t (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{escaped}")
  (func $now (result i64) (drop (call $t (i32.const 1) (i64.const 1) (i32.const 200))) (i64.load (i32.const 200)))
  (func (export "_start") (local $end i64)
    (local.set $end (i64.add (call $now) (i64.const {ms * 1000000})))
    (loop $l (br_if $l (i64.lt_u (call $now) (local.get $end))))
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const {len(out)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"""


def start(run_server, wat_module, tmp_path, **settings):
    mods = tmp_path / "m"
    mods.mkdir()
    install_module(mods, "hello", wat_module(HELLO))
    install_module(mods, "loop", wat_module(LOOP))
    install_module(mods, "slow", wat_module(busy(400, "slow")))
    srv = run_server(modules_dir=mods, **settings)
    for app in ("hello", "loop", "slow"):
        srv.wait_app(app)
    return srv


def read_responses(sock, n, timeout=15):
    """Read n HTTP responses (Content-Length framed) from a raw socket."""
    sock.settimeout(timeout)
    buf, out = b"", []
    while len(out) < n:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(out)} responses: {buf!r}"
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(rest) < length:
            chunk = sock.recv(65536)
            assert chunk
            rest += chunk
        out.append((int(head.split(b" ")[1]), head, rest[:length]))
        buf = rest[length:]
    return out


def metric(srv, name):
    _, _, body = srv.get("/_tiramisu/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


def test_looping_guest_does_not_stall_other_connections(run_server, wat_module, tmp_path):
    srv = start(run_server, wat_module, tmp_path, timeout_ms=4000)
    # keep-alive connections spread over both workers (as nginx upstream keepalive does)
    conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20) for _ in range(6)]
    for c in conns:
        c.request("GET", "/hello/")
        assert c.getresponse().read() == b"hi\n"
    result = {}

    def loop():
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20)
        c.request("GET", "/loop/")
        result["status"] = c.getresponse().status

    t = threading.Thread(target=loop)
    t.start()
    time.sleep(0.3)
    took = []
    for c in conns:
        t0 = time.monotonic()
        c.request("GET", "/hello/")
        assert c.getresponse().read() == b"hi\n"
        took.append(time.monotonic() - t0)
    still_looping = t.is_alive()
    t.join(20)
    assert still_looping, "the looping guest ended before the fast requests were sent"
    assert max(took) < 1.0, took
    assert result["status"] == 504
    for c in conns:
        c.close()


def test_pipelined_requests_answered_in_order_around_a_slow_guest(run_server, wat_module, tmp_path):
    srv = start(run_server, wat_module, tmp_path)
    s = socket.create_connection(("127.0.0.1", srv.port))

    def req(p):
        return f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

    # admin (answered on the I/O thread) and 404 must wait for the guest in front of them
    s.sendall(
        req("/slow/")
        + req("/hello/")
        + req("/_tiramisu/health")
        + req("/nope/")
        + req("/slow/a")
        + b"POST /hello/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        + req("/hello/")
    )
    got = read_responses(s, 7)
    assert [g[0] for g in got] == [200, 200, 200, 404, 200, 200, 200]
    assert [g[2] for g in got[:2]] == [b"slow\n", b"hi\n"]
    assert got[4][2] == b"slow\n" and got[5][2] == b"hi\n" and got[6][2] == b"hi\n"
    # the connection is still usable, and a client half-close still gets its answers
    s.sendall(req("/slow/") + req("/hello/"))
    s.shutdown(socket.SHUT_WR)
    got = read_responses(s, 2)
    assert [g[2] for g in got] == [b"slow\n", b"hi\n"]
    assert s.recv(100) == b""
    s.close()


def test_client_gone_during_slow_guest(run_server, wat_module, tmp_path):
    srv = start(run_server, wat_module, tmp_path, timeout_ms=1500)
    socks = []
    for _ in range(6):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /loop/ HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n")
        socks.append(s)
    time.sleep(0.2)
    for i, s in enumerate(socks):
        if i % 2:  # reset: the server sees an error on the socket while the guest runs
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    # meanwhile the server answers others
    assert srv.get("/hello/")[2] == b"hi\n"
    time.sleep(2.0)  # the guests time out and come back to connections that are gone
    assert srv.proc.poll() is None
    assert srv.get("/hello/")[2] == b"hi\n"
    # Only the metrics request's own connection stays. Each reading opens a
    # new connection while the previous one's close may still be in flight
    # on the other worker, so the last reading decides, not the first.
    deadline = time.time() + 5
    active = metric(srv, "tiramisu_connections_active")
    while active != 1 and time.time() < deadline:
        time.sleep(0.1)
        active = metric(srv, "tiramisu_connections_active")
    assert active == 1
    assert srv.stop() == 0


def test_sigterm_drains_running_guests(run_server, wat_module, tmp_path):
    srv = start(run_server, wat_module, tmp_path, timeout_ms=1500)
    idle = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    idle.request("GET", "/hello/")
    idle.getresponse().read()
    results = {}

    def get(path):
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        results[path] = read_responses(s, 1)[0]
        results[path + " closed"] = s.recv(100) == b""
        s.close()

    threads = [threading.Thread(target=get, args=(p,)) for p in ("/slow/", "/loop/")]
    for t in threads:
        t.start()
    time.sleep(0.2)
    srv.signal(signal.SIGTERM)
    for t in threads:
        t.join(10)
    assert srv.proc.wait(10) == 0
    assert results["/slow/"][0] == 200 and results["/slow/"][2] == b"slow\n"
    assert b"connection: close" in results["/slow/"][1].lower() and results["/slow/ closed"]
    assert results["/loop/"][0] == 504


def test_drain_timeout_shorter_than_a_guest(run_server, wat_module, tmp_path):
    srv = start(run_server, wat_module, tmp_path, timeout_ms=1500, drain_timeout_ms=200)
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"GET /loop/ HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    srv.signal(signal.SIGTERM)
    # the connection is closed at the drain timeout; the process waits for the guest, then exits
    s.settimeout(10)
    assert s.recv(100) == b""
    s.close()
    assert srv.proc.wait(10) == 0
    assert "drain timeout" in srv.server_log.read_text()


def test_guest_threads_setting(run_server, server_build, wat_module, tmp_path):
    binary = str(server_build / "bin" / "custom_server")
    p = subprocess.run([binary, "--help"], capture_output=True, text=True)
    assert "--guest-threads" in p.stdout and "auto" in p.stdout
    p = subprocess.run([binary, "--guest-threads", "0"], capture_output=True, text=True)
    assert p.returncode != 0 and "guest-threads" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run(
        [binary, "--guest-threads", "7", "--pooling", "on", "--engine-settings"], capture_output=True, text=True
    )
    assert (
        json.loads(p.stdout)["config"]["pooling"]["total_core_instances"] == 9 * 16
    )  # 16 core instances per slot (components)
    p = subprocess.run(
        [binary, "--workers", "3", "--pooling", "on", "--engine-settings"], capture_output=True, text=True
    )
    assert json.loads(p.stdout)["config"]["pooling"]["total_core_instances"] == 8 * 16  # auto: 2 x 3 + 2 slots
    # one guest thread: guests queue, everything is still answered
    srv = start(run_server, wat_module, tmp_path, guest_threads=1)
    results = []
    threads = [threading.Thread(target=lambda: results.append(srv.get("/slow/")[2])) for _ in range(3)]
    for t in threads:
        t.start()
    assert srv.get("/_tiramisu/health")[0] == 200
    for t in threads:
        t.join(10)
    assert results == [b"slow\n"] * 3


def test_inline_guest_that_turns_slow_does_not_stall_its_worker(run_server, wat_module, tmp_path):
    """An app whose runs were short runs on the I/O thread itself (inline); when
    one of its runs turns long (here: a hot swap to a looping module), the
    worker's event loop goes to a helper thread after a few ms, so the other
    connections of that one worker are still answered, and the long run still
    ends at its deadline."""
    mods = tmp_path / "m"
    mods.mkdir()
    install_module(mods, "hello", wat_module(HELLO))
    install_module(mods, "flip", wat_module(HELLO))
    srv = run_server(modules_dir=mods, workers=1, timeout_ms=2000)
    srv.wait_app("hello")
    srv.wait_app("flip")
    conns = [http.client.HTTPConnection("127.0.0.1", srv.port, timeout=20) for _ in range(3)]
    for _ in range(12):  # a streak of short runs: both apps now run inline
        for c, app in zip(conns, ("hello", "flip", "hello")):
            c.request("GET", f"/{app}/")
            assert c.getresponse().read() == b"hi\n"
    srv.wait_app("flip", sha256=install_module(mods, "flip", wat_module(LOOP)))
    result = {}

    def slow():
        t0 = time.monotonic()
        conns[1].request("GET", "/flip/")
        r = conns[1].getresponse()
        r.read()
        result["status"] = r.status
        result["took"] = time.monotonic() - t0

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    took = []
    for _ in range(5):
        for c in (conns[0], conns[2]):
            t0 = time.monotonic()
            c.request("GET", "/hello/")
            assert c.getresponse().read() == b"hi\n"
            took.append(time.monotonic() - t0)
    still_looping = t.is_alive()
    t.join(20)
    assert still_looping, "the looping guest ended before the fast requests were sent"
    assert max(took) < 0.5, took
    assert result["status"] == 504 and 1.5 < result["took"] < 5, result
    # the loop is back with its own thread: the same connections go on
    for c in conns:
        c.request("GET", "/hello/")
        assert c.getresponse().read() == b"hi\n"
        c.close()
