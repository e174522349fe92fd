"""The preview slot: <modules>/.preview/<app>.wasm served only at /_tiramisu/preview/<app>/... (real server)."""

import os
import shutil
import time

import pytest

from tests.cserver.test_audit import any_build, asan_server, sanitizer_reports  # noqa: F401 - fixtures
from tests.cserver.test_server import env_of
from tests.fixtures.server import install_module, sha256_bytes


def place_preview(mods, app, data, routes=None):
    """Like deploy: the routes file (optional) first, then the module, each by rename."""
    pdir = mods / ".preview"
    pdir.mkdir(exist_ok=True)
    if routes is not None:
        tmp = pdir / f".{app}.routes.tmp"
        tmp.write_text(routes)
        os.replace(tmp, pdir / f"{app}.routes")
    return install_module(pdir, app, data)


def previews(srv):
    return {p["name"]: p for p in srv.apps().get("previews", [])}


def wait_preview(srv, app, sha, state="active", timeout=15):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = previews(srv).get(app)
        if last and last["file_sha256"] == sha and last["state"] == state:
            return last
        time.sleep(0.02)
    raise AssertionError(f"preview {app} not {state} ({sha[:12]}): {last}")


@pytest.fixture
def start(any_build):  # noqa: F811 - the imported fixture, as a parameter
    """run_server, for the normal build and the AddressSanitizer/UBSan build; no sanitizer report allowed."""
    started = []

    def run(*args, **kwargs):
        srv = any_build(*args, **kwargs)
        started.append(srv)
        return srv

    yield run
    for srv in started:
        assert not sanitizer_reports(srv), sanitizer_reports(srv)


@pytest.fixture
def mods(tmp_path):
    d = tmp_path / "mods"
    d.mkdir()
    return d


def test_preview_runs_with_the_live_environment_and_never_on_live_paths(start, wasm_guests, text_module, mods):
    live = install_module(mods, "echo", text_module("live one"))
    srv = start(mods)
    sha = place_preview(mods, "echo", wasm_guests["echo"].read_bytes())
    rec = wait_preview(srv, "echo", sha)
    assert rec["sha256"] == sha and rec["path"] == "/_tiramisu/preview/echo/" and rec["error"] is None
    # the live app is untouched
    assert srv.get("/echo/a")[2] == b"live one\n"
    assert srv.app("echo")["sha256"] == live
    status, _, body = srv.get("/_tiramisu/preview/echo/echo/a%20b?x=1&y", headers={"Host": "example.test"})
    assert status == 200
    env, argv, _ = env_of(body)
    assert env["SCRIPT_NAME"] == "/echo" and env["PATH_INFO"] == "/a b" and env["X_MATCHED_ROUTE"] == "/echo"
    assert env["QUERY_STRING"] == "x=1&y" and env["X_FULL_URL"] == "http://example.test/echo/a%20b?x=1&y"
    assert argv[0] == "/echo/a%20b"
    # the same guest live: identical environment apart from the client's port
    install_module(mods, "echo", wasm_guests["echo"])
    srv.wait_app("echo", sha)
    env_live, argv_live, _ = env_of(srv.get("/echo/a%20b?x=1&y", headers={"Host": "example.test"})[2])
    env.pop("REMOTE_PORT", None), env_live.pop("REMOTE_PORT", None)
    assert env == env_live and argv == argv_live


def test_promotion_reuses_the_preview_compiled_module(start, text_module, mods):
    install_module(mods, "app", text_module("v1"))
    srv = start(mods)
    v2 = text_module("v2")
    sha = place_preview(mods, "app", v2)
    wait_preview(srv, "app", sha)
    assert srv.get("/_tiramisu/preview/app/app")[2] == b"v2\n"
    os.replace(mods / ".preview" / "app.wasm", mods / "app.wasm")
    srv.wait_app("app", sha)
    assert srv.get("/app")[2] == b"v2\n"
    assert "the preview's compiled module" in srv.server_log.read_text()
    # the preview file is gone: its slot is removed, its path 404
    deadline = time.time() + 5
    while "app" in previews(srv) and time.time() < deadline:
        time.sleep(0.02)
    assert "app" not in previews(srv)
    assert srv.get("/_tiramisu/preview/app/app")[0] == 404


