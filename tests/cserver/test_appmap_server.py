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


def test_folder_permissions_and_stdout_redirect(mapped):
    """Files in preopened folders are Wasmtime's WASI; stdout is the response until the guest moves it."""
    srv, env = mapped
    status, _, body = srv.get("/files?writero=new.txt")
    f = fields(body)
    assert status == 200 and f["handler"] == "main"  # stdout (the server's fast fd_write) is the response
    assert (f["create-ro"], f["append-ro"]) == ("failed", "failed")
    assert not (env / "ro/templates/new.txt").exists()
    assert (env / "ro/templates/t.txt").read_text() == "TEMPLATE\n"
    # freopen(stdout) renumbers a file onto fd 1: from then on fd 1 is that file
    status, _, body = srv.get("/files?redirect=into-the-file")
    assert status == 200 and "redirect" in fields(body) and b"\ninto-the-file\n" not in body
    assert (env / "data/demo/data/out.txt").read_text() == "into-the-file\n"


def run_in_wasmtime(wasm, folder, argv):
    """(stdout, stderr, trapped) of `wasm` run by plain Wasmtime (wasmtime-py) with `folder` at /data."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    cfg = wasmtime.WasiConfig()
    cfg.argv = argv
    cfg.stdout_file = str(folder.parent / "ref.out")
    cfg.stderr_file = str(folder.parent / "ref.err")
    cfg.preopen_dir(str(folder), "/data", True)
    store.set_wasi(cfg)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    inst = linker.instantiate(store, wasmtime.Module.from_file(engine, str(wasm)))
    try:
        inst.exports(store)["_start"](store)
        trapped = False
    except (wasmtime.Trap, wasmtime.WasmtimeError):
        trapped = True
    return (folder.parent / "ref.out").read_bytes(), (folder.parent / "ref.err").read_bytes(), trapped


@pytest.mark.parametrize("server", ["plain", "asan"])
def test_folder_files_answer_as_plain_wasmtime(server, request, run_server, wasm_guests, tmp_path):
    """files.wat (open, write, fdstat, bad fds, close, renumber onto fd 2, a bad pointer) gives the
    same answers, files and traps through the server's WASI bridge as in plain Wasmtime."""
    mods = tmp_path / "wasm_modules"
    mods.mkdir()
    served, ref = tmp_path / "served" / "data", tmp_path / "ref" / "data"
    served.mkdir(parents=True)
    ref.mkdir(parents=True)
    install_module(mods, "fs.main", wasm_guests["files"])
    put_map(mods, "fs", f"tiramisu-appmap 1\nroute\t/fs\tfs.main\t_start\ndir\t/data\t{served}\trw\n")
    if server == "asan":
        srv = run_server(
            modules_dir=mods, binary=request.getfixturevalue("asan_server"), env={**os.environ, **ASAN_ENV}
        )
    else:
        srv = run_server(modules_dir=mods)
    srv.wait_app("fs.main", timeout=60)
    status, _, body = srv.get("/fs")
    out, err, trapped = run_in_wasmtime(wasm_guests["files"], ref, ["/fs"])
    assert status == 200 and not trapped
    assert body == out.split(b"\n\n", 1)[1]
    assert b"open=00 write=00 stat=00 type=04 bad=08" in body  # what Wasmtime answers, not a fixed copy
    assert sorted(p.name for p in served.iterdir()) == sorted(p.name for p in ref.iterdir()) == ["moved.txt", "out.txt"]
    for p in ref.iterdir():
        assert (served / p.name).read_bytes() == p.read_bytes() == b"file-data\n"
    assert err == b""
    for log in (srv.app_log("fs"), srv.app_log("fs.main")):  # fd 2 was the file: nothing in the app log
        assert not log.exists() or "file-data" not in log.read_text(errors="replace")
    status, _, _ = srv.get("/fs?oob")
    assert run_in_wasmtime(wasm_guests["files"], ref, ["/fs", "oob"])[2] and status == 500
    assert "out of bounds" in srv.server_log.read_text()
    if server == "asan":
        assert srv.stop() == 0
        assert "ERROR: AddressSanitizer" not in srv.stderr() and "runtime error" not in srv.stderr(), srv.stderr()


