"""On real hosts (x86_64 and aarch64): deploy's health gate.

A release that traps and one that answers 500 on its health path never answer
a request: a load generator going through nginx during the attempt sees only
the old release (zero 5xx), the old release stays live and the failed one is
marked. A good release passes. The preview path answers 404 through nginx while
a preview is loaded. A release that passes on the preview but fails through
nginx (it answers 500 when reached on the public port) is rolled back, or kept
with --no-rollback.
"""

import os

import pytest

from tests.helpers import cli, host_result, one_line_error
from tests.integration.test_deploy import url, wat_app
from tests.integration.test_lifecycle import Load, get

pytestmark = pytest.mark.slow

# A WAGI app that answers 500 on every request (a health path that fails).
STATUS_500 = "Status: 500 Internal Server Error\nContent-Type: text/plain\n\ndatabase unreachable\n"

# Traps at once (unreachable), after writing a line to stderr (the guest's log).
TRAP = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "about to trap\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 14))
    (drop (call $w (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))
"""

# Healthy on the server's loopback port, 500 when reached through nginx (X-Forwarded-Port 8080):
# passes the preview, fails the check after the switch.
PORT_SENSITIVE = r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  const char *port = getenv("SERVER_PORT");
  if (port && strcmp(port, "8080") == 0) {
    printf("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nbroken behind nginx\n");
    return 0;
  }
  printf("Content-Type: text/plain\r\n\r\nfine on port %s\n", port ? port : "?");
  return 0;
}
"""


def raw_wat(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def status_app(path, body):
    """A WAT app printing ``body`` verbatim as its CGI output."""
    data = body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return raw_wat(
        path,
        f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(body.encode())}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
""",
    )


@pytest.fixture(scope="module")
def served(any_host, tmp_path_factory):
    """A set-up host in a module-wide inventory (the tests below run in order on it)."""
    home = tmp_path_factory.mktemp(f"gate-{any_host.arch}")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    any_host.register(home / "tiramisu.yaml", "box")
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    yield any_host
    cli("tiramisu", "teardown", "--host", "box", "--yes")
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def releases(host, app):
    out = host.ssh(f"ls -1 tiramisu-env/releases/{app}", check=True).stdout
    return out.split()


def test_failing_releases_never_serve_and_the_old_one_stays(served, tmp_path):
    (tmp_path / "v1").mkdir()
    good = wat_app(tmp_path / "v1" / "gate.wat", "gate v1")
    proc = cli("tiramisu", "deploy", good, "--host", "box")
    assert proc.returncode == 0, proc.stderr
    trap = raw_wat(tmp_path / "trap" / "gate.wat", TRAP)
    fails = status_app(tmp_path / "s500" / "gate.wat", STATUS_500)
    live = Load(url(served, "/gate/"), ok=(200,))
    # the preview path through nginx: 404 while the preview slot holds the candidate
    hidden = Load(url(served, "/_tiramisu/preview/gate/gate/"), ok=(404,))
    with live, hidden:
        t = cli("tiramisu", "deploy", trap, "--host", "box")
        s = cli("tiramisu", "deploy", fails, "--host", "box")
    line = one_line_error(t)
    assert t.returncode == 1
    assert "failed its health check before going live: GET /gate/ -> HTTP 500" in line, t.stderr
    assert "keeps serving" in line
    assert "about to trap" in t.stderr  # the guest's stderr
    assert "trap" in t.stderr.split(line)[0]  # the server's line about the failure
    line = one_line_error(s)
    assert s.returncode == 1 and "GET /gate/ -> HTTP 500" in line, s.stderr
    assert "database unreachable" in s.stderr  # the first lines of the body
    assert live.sent > 0 and live.failed == 0, live.errors[:5]
    assert hidden.sent > 0 and hidden.failed == 0, hidden.errors[:5]
    assert get(url(served, "/gate/")) == (200, b"gate v1\n")
    names = releases(served, "gate")
    assert len([n for n in names if n.endswith(".failed")]) == 2, names
    listed = host_result(cli("tiramisu", "apps", "--host", "box", "--json"))
    (app,) = [a for a in listed["apps"] if a["name"] == "gate"]
    assert app["state"] == "active"
    # the preview slot is empty again
    left = served.ssh("ls -A tiramisu-env/wasm_modules/.preview", check=True).stdout.split()
    assert not [n for n in left if n.startswith("gate.")], left


def test_good_release_passes_the_gate(served, tmp_path):
    (tmp_path / "v2").mkdir()
    good = wat_app(tmp_path / "v2" / "gate.wat", "gate v2 ready")
    with Load(url(served, "/gate/"), ok=(200,)) as load:
        proc = cli(
            "tiramisu", "deploy", good, "--host", "box", "--health-body", "ready", "--health-status", "200", "--json"
        )
    assert proc.returncode == 0, proc.stderr
    summary = host_result(proc)
    assert summary["health"]["preview"]["ok"] and summary["health"]["live"]["ok"]
    assert summary["health"]["preview"]["status"] == 200
    assert load.failed == 0, load.errors[:5]
    assert get(url(served, "/gate/")) == (200, b"gate v2 ready\n")


def test_preview_path_is_404_through_nginx(served):
    for path in ("/_tiramisu/preview/gate/gate/", "/_tiramisu/preview/", "/_tiramisu/apps"):
        assert get(url(served, path))[0] == 404


def test_failing_through_nginx_is_rolled_back_or_kept(served, tmp_path):
    (tmp_path / "ok").mkdir()
    ok = wat_app(tmp_path / "ok" / "porty.wat", "porty ok")
    first = cli("tiramisu", "deploy", ok, "--host", "box", "--json")
    assert first.returncode == 0, first.stderr
    good_release = host_result(first)["release"]
    bad = tmp_path / "bad" / "porty.c"
    bad.parent.mkdir()
    bad.write_text(PORT_SENSITIVE)
    proc = cli("tiramisu", "deploy", bad, "--host", "box")
    line = one_line_error(proc)
    assert proc.returncode == 1
    assert "failed its health check after the switch: GET /porty/ -> HTTP 500" in line, proc.stderr
    assert "rolled back to" in line
    assert get(url(served, "/porty/")) == (200, b"porty ok\n")
    proc = cli("tiramisu", "deploy", bad, "--host", "box", "--no-rollback")
    line = one_line_error(proc)
    assert proc.returncode == 1 and "stays live (--no-rollback)" in line, proc.stderr
    assert get(url(served, "/porty/"))[0] == 500
    back = cli("tiramisu", "rollback", "porty", "--host", "box", "--to", good_release)
    assert back.returncode == 0, back.stderr
    assert get(url(served, "/porty/")) == (200, b"porty ok\n")


def test_bad_health_flags_are_usage_errors(served, tmp_path):
    app = wat_app(tmp_path / "flags.wat", "flags")
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--health-status", "abc")
    assert proc.returncode == 2 and "--health-status" in one_line_error(proc)
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--health-timeout", "-1")
    assert proc.returncode == 2 and "--health-timeout" in one_line_error(proc)
