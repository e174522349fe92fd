"""WASI 0.2 command components in the real custom_server: the same guests as
tests/cserver/test_server.py, wrapped into components with `wasm-tools
component new` and the standard preview 1 command adapter (no WASI 0.2
compiler needed), must behave exactly like the modules they came from."""

import shutil
import subprocess
import threading
import time

import pytest

from tests.fixtures.server import install_module, sha256_bytes

from .test_server import env_of

GUESTS = ("echo", "hello", "loop", "trap", "alloc", "grow", "bigout", "stderr_exit", "wait")


@pytest.fixture(scope="session")
def components(wasm_guests, tmp_path_factory):
    """name -> component .wasm made from each preview 1 guest."""
    from tiramisu_tasks.apps.builders import component as cb
    from tiramisu_tasks.apps.toolrun import run_step

    why = cb.problem()
    if why:
        pytest.skip(why)
    adapter = cb.adapter_file(lambda step: run_step(step), lambda msg: None)
    out = tmp_path_factory.mktemp("components")
    made = {}
    for name in GUESTS:
        path = out / f"{name}.wasm"
        argv = cb.component_new_argv(cb.wasm_tools(), wasm_guests[name], adapter, path)
        proc = subprocess.run(argv, capture_output=True, text=True)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        made[name] = path
    return made


@pytest.fixture
def csrv(run_server, wasm_guests, components, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    for name, path in components.items():
        shutil.copy(path, mods / f"c_{name}.wasm")
    shutil.copy(wasm_guests["echo"], mods / "m_echo.wasm")
    return run_server(mods, timeout_ms=1000, memory_mb=32, max_output="256k", max_body="64k")


def test_component_sees_the_same_request_as_the_module(csrv):
    def ask(app):
        return csrv.get(
            f"/{app}/some/pa%20th?a=1&b=two",
            method="POST",
            body=b"hello body",
            headers={"Content-Type": "text/x-test", "X-Custom-Thing": "v1"},
        )

    ms, _, mbody = ask("m_echo")
    cs, cheaders, cbody = ask("c_echo")
    assert ms == cs == 200
    menv, margv, mstdin = env_of(mbody)
    cenv, cargv, cstdin = env_of(cbody)
    for k in ("SCRIPT_NAME", "X_MATCHED_ROUTE", "X_FULL_URL", "REMOTE_PORT"):  # app name, client port
        menv.pop(k, None), cenv.pop(k, None)
    assert cenv == menv
    assert cargv[1:] == margv[1:] and cstdin == mstdin == b"hello body"


def test_component_limits_give_the_same_statuses_as_modules(csrv):
    assert csrv.get("/c_hello")[0] == 200
    t0 = time.monotonic()
    assert csrv.get("/c_loop")[0] == 504
    assert time.monotonic() - t0 < 5
    assert csrv.get("/c_trap")[0] == 500
    assert csrv.get("/c_alloc")[0] == 500
    assert csrv.get("/c_grow")[0] == 500
    assert csrv.get("/c_bigout?8")[0] == 200
    assert csrv.get("/c_bigout?1024")[0] == 500  # over max-output 256k
    assert csrv.get("/c_stderr_exit?3")[0] == 500
    assert csrv.get("/c_stderr_exit")[0] == 200
    assert "guest stderr line" in csrv.app_log("c_stderr_exit").read_text()
    log = csrv.server_log.read_text()
    assert "app c_loop" in log and "timeout" in log
    assert "app c_trap" in log and "unreachable" in log
    # the server still answers after all that
    assert csrv.get("/c_hello")[0] == 200


def test_admin_view_shows_the_kind(csrv):
    apps = {a["name"]: a for a in csrv.apps()["apps"]}
    assert apps["c_echo"]["kind"] == "component"
    assert apps["m_echo"]["kind"] == "module"


def test_component_is_compiled_once_then_loaded_from_the_cache(run_server, components, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    shutil.copy(components["hello"], mods / "hello.wasm")
    cache = tmp_path / "cache"
    first = run_server(mods, cache=str(cache))
    assert first.get("/hello")[0] == 200
    assert first.app("hello")["code"] == "compiled"
    first.stop()
    second = run_server(mods, cache=str(cache))
    assert second.app("hello")["code"] == "cache"
    assert second.get("/hello")[0] == 200


def test_a_component_without_wasi_cli_run_is_refused_and_the_old_version_serves(run_server, components, tmp_path):
    import wasmtime

    mods = tmp_path / "mods"
    mods.mkdir()
    install_module(mods, "app", components["hello"])
    srv = run_server(mods)
    good = sha256_bytes(components["hello"].read_bytes())
    srv.wait_app("app", good)
    empty = wasmtime.wat2wasm("(component)")
    bad = install_module(mods, "app", empty)
    rec = srv.wait_app("app", state="failed")
    assert rec["failed_sha256"] == bad and "exports no wasi:cli/run" in rec["error"]
    assert srv.get("/app")[0] == 200  # the previous component keeps serving


def test_check_module_refuses_a_component_that_does_not_link(server_build, tmp_path):
    import wasmtime

    comp = tmp_path / "needs_http.wasm"
    comp.write_bytes(wasmtime.wat2wasm('(component (import "wasi:http/outgoing-handler@0.2.0" (instance)))'))
    proc = subprocess.run(
        [str(server_build), "--check-module", str(comp), "--cache", ""], capture_output=True, text=True
    )
    assert proc.returncode == 1
    line = proc.stdout.strip()
    assert "\n" not in line and "wasi:cli/run" in line


def test_hot_swap_module_component_module_under_load(run_server, wasm_guests, components, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    srv = run_server(mods, cache=str(tmp_path / "cache"))
    versions = [wasm_guests["hello"], components["hello"], wasm_guests["hello"], components["hello"]]
    srv.wait_app("app", install_module(mods, "app", versions[0]))
    stop = threading.Event()
    results = []

    def load():
        while not stop.is_set():
            try:
                results.append(srv.get("/app", timeout=10)[0])
            except OSError as exc:
                results.append(str(exc))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for data in versions[1:]:
            time.sleep(0.5)
            sha = install_module(mods, "app", data)
            rec = srv.wait_app("app", sha)
            assert rec["kind"] == ("component" if data in components.values() else "module")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(20)
    failed = [r for r in results if r != 200]
    assert len(results) > 50 and not failed, (len(results), failed[:5])