def wagimap_component(wasm_guests, tmp_path):
    """wagimap.c as a WASI 0.2 command component (the preview 1 adapter), or a skip."""
    import subprocess

    from tiramisu_tasks.apps.builders import component as cb
    from tiramisu_tasks.apps.toolrun import run_step

    why = cb.problem()
    if why:
        pytest.skip(why)
    adapter = cb.adapter_file(lambda step: run_step(step), lambda msg: None)
    out = tmp_path / "wagimap-component.wasm"
    argv = cb.component_new_argv(cb.wasm_tools(), wasm_guests["wagimap"], adapter, out)
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_component_route_gets_its_folders_and_refuses_other_entry_points(run_server, wasm_guests, tmp_path):
    comp = wagimap_component(wasm_guests, tmp_path)
    ro, data, mods = tmp_path / "ro", tmp_path / "data", tmp_path / "wasm_modules"
    for d in (ro, data, mods):
        d.mkdir()
    (ro / "t.txt").write_text("TEMPLATE\n")
    install_module(mods, "cm.main", comp)
    put_map(
        mods,
        "cm",
        f"tiramisu-appmap 1\ndir\t/templates\t{ro}\tro\n"
        f"route\t/c/...\tcm.main\t_start\ndir\t/data\t{data}\trw\n"
        "route\t/c-hello\tcm.main\thello\n",
    )
    srv = run_server(modules_dir=mods)
    srv.wait_app("cm.main", timeout=60)
    status, _, body = srv.get("/c?read=/templates/t.txt")
    assert status == 200 and fields(body)["read"] == "TEMPLATE"
    assert fields(srv.get("/c?write=one")[2])["write"] == "ok"
    assert (data / "log.txt").read_text() == "one\n"
    f = fields(srv.get("/c?writero=new.txt")[2])
    assert (f["create-ro"], f["append-ro"]) == ("failed", "failed") and not (ro / "new.txt").exists()
    # a component runs wasi:cli/run only: a route naming another entry point is refused, not run as _start
    assert srv.get("/c-hello")[0] == 500
    assert "entry point 'hello' cannot be called: a WASI 0.2 component runs wasi:cli/run" in srv.server_log.read_text()


def test_preview_map_is_served_only_under_the_preview_path(mapped):
    """<modules>/.preview/<app>.map: a release's map under test, with its modules' preview versions
    (else their live ones); never live, listed with its file's sha256 (or its error)."""
    import hashlib

    srv, env = mapped
    pdir = env / "wasm_modules" / ".preview"
    (env / "secrets" / "demo-next.env").write_text("ADMIN_TOKEN=next\n")
    text = (
        "tiramisu-appmap 1\nenv\tGREETING\tnext\nenvfile\tsecrets/demo-next.env\n"
        "route\t/new/...\tdemo.main\t_start\t${SCRIPT_NAME} --y ${ARGS}\n"
    )
    put_map(pdir, "demo", text)
    prefix = "/_tiramisu/preview/demo"
    status, body = wait_for(srv, prefix + "/new/a?q", lambda s, b: s == 200)
    f = fields(body)
    assert status == 200 and (f["GREETING"], f["ADMIN_TOKEN"], f["SCRIPT_NAME"], f["PATH_INFO"]) == (
        "next",
        "next",
        "/new",
        "/a",
    )
    assert (f["argv[0]"], f["argv[1]"], f["argv[2]"]) == ("/new/a", "--y", "q")  # the routed path, not the preview's
    assert srv.get(prefix + "/ex")[0] == 404  # only the preview map's own routes
    assert srv.get("/new/a")[0] == 404  # never live
    assert fields(srv.get("/ex")[2])["GREETING"] == "hi there"  # the live map untouched
    listed = {m["app"]: m for m in srv.apps()["preview_maps"]}
    assert listed["demo"]["file_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert listed["demo"]["state"] == "ready"
    live = {m["app"]: m for m in srv.apps()["maps"]}
    assert live["demo"]["routes"] == 4
    # a rejected preview map is listed failed, with its error; removing it unlists it
    put_map(pdir, "demo", "tiramisu-appmap 1\nroute\t/_tiramisu/x\tdemo.main\t_start\n")
    deadline = time.time() + 10
    while srv.apps()["preview_maps"][0]["state"] != "failed" and time.time() < deadline:
        time.sleep(0.05)
    rec = srv.apps()["preview_maps"][0]
    assert rec["state"] == "failed" and rec["error"] and srv.get(prefix + "/new/a")[0] == 404
    (pdir / "demo.map").unlink()
    deadline = time.time() + 10
    while srv.apps()["preview_maps"] and time.time() < deadline:
        time.sleep(0.05)
    assert srv.apps()["preview_maps"] == []
