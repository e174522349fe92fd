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


RUN_EXPORT = """
  (core module $m (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $ri (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $ri))"""

HTTP_HANDLER = """
  (core module $m (func (export "h")))
  (core instance $i (instantiate $m))
  (func $h (canon lift (core func $i "h")))
  (instance $hi (export "handle" (func $h)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $hi))"""

# Components the box cannot run: (WAT, what the server's one line says, what build says).
UNRUNNABLE = {
    "imports-wasi-http": (
        '(component (import "wasi:http/outgoing-handler@0.2.0" (instance (export "handle" (func))))' + RUN_EXPORT + ")",
        "link failed: component imports instance `wasi:http/outgoing-handler@0.2.0`",
        "imports wasi:http/outgoing-handler@0.2.0: wasi:http is not provided",
    ),
    "http-handler": (
        "(component" + HTTP_HANDLER + ")",
        "wasi:http handlers are not supported",
        "a wasi:http handler",
    ),
    "no-run": ("(component)", "exports no wasi:cli/run", "exports no wasi:cli/run"),
}


@pytest.mark.parametrize("case", sorted(UNRUNNABLE))
def test_unrunnable_components_are_refused_in_one_line(server_build, tmp_path, case):
    import wasmtime

    from tiramisu_tasks.apps.validate import InvalidWasm, validate_bytes

    wat, server_says, build_says = UNRUNNABLE[case]
    comp = tmp_path / f"{case}.wasm"
    comp.write_bytes(wasmtime.wat2wasm(wat))
    binary = server_build / "bin" / "custom_server"
    proc = subprocess.run([str(binary), "--check-module", str(comp), "--cache", ""], capture_output=True, text=True)
    assert proc.returncode == 1
    line = proc.stdout.strip()
    assert "\n" not in line and server_says in line, line
    with pytest.raises(InvalidWasm) as err:
        validate_bytes(comp.read_bytes(), "app.wasm")
    assert "\n" not in err.value.message and build_says in err.value.message, err.value.message


def test_a_runnable_minimal_component_passes_both_checks(server_build, tmp_path):
    import wasmtime

    from tiramisu_tasks.apps.validate import validate_bytes

    comp = tmp_path / "runonly.wasm"
    comp.write_bytes(wasmtime.wat2wasm("(component" + RUN_EXPORT + ")"))
    binary = server_build / "bin" / "custom_server"
    proc = subprocess.run([str(binary), "--check-module", str(comp), "--cache", ""], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ok ") and "component" in proc.stdout
    assert validate_bytes(comp.read_bytes(), "app.wasm").run_export == "wasi:cli/run@0.2.0"


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


def test_a_component_precompiled_locally_is_loaded_by_the_server(server_build, components, tmp_path):
    """deploy --aot: the same engine settings, Component.serialize here, deserialized on the box."""
    from .test_aot import SERVER_FLAGS, precompiled_for

    comp = components["hello"]
    cwasm = precompiled_for(server_build, comp, tmp_path, pooling="on")
    flags = [arg for k, v in SERVER_FLAGS.items() for arg in ("--" + k, v)]
    binary = str(server_build / "bin" / "custom_server")
    argv = [binary, "--check-module", str(comp), "--pooling", "on", *flags, "--precompiled", str(cwasm)]
    proc = subprocess.run(argv + ["--cache", str(tmp_path / "cache")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["ok", sha256_bytes(comp.read_bytes()), "precompiled", "component"]
