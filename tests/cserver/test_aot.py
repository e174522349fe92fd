"""Precompiled modules from the local wasmtime-py in the real custom_server.

The settings come from the server itself (`--engine-settings`), the module is
a zig-built libc guest, and every verdict is Wasmtime's own on deserialize.
"""

import json
import os
import platform
import shutil
import subprocess

import pytest

from tests.fixtures.server import install_module, sha256_bytes
from tiramisu_tasks import aot

pytestmark = pytest.mark.skipif(platform.machine() not in ("x86_64", "aarch64"), reason="no Wasmtime here")

SERVER_FLAGS = {"workers": "2", "memory-mb": "128"}


def engine_settings(server_build, **flags):
    argv = [str(server_build / "bin" / "custom_server"), "--engine-settings"]
    for k, v in {**SERVER_FLAGS, **flags}.items():
        argv += [f"--{k}", str(v)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return aot.parse_engine_settings(out)


def precompiled_for(server_build, wasm, tmp_path, cpu_flags=None, **flags):
    settings = engine_settings(server_build, **flags)
    return aot.precompile(
        wasm,
        platform.machine(),
        settings,
        cpu_flags=cpu_flags,
        out_dir=tmp_path / "aot",
        cache_root=tmp_path / "aot-cache",
    )


def metric(srv, name):
    _, _, body = srv.get("/_tiramisu/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    raise AssertionError(f"no metric {name}")


def test_engine_settings_name_the_cache_entries(run_server, server_build, wasm_guests, tmp_path):
    settings = engine_settings(server_build)
    assert settings["wasmtime"] and settings["arch"] == platform.machine()
    assert settings["config"]["epoch_interruption"] is True
    assert aot.settings_problem(settings) is None
    off = engine_settings(server_build, pooling="off")
    assert "pooling" not in off["config"] and off["config"]["memory_guard_size"] == 65536
    assert off["settings_hash"] != settings["settings_hash"]

    mods = tmp_path / "m"
    mods.mkdir()
    sha = install_module(mods, "hello", wasm_guests["hello"])
    srv = run_server(mods, **{k.replace("-", "_"): v for k, v in SERVER_FLAGS.items()})
    srv.wait_app("hello", sha)
    assert (srv.base / "cache" / f"{sha}-{settings['settings_hash']}.cwasm").is_file()


def test_precompiled_module_is_used_on_hot_swap(run_server, server_build, wasm_guests, tmp_path):
    srv = run_server(**{k.replace("-", "_"): v for k, v in SERVER_FLAGS.items()})
    settings = engine_settings(server_build, cache=srv.base / "cache")
    data = wasm_guests["hello"].read_bytes()
    sha = sha256_bytes(data)
    cwasm = precompiled_for(server_build, wasm_guests["hello"], tmp_path, cpu_flags=aot.local_cpu_flags())
    # Deploy's order: the precompiled file is in place before the .wasm rename.
    shipped = srv.base / "cache" / aot.shipped_name(sha)
    shipped.write_bytes(cwasm.read_bytes())
    install_module(srv.modules, "hello", data)
    app = srv.wait_app("hello", sha)
    assert app["code"] == "precompiled" and app["from_cache"] is False
    assert srv.get("/hello")[2] == b"hello from C\n"
    assert metric(srv, "tiramisu_compiles_total") == 0
    assert metric(srv, "tiramisu_precompiled_used_total") == 1
    assert "(precompiled in" in srv.server_log.read_text()
    # adopted as the server's own cache entry: a restart needs no compile either
    assert not shipped.exists()
    assert (srv.base / "cache" / f"{sha}-{settings['settings_hash']}.cwasm").is_file()


def test_baseline_precompiled_module_loads_at_startup(run_server, server_build, wasm_guests, tmp_path):
    mods = tmp_path / "m"
    mods.mkdir()
    sha = install_module(mods, "echo", wasm_guests["echo"])
    cache = tmp_path / "c"
    cache.mkdir()
    cwasm = precompiled_for(server_build, wasm_guests["echo"], tmp_path, cpu_flags=None)
    (cache / aot.shipped_name(sha)).write_bytes(cwasm.read_bytes())
    srv = run_server(mods, cache=cache, **{k.replace("-", "_"): v for k, v in SERVER_FLAGS.items()})
    assert srv.wait_app("echo", sha)["code"] == "precompiled"
    assert srv.get("/echo/x?a=1")[0] == 200
    assert metric(srv, "tiramisu_compiles_total") == 0


def test_mismatched_precompiled_module_is_refused_and_compiled(run_server, server_build, wasm_guests, tmp_path):
    srv = run_server(pooling="on", **{k.replace("-", "_"): v for k, v in SERVER_FLAGS.items()})
    data = wasm_guests["hello"].read_bytes()
    sha = sha256_bytes(data)
    # made for an on-demand engine (64 KiB guards): the pooling server's Wasmtime says no
    cwasm = precompiled_for(server_build, wasm_guests["hello"], tmp_path, pooling="off")
    shipped = srv.base / "cache" / aot.shipped_name(sha)
    shipped.write_bytes(cwasm.read_bytes())
    install_module(srv.modules, "hello", data)
    app = srv.wait_app("hello", sha)
    assert app["code"] == "compiled"
    assert srv.get("/hello")[2] == b"hello from C\n"
    log = srv.server_log.read_text()
    assert f"module {sha[:12]}: precompiled module refused: " in log
    refusal = [ln for ln in log.splitlines() if "precompiled module refused" in ln][0]
    assert "guard size" in refusal and refusal.endswith("; compiled instead")
    assert metric(srv, "tiramisu_precompiled_refused_total") == 1
    assert metric(srv, "tiramisu_compiles_total") == 1
    assert not shipped.exists()  # not retried at every restart


def test_damaged_precompiled_module_is_refused(run_server, wasm_guests, tmp_path):
    srv = run_server()
    data = wasm_guests["hello"].read_bytes()
    sha = sha256_bytes(data)
    (srv.base / "cache" / aot.shipped_name(sha)).write_bytes(b"\x7fELF not really")
    install_module(srv.modules, "hello", data)
    assert srv.wait_app("hello", sha)["code"] == "compiled"
    assert srv.get("/hello")[0] == 200
    assert "precompiled module refused" in srv.server_log.read_text()


def test_check_module_with_precompiled(server_build, wasm_guests, tmp_path):
    binary = str(server_build / "bin" / "custom_server")
    wasm = str(wasm_guests["hello"])
    sha = sha256_bytes(wasm_guests["hello"].read_bytes())
    good = precompiled_for(server_build, wasm_guests["hello"], tmp_path / "g", pooling="on")
    bad = precompiled_for(server_build, wasm_guests["hello"], tmp_path / "b", pooling="off")
    flags = [arg for k, v in SERVER_FLAGS.items() for arg in ("--" + k, v)]
    base = [binary, "--check-module", wasm, "--pooling", "on", *flags]

    cache = tmp_path / "cache"
    cache.mkdir()
    p = subprocess.run(base + ["--precompiled", str(good), "--cache", str(cache)], capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, f"ok {sha} precompiled\n")
    assert good.is_file() and list(cache.iterdir()) == []  # deploy still owns the file: nothing moved, no compile

    p = subprocess.run(base + ["--precompiled", str(bad), "--cache", str(cache)], capture_output=True, text=True)
    assert (p.returncode, p.stdout) == (0, f"ok {sha} compiled\n")
    assert "precompiled module refused" in p.stderr and bad.is_file()
    settings_hash = engine_settings(server_build, pooling="on")["settings_hash"]
    assert [f.name for f in cache.iterdir()] == [f"{sha}-{settings_hash}.cwasm"]

    p = subprocess.run(
        base + ["--precompiled", str(tmp_path / "missing.cwasm"), "--cache", ""], capture_output=True, text=True
    )
    assert p.returncode == 1 and "missing.cwasm: cannot open" in p.stdout

    p = subprocess.run([binary, "--precompiled", str(good)], capture_output=True, text=True)
    assert p.returncode == 2 and "--precompiled goes with --check-module" in p.stderr


def test_precompile_refuses_other_arch(server_build, wasm_guests, tmp_path):
    settings = engine_settings(server_build)
    other = "aarch64" if platform.machine() == "x86_64" else "x86_64"
    with pytest.raises(aot.AotUnavailable) as exc:
        aot.precompile(wasm_guests["hello"], other, settings, out_dir=tmp_path)
    assert f"cannot compile for {other}; the box's server will compile and cache it" in exc.value.message
    odd = json.loads(json.dumps(settings))
    odd["config"]["consume_fuel"] = True
    with pytest.raises(aot.AotUnavailable):
        aot.precompile(wasm_guests["hello"], platform.machine(), odd, out_dir=tmp_path)


def test_deploy_shape_end_to_end(run_server, server_build, wasm_guests, tmp_path):
    """What deploy --aot does, with the real binary as "the box": facts over sh,
    prepare_shipment, the batch check on staged files, the renames in batch
    order, then the .wasm switch."""
    env = tmp_path / "env"
    for d in ("conf", "wasm_modules", "cache", "logs", "run", "releases"):
        (env / d).mkdir(parents=True)
    conf = env / "conf" / "server.conf"
    conf.write_text("workers = 2\nmemory-mb = 128\n")
    binary = str(server_build / "bin" / "custom_server")
    facts = subprocess.run(
        ["sh", "-c", aot.box_facts_command(binary, str(conf))], capture_output=True, text=True, check=True
    ).stdout
    wasm = wasm_guests["hello"]
    sha = sha256_bytes(wasm.read_bytes())
    other = "aarch64" if platform.machine() == "x86_64" else "x86_64"
    refused = aot.prepare_shipment(facts, other, wasm, sha)
    assert not refused.ok and refused.local is None and f"cannot compile for {other}" in refused.reason

    shipment = aot.prepare_shipment(facts, platform.machine(), wasm, sha, cache_root=tmp_path / "ac")
    assert shipment.ok, shipment.reason
    assert shipment.remote == str(env / "cache" / f"{sha}.cwasm")
    # the batch: $T/0 = release .wasm, $T/1 = .cwasm; check, then mv in order
    stage = tmp_path / "stage"
    stage.mkdir()
    shutil.copyfile(wasm, stage / "0")
    shutil.copyfile(shipment.local, stage / "1")
    check = subprocess.run(
        ["sh", "-c", f"T={stage}; {aot.check_command(binary, str(conf))}"], capture_output=True, text=True
    )
    assert check.returncode == 0 and check.stdout == f"ok {sha} precompiled\n", check
    os.replace(stage / "0", env / "releases" / "hello.wasm")
    os.replace(stage / "1", shipment.remote)

    srv = run_server(env / "wasm_modules", cache=env / "cache", workers=2, memory_mb=128)
    install_module(srv.modules, "hello", (env / "releases" / "hello.wasm").read_bytes())
    assert srv.wait_app("hello", sha)["code"] == "precompiled"
    assert srv.get("/hello")[2] == b"hello from C\n"
