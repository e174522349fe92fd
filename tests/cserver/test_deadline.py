"""Deadlines hold while a guest waits in a WASI call (poll_oneoff: sleep,
nanosleep, poll), and one app cannot starve the others: per-app concurrency,
a bounded per-app queue answered with 503 + Retry-After, fair sharing of the
guest threads."""

import json
import signal
import socket
import subprocess
import threading
import time

from tests.cserver.test_guestpool import HELLO, read_responses
from tests.fixtures.server import install_module


def start(run_server, wasm_guests, wat_module, tmp_path, **settings):
    mods = tmp_path / "m"
    mods.mkdir()
    install_module(mods, "wait", wasm_guests["wait"])
    install_module(mods, "hello", wat_module(HELLO))
    srv = run_server(modules_dir=mods, **settings)
    srv.wait_app("wait")
    srv.wait_app("hello")
    return srv


def metrics(srv):
    """{'name{labels}': value} of the Prometheus text."""
    _, _, body = srv.get("/_tiramisu/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def app_metric(srv, name, app):
    return metrics(srv)[f'{name}{{app="{app}"}}']


def wait_until(cond, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def send(srv, path):
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def answered(sock):
    """Whether the server has answered on sock yet (without waiting)."""
    sock.setblocking(False)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except BlockingIOError:
        return False
    finally:
        sock.setblocking(True)


def timed_get(srv, path):
    t0 = time.monotonic()
    status, headers, body = srv.get(path, timeout=30)
    return status, body, time.monotonic() - t0


def test_sleeping_guest_gets_504_at_the_deadline(run_server, wasm_guests, wat_module, tmp_path):
    srv = start(run_server, wasm_guests, wat_module, tmp_path, timeout_ms=500)
    # sleep(20) → 504 at the deadline, not after 20 s, for every way to wait;
    # sleep(3) with timeout-ms 500 → 504 at 0.5 s, not 200 after 3 s
    for query in ("", "?secs=3", "?sleep=20000", "?abs=20000", "?absreal=20000", "?clock=20000", "?poll=20000&x"):
        status, body, took = timed_get(srv, "/wait/" + query)
        if query.startswith("?poll"):  # stdin and stdout are ready at once: no wait at all
            assert status == 200 and b"r=2 in=1 out=1" in body, body
            assert took < 1.0
            continue
        assert status == 504, (query, status, body)
        assert 0.45 < took < 2.0, (query, took)
    log = srv.server_log.read_text()
    assert "failed (timeout)" in log and "poll_oneoff" in log
    # waits shorter than the deadline still work, relative and absolute on both clocks
    for query in ("?sleep=150", "?abs=150", "?absreal=150", "?clock=150"):
        status, body, took = timed_get(srv, "/wait/" + query)
        assert status == 200, (query, status, body)
        waited = int(body.split()[1])
        assert 140 <= waited < 450, (query, body)
        assert b"r=0" in body or query == "?sleep=150", body
    assert metrics(srv)["tiramisu_timeouts_total"] == 6
    # the guest threads were freed at the deadline: plenty of sleepers in a row, all answered
    assert srv.get("/hello/")[2] == b"hi\n"


def test_sleepers_of_one_app_do_not_starve_another(run_server, wasm_guests, wat_module, tmp_path):
    srv = start(run_server, wasm_guests, wat_module, tmp_path, timeout_ms=2000, guest_threads=8, app_concurrency=4)
    t_sent = time.monotonic()
    socks = [send(srv, f"/wait/?sleep=20000&n={i}") for i in range(16)]
    # 4 run, 12 wait in the app's own queue; the other app is not behind them
    wait_until(
        lambda: (
            app_metric(srv, "tiramisu_app_running", "wait") == 4
            and app_metric(srv, "tiramisu_app_queued", "wait") == 12
        ),
        what="4 running + 12 queued",
    )
    for _ in range(5):
        assert srv.get("/hello/", timeout=5)[2] == b"hi\n"
    assert not any(answered(s) for s in socks), "a sleeper was answered before the other app"
    assert app_metric(srv, "tiramisu_app_running", "wait") + app_metric(srv, "tiramisu_app_queued", "wait") >= 12
    app = srv.app("wait")
    assert app["running"] == 4 and app["rejected"] == 0
    # every sleeper gets its 504 at its deadline, which counts the time queued:
    # the 12 queued ones are not run one second each after the first 4
    for s in socks:
        assert read_responses(s, 1, timeout=15)[0][0] == 504
        s.close()
    assert time.monotonic() - t_sent < 5.0  # 2 s + slack; run one after another it would be 8 s
    assert "deadline passed while it waited" in srv.server_log.read_text()
    assert app_metric(srv, "tiramisu_app_running", "wait") == 0


def test_full_app_queue_gets_503_with_retry_after(run_server, wasm_guests, wat_module, tmp_path):
    srv = start(
        run_server, wasm_guests, wat_module, tmp_path, timeout_ms=3000, guest_threads=2, app_concurrency=1, app_queue=2
    )
    socks = []
    for i in range(3):  # one runs, two wait: the app's queue is full
        socks.append(send(srv, f"/wait/?sleep=20000&n={i}"))
        wait_until(
            lambda n=i + 1: (
                app_metric(srv, "tiramisu_app_running", "wait") + app_metric(srv, "tiramisu_app_queued", "wait") == n
            ),
            what=f"{i + 1} accepted",
        )
    t0 = time.monotonic()
    for _ in range(2):
        s = send(srv, "/wait/?sleep=1")
        status, head, body = read_responses(s, 1, timeout=5)[0]
        s.close()
        assert status == 503 and b"\r\nretry-after: 1" in head.lower(), head
    assert time.monotonic() - t0 < 1.0  # refused at once, not after the sleepers
    assert srv.get("/hello/", timeout=5)[2] == b"hi\n"  # the other app is unaffected
    assert not any(answered(s) for s in socks)
    m = metrics(srv)
    assert m['tiramisu_app_rejected_total{app="wait"}'] == 2
    assert m['tiramisu_app_rejected_total{app="hello"}'] == 0
    assert m['tiramisu_app_queued{app="wait"}'] == 2 and m['tiramisu_app_running{app="wait"}'] == 1
    assert m['tiramisu_requests_total{app="wait",status="503"}'] == 2
    assert srv.app("wait")["rejected"] == 2 and srv.app("wait")["queued"] == 2
    for s in socks:
        assert read_responses(s, 1, timeout=10)[0][0] == 504
        s.close()
    assert "queue full" in srv.server_log.read_text()
    assert " 503 " in srv.access_log.read_text()


def test_sigterm_while_a_guest_sleeps_exits_at_its_deadline(run_server, wasm_guests, wat_module, tmp_path):
    srv = start(run_server, wasm_guests, wat_module, tmp_path, timeout_ms=1000)
    s = send(srv, "/wait/?sleep=20000")
    wait_until(lambda: app_metric(srv, "tiramisu_app_running", "wait") == 1, what="the sleeper running")
    got = []

    def client():  # reads its answer and closes, as a client does (else the server lingers 2 s)
        got.append(read_responses(s, 1, timeout=10)[0])
        s.close()

    reader = threading.Thread(target=client)
    reader.start()
    t0 = time.monotonic()
    srv.signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - t0 < 2.5  # the deadline (≤ 1 s from the start) plus slack, not 20 s
    reader.join(5)
    status, head, _ = got[0]
    assert status == 504 and b"connection: close" in head.lower()


def test_settings_in_help_and_checked(server_build):
    binary = str(server_build / "bin" / "custom_server")
    p = subprocess.run([binary, "--help"], capture_output=True, text=True)
    assert "--app-concurrency" in p.stdout and "--app-queue" in p.stdout
    lines = p.stdout.splitlines()
    i = next(k for k, line in enumerate(lines) if "--guest-threads" in line)
    assert "--app-concurrency" in lines[i + 1] and "--app-queue" in lines[i + 2]
    for flag, value in (("--app-concurrency", "0"), ("--app-concurrency", "x"), ("--app-queue", "-1")):
        p = subprocess.run([binary, flag, value, "--engine-settings"], capture_output=True, text=True)
        assert p.returncode != 0 and flag[2:] in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = subprocess.run(
        [binary, "--app-concurrency", "auto", "--app-queue", "0", "--engine-settings"], capture_output=True, text=True
    )
    assert p.returncode == 0 and json.loads(p.stdout)["format"] == 1


def test_many_concurrent_short_sleeps_all_answered(run_server, wasm_guests, wat_module, tmp_path):
    """Under the limits (default settings), a burst of short sleeps is queued, not refused."""
    srv = start(run_server, wasm_guests, wat_module, tmp_path)
    results = []
    lock = threading.Lock()

    def one(i):
        status, body, _ = timed_get(srv, f"/wait/?sleep=50&n={i}")
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 24