def test_trapping_preview_answers_500_only_on_the_preview_path(start, wasm_guests, text_module, mods):
    install_module(mods, "app", text_module("good"))
    srv = start(mods)
    sha = place_preview(mods, "app", wasm_guests["trap"].read_bytes())
    wait_preview(srv, "app", sha)
    assert srv.get("/_tiramisu/preview/app/app")[0] == 500
    assert srv.get("/app") == (200, srv.get("/app")[1], b"good\n")
    access = srv.access_log.read_text() if srv.access_log.exists() else ""
    log = srv.server_log.read_text()
    assert "preview:app" in log and "trap" in log, log
    # counted apart: the live app's request counter saw only the live requests
    assert srv.app("app")["requests"] == 2, access


def test_rejected_preview_reports_its_error_and_answers_503(start, text_module, mods):
    live = install_module(mods, "app", text_module("good"))
    srv = start(mods)
    bad = b"\0asm\x01\0\0\0garbage"
    sha = place_preview(mods, "app", bad)
    rec = wait_preview(srv, "app", sha, state="failed")
    assert rec["failed_sha256"] == sha and rec["sha256"] is None and rec["error"]
    assert srv.get("/_tiramisu/preview/app/app")[0] == 503
    assert srv.app("app")["sha256"] == live and srv.app("app")["state"] == "active"


def test_preview_of_a_new_app_is_not_routed_live(start, text_module, mods):
    srv = start(mods)
    sha = place_preview(mods, "fresh", text_module("new"))
    wait_preview(srv, "fresh", sha)
    assert srv.get("/fresh")[0] == 404
    assert srv.app("fresh") is None
    assert srv.get("/_tiramisu/preview/fresh/fresh/x")[2] == b"new\n"
    assert srv.get("/_tiramisu/preview/fresh")[0] == 404  # "/" routes nowhere for this app


def test_preview_routes_file_replaces_the_live_routes(start, wasm_guests, text_module, mods, tmp_path):
    install_module(mods, "other", text_module("other"))
    routes = tmp_path / "routes.conf"
    routes.write_text("/api other\n")
    srv = start(mods, routes=str(routes))
    sha = place_preview(mods, "echo", wasm_guests["echo"].read_bytes())
    wait_preview(srv, "echo", sha)
    # live routes: /p1 is nobody's, /api is another app's -> 404 on the preview path
    assert srv.get("/_tiramisu/preview/echo/p1/x")[0] == 404
    assert srv.get("/_tiramisu/preview/echo/api")[0] == 404
    assert srv.get("/_tiramisu/preview/echo/other")[0] == 404
    # the routes the deploy will write
    (mods / ".preview" / "echo.routes").write_text("/api other\n/p1 echo\n")
    shutil.copy(wasm_guests["echo"], mods / ".preview" / ".x")  # unrelated file: ignored
    os.utime(mods / ".preview" / "echo.wasm")  # attribute change: the preview is re-read with its routes
    deadline = time.time() + 5
    while previews(srv)["echo"].get("own_routes") != 2 and time.time() < deadline:
        time.sleep(0.02)
    assert previews(srv)["echo"]["own_routes"] == 2
    env, _, _ = env_of(srv.get("/_tiramisu/preview/echo/p1/x")[2])
    assert env["SCRIPT_NAME"] == "/p1" and env["PATH_INFO"] == "/x" and env["X_MATCHED_ROUTE"] == "/p1"
    assert srv.get("/p1/x")[0] == 404  # still not live
    assert sha256_bytes(wasm_guests["echo"].read_bytes()) == sha


def test_preview_refused_to_proxied_requests(start, text_module, mods):
    srv = start(mods)
    sha = place_preview(mods, "app", text_module("p"))
    wait_preview(srv, "app", sha)
    assert srv.get("/_tiramisu/preview/app/app")[0] == 200
    for h in ({"X-Real-IP": "1.2.3.4"}, {"X-Forwarded-For": "1.2.3.4"}, {"Forwarded": "for=1.2.3.4"}):
        assert srv.get("/_tiramisu/preview/app/app", headers=h)[0] == 404
    assert srv.get("/_tiramisu/preview/")[0] == 404
    assert srv.get("/_tiramisu/preview/nope/nope")[0] == 404
