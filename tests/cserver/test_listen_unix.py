"""listen-unix: the server's second listener, a 0600 UNIX socket for a local proxy (real server)."""

import http.client
import os
import shutil
import socket
import stat
import subprocess

import pytest


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=10):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def get_unix(path, target, headers=None):
    c = UnixHTTPConnection(str(path))
    try:
        c.request("GET", target, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@pytest.fixture
def mods(wasm_guests, tmp_path):
    d = tmp_path / "mods"
    d.mkdir()
    shutil.copy(wasm_guests["hello"], d / "hello.wasm")
    shutil.copy(wasm_guests["echo"], d / "echo.wasm")
    return d


def test_serves_on_both_listeners_and_the_socket_is_owner_only(run_server, mods, tmp_path):
    sock = tmp_path / "s.sock"
    srv = run_server(mods, listen_unix=str(sock))
    assert stat.S_ISSOCK(os.stat(sock).st_mode) and stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert get_unix(sock, "/hello") == (200, b"hello from C\n")
    assert srv.get("/hello")[0] == 200  # TCP still serves
    # a socket peer is local: admin answers it, unless the request was proxied
    assert get_unix(sock, "/_tiramisu/health")[0] == 200
    assert get_unix(sock, "/_tiramisu/health", {"X-Real-IP": "203.0.113.9"})[0] == 404
    # and its forwarded client address is the guest's REMOTE_ADDR
    status, body = get_unix(sock, "/echo", {"X-Real-IP": "203.0.113.9"})
    assert status == 200 and b"REMOTE_ADDR=203.0.113.9" in body
    assert srv.stop() == 0
    assert not sock.exists()  # removed at exit: still ours


def test_a_new_server_takes_the_path_and_the_old_one_leaves_it(run_server, mods, tmp_path):
    sock = tmp_path / "s.sock"
    old = run_server(mods, listen_unix=str(sock))
    new = run_server(mods, listen_unix=str(sock))
    assert get_unix(sock, "/_tiramisu/health")[0] == 200
    assert old.stop() == 0
    assert sock.exists() and get_unix(sock, "/hello") == (200, b"hello from C\n")  # the new one's
    new.stop()


def test_too_long_a_path_is_a_one_line_error(server_build, mods, tmp_path):
    long_dir = tmp_path / ("d" * 100)
    long_dir.mkdir()
    p = subprocess.run(
        [
            str(server_build / "bin" / "custom_server"),
            "--listen",
            "127.0.0.1:0",
            "--listen-unix",
            str(long_dir / "s.sock"),
            "--modules",
            str(mods),
            "--log-dir",
            "-",
            "--cache",
            "",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode != 0 and "listen-unix path too long" in p.stderr
