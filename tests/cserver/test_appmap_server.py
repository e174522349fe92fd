"""App maps in the real server: WAGI routes, `_routes`, entry points, argv, env, secrets, folders.

The map files are what deploy writes (wasm_modules/<app>.map, see ts_appmap.h);
the guest is tests/cserver/guests/wagimap.c (handlers print the CGI route
variables, argv and the app's variables; `?write=`/`?read=` touch files).
"""

import os
import time

import pytest

from tests.fixtures.server import install_module

from .test_audit import ASAN_ENV, asan_server  # noqa: F401  (the sanitizer build, a session fixture)


def put_map(modules, app, text):
    tmp = modules / f".{app}.map.tmp"
    tmp.write_text(text)
    os.replace(tmp, modules / f"{app}.map")


def fields(body):
    out = {}
    for line in body.decode().splitlines():
        k, sep, v = line.partition("=")
        if sep:
            out.setdefault(k, v)
        elif ": " in line:
            k, _, v = line.partition(": ")
            out[k] = v
    return out


def wait_for(srv, path, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        status, _, body = srv.get(path)
        if want(status, body) or time.time() > deadline:
            return status, body
        time.sleep(0.05)


@pytest.fixture(params=["plain", "asan"])
def mapped(request, run_server, wasm_guests, tmp_path):
    env = tmp_path / "env"
    mods = env / "wasm_modules"
    (env / "secrets").mkdir(parents=True)
    (env / "ro" / "templates").mkdir(parents=True)
    (env / "ro" / "templates" / "t.txt").write_text("TEMPLATE\n")
    (env / "data" / "demo" / "data").mkdir(parents=True)
    (env / "secrets" / "demo.env").write_text("ADMIN_TOKEN=s3cret\n")
    os.chmod(env / "secrets" / "demo.env", 0o600)
    mods.mkdir()
    install_module(mods, "demo.main", wasm_guests["wagimap"])
    put_map(
        mods,
        "demo",
        "tiramisu-appmap 1\n"
        "env\tGREETING\thi there\n"
        "envfile\tsecrets/demo.env\n"
        "dir\t/templates\tro/templates\tro\n"
        "route\t/\tdemo.main\t_start\n"
        "route\t/ex\tdemo.main\t_start\n"
        "route\t/ep/goodbye\tdemo.main\tgoodbye\n"
        "env\tMODE\tbye\n"
        "route\t/files/...\tdemo.main\t_start\t${SCRIPT_NAME} --x ${ARGS}\n"
        "dir\t/data\tdata/demo/data\trw\n",
    )
    if request.param == "asan":
        srv = run_server(
            modules_dir=mods, binary=request.getfixturevalue("asan_server"), env={**os.environ, **ASAN_ENV}
        )
    else:
        srv = run_server(modules_dir=mods)
    srv.wait_app("demo.main", timeout=60)
    yield srv, env
    if request.param == "asan":
        assert srv.stop() == 0
        assert "ERROR: AddressSanitizer" not in srv.stderr() and "runtime error" not in srv.stderr(), srv.stderr()


def test_exact_wildcard_and_root_routes(mapped):
    srv, _ = mapped
    status, _, body = srv.get("/")
    f = fields(body)
    assert status == 200 and f["handler"] == "main" and f["SCRIPT_NAME"] == "/" and f["X_MATCHED_ROUTE"] == "/"
    f = fields(srv.get("/files/a%20b/c")[2])
    assert (f["SCRIPT_NAME"], f["X_RAW_PATH_INFO"], f["PATH_INFO"], f["X_MATCHED_ROUTE"]) == (
        "/files",
        "/a%20b/c",
        "/a b/c",
        "/files/...",
    )
    assert srv.get("/files")[0] == 200
    assert srv.get("/ex/")[0] == 404  # exact: no sub-paths
    assert srv.get("/filesx")[0] == 404
    assert srv.get("/demo.main")[0] == 404  # a map's module has no /<module> route


def test_entrypoint_and_dynamic_routes(mapped):
    srv, _ = mapped
    f = fields(srv.get("/ep/goodbye")[2])
    assert f["handler"] == "goodbye" and f["MODE"] == "bye"
    f = fields(srv.get("/ex/hello")[2])
    assert f["handler"] == "hello" and f["X_MATCHED_ROUTE"] == "/ex/hello" and f["MODE"] == "(unset)"
    f = fields(srv.get("/ex/goodbye/a/b")[2])
    assert (f["handler"], f["SCRIPT_NAME"], f["PATH_INFO"]) == ("goodbye", "/ex/goodbye", "/a/b")
    assert srv.get("/ex/hello/x")[0] == 404


def test_argv_template_env_and_secret(mapped):
    srv, _ = mapped
    f = fields(srv.get("/files/q?a=1&b")[2])
    assert (f["argv[0]"], f["argv[1]"], f["argv[2]"], f["argv[3]"]) == (
        "/files/q",
        "--x",
        "a=1",
        "b",
    )  # WAGI: the full path
    assert f["GREETING"] == "hi there" and f["ADMIN_TOKEN"] == "s3cret"
    f = fields(srv.get("/ex?x=1")[2])
    assert (f["argv[0]"], f["argv[1]"]) == ("/ex", "x=1")  # WAGI's default argv
    assert "s3cret" not in srv.server_log.read_text()


def test_read_only_and_writable_folders(mapped):
    srv, env = mapped
    f = fields(srv.get("/files?read=/templates/t.txt")[2])
    assert f["read"] == "TEMPLATE"
    assert fields(srv.get("/files?write=one")[2])["write"] == "ok"
    assert fields(srv.get("/files?write=two")[2])["write"] == "ok"
    assert (env / "data/demo/data/log.txt").read_text() == "one\ntwo\n"
    # a route without the folder has no access to it
    assert fields(srv.get("/ex?write=three")[2])["write"] == "failed"


def test_bad_map_keeps_the_previous_one_and_removal_unroutes(mapped):
    srv, env = mapped
    mods = env / "wasm_modules"
    put_map(mods, "demo", "tiramisu-appmap 1\nroute\t/_tiramisu/x\tdemo.main\t_start\n")
    deadline = time.time() + 10
    while "map rejected" not in srv.server_log.read_text() and time.time() < deadline:
        time.sleep(0.05)
    assert "map rejected" in srv.server_log.read_text()
    assert srv.get("/ex")[0] == 200
    put_map(mods, "demo", "tiramisu-appmap 1\nroute\t/only\tdemo.main\t_start\n")
    assert wait_for(srv, "/ex", lambda s, b: s == 404)[0] == 404
    assert srv.get("/only")[0] == 200
    (mods / "demo.map").unlink()
    assert wait_for(srv, "/only", lambda s, b: s == 404)[0] == 404
    # without a map the module is an ordinary app again
    assert srv.get("/demo.main")[0] == 200


def test_app_limits(run_server, wasm_guests, tmp_path):
    mods = tmp_path / "wasm_modules"
    mods.mkdir()
    install_module(mods, "lim.loop", wasm_guests["loop"])
    install_module(mods, "lim.main", wasm_guests["wagimap"])
    put_map(
        mods,
        "lim",
        "tiramisu-appmap 1\nlimit\ttimeout-ms\t300\nlimit\tmax-body\t10\n"
        "route\t/spin\tlim.loop\t_start\nroute\t/post\tlim.main\t_start\n",
    )
    srv = run_server(modules_dir=mods, timeout_ms=20000)
    srv.wait_app("lim.loop")
    srv.wait_app("lim.main")
    t0 = time.monotonic()
    assert srv.get("/spin")[0] == 504
    assert time.monotonic() - t0 < 5  # the app's 300 ms, not the server's 20 s
    assert srv.get("/post", method="POST", body=b"x" * 10)[0] == 200
    assert srv.get("/post", method="POST", body=b"x" * 11)[0] == 413
