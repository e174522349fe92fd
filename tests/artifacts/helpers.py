"""Small helpers for the artifact tests: ports, processes, HTTP, a WAGI module."""

import http.client
import signal
import socket
import subprocess
import time

# A WASI command module that answers CGI-style: a header, a blank line, a
# greeting, then its whole environment (one VAR=value per line), so a test can
# see the CGI variables the server passed. Written in WAT to need no wasm
# toolchain; assembled with wasmtime-py (same release as the server's library).
WAGI_ENV_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))
  (memory (export "memory") 2)
  ;; 42 bytes at 16
  (data (i32.const 16) "Content-Type: text/plain\n\nhello from wasm\n")
  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (local $i i32) (local $end i32)
    (call $write (i32.const 16) (i32.const 42))
    (drop (call $environ_sizes_get (i32.const 100) (i32.const 104)))
    (drop (call $environ_get (i32.const 4096) (i32.const 65536)))
    (local.set $i (i32.const 65536))
    (local.set $end (i32.add (i32.const 65536) (i32.load (i32.const 104))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (if (i32.eqz (i32.load8_u (local.get $i)))
          (then (i32.store8 (local.get $i) (i32.const 10))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $write (i32.const 65536) (i32.load (i32.const 104)))))
"""


def wagi_env_module():
    import wasmtime

    return wasmtime.wat2wasm(WAGI_ENV_WAT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc=None, timeout=60.0):
    """True once 127.0.0.1:port accepts; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def http_get(port, path, timeout=60.0):
    """(status, headers dict, body text) of a GET to 127.0.0.1:port."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"X-Tiramisu-Test": "yes"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def stop(proc, timeout=10):
    """Terminate a process we started (by its Popen), then kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def minimal_nginx_conf(listen_port, upstream_port=None):
    """An nginx.conf for a prefix dir: all paths relative to -p, logs to stderr."""
    if upstream_port:
        location = """
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }"""
        upstream = f"""
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 4;
    }}"""
    else:
        location = """
        location / {
            root html;
        }"""
        upstream = ""
    return f"""daemon off;
master_process off;
worker_processes 1;
pid nginx.pid;
error_log stderr notice;
events {{
    worker_connections 64;
}}
http {{
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;{upstream}
    server {{
        listen 127.0.0.1:{listen_port};{location}
    }}
}}
"""
