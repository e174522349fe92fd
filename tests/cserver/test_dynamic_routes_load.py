"""A module whose `_routes` export fails or prints an invalid table fails to load.

deislabs/wagi refuses to load such a module (dispatcher.rs
augment_one_wasm_with_dynamic_routes, dynamic_route.rs interpret_routes: a
line without an entry point, three fields, or empty output). Here that module
version is reported `failed` with the reason (what deploy waits on), and the
previous version keeps serving.
"""

import os
import time

import wasmtime

from tests.fixtures.server import install_module


def module(body, routes=None, trap=False):
    """A WASI command printing a CGI answer with `body`; `_routes` prints `routes` (or traps)."""
    out = f"Content-Type: text/plain\n\n{body}\n".encode()
    data = [(64, out)]
    funcs = [
        '(func (export "_start") (call $print (i32.const 64) (i32.const %d)))' % len(out),
    ]
    if trap:
        funcs.append('(func (export "_routes") unreachable)')
    elif routes is not None:
        r = routes.encode()
        data.append((1024, r))
        funcs.append('(func (export "_routes") (call $print (i32.const 1024) (i32.const %d)))' % len(r))
    segs = "".join('(data (i32.const %d) "%s")' % (at, "".join("\\%02x" % b for b in text)) for at, text in data)
    wat = f"""(module
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      {segs}
      (func $print (param $p i32) (param $n i32)
        (i32.store (i32.const 0) (local.get $p))
        (i32.store (i32.const 4) (local.get $n))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
      {"".join(funcs)})"""
    return wasmtime.wat2wasm(wat)


def put_map(modules, app, text):
    tmp = modules / f".{app}.map.tmp"
    tmp.write_text(text)
    os.replace(tmp, modules / f"{app}.map")


def wait_for(srv, path, want, timeout=10):
    deadline = time.time() + timeout
    while True:
        status, _, body = srv.get(path)
        if want(status, body) or time.time() > deadline:
            return status, body
        time.sleep(0.05)


def test_invalid_routes_output_fails_the_version_and_the_previous_one_serves(run_server, tmp_path):
    mods = tmp_path / "wasm_modules"
    mods.mkdir()
    install_module(mods, "dyn.main", module("v1", "/ok _start\n"))
    put_map(mods, "dyn", "tiramisu-appmap 1\nroute\t/d/...\tdyn.main\t_start\n")
    srv = run_server(modules_dir=mods)
    srv.wait_app("dyn.main")
    assert wait_for(srv, "/d/ok", lambda s, b: s == 200)[1] == b"v1\n"

    for bad, reason in [
        (module("v2", "/bad\n"), "invalid _routes output: _routes line 1: expected 'SUBROUTE ENTRYPOINT'"),
        (module("v3", "/a a\n/b b c\n"), "_routes line 2"),
        (module("v4", ""), "_routes printed nothing"),
        (module("v5", trap=True), "_routes failed"),
    ]:
        sha = install_module(mods, "dyn.main", bad)
        app = srv.wait_app("dyn.main", sha256=sha, state="failed")
        assert app["failed_sha256"] == sha and reason in app["error"], app
        # the previous version keeps serving, its sub-routes too
        assert srv.get("/d/ok")[2] == b"v1\n" and srv.get("/d")[2] == b"v1\n"

    # a valid one loads again; a module without `_routes` is fine too
    sha = install_module(mods, "dyn.main", module("v6", "/ok _start\n\n/w/... _start\n"))
    srv.wait_app("dyn.main", sha256=sha)
    assert wait_for(srv, "/d/w/x", lambda s, b: b == b"v6\n")[1] == b"v6\n"
    sha = install_module(mods, "dyn.main", module("v7"))
    srv.wait_app("dyn.main", sha256=sha)
    assert wait_for(srv, "/d", lambda s, b: b == b"v7\n")[1] == b"v7\n"


def test_a_first_version_with_invalid_routes_never_serves(run_server, tmp_path):
    mods = tmp_path / "wasm_modules"
    mods.mkdir()
    sha = install_module(mods, "bad.main", module("never", "/only-a-route\n"))
    srv = run_server(modules_dir=mods)
    app = srv.wait_app("bad.main", sha256=sha, state="failed")
    assert app["sha256"] is None and "_routes line 1" in app["error"]
    assert srv.get("/bad.main")[0] != 200
