"""build_app and the `build` task with real toolchains: caching, --out,
failures that keep to one line, modules refused before any upload."""

import json
import os
import subprocess
import sys
import time

import pytest

from tiramisu_tasks.apps.build import build_app, choose_builder
from tiramisu_tasks.apps.localrun import run_request
from tiramisu_tasks.apps.toolrun import BuildFailed
from tiramisu_tasks.apps.validate import InvalidWasm
from tiramisu_tasks.apps.wagi import Request
from tiramisu_tasks.artifacts import cache
from tiramisu_tasks.errors import ToolMissing
from tiramisu_tasks.paths import repo_root

from .conftest import EXAMPLES

HELLO_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Content-Type: text/plain\\n\\n%s")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const %d))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def wat_app(text):
    return HELLO_WAT % (text, len("Content-Type: text/plain\n\n") + len(text))


def need(language, toolchain=None):
    try:
        return choose_builder(language, toolchain)
    except ToolMissing as exc:
        pytest.skip(exc.message)


def test_unchanged_source_is_a_cache_hit_and_a_change_rebuilds(tmp_path, apps_cache):
    app = tmp_path / "greeter"
    app.mkdir()
    (app / "main.wat").write_text(wat_app("one"))
    first = build_app(app, cache_root=apps_cache)
    again = build_app(app, cache_root=apps_cache)
    assert not first.cached and again.cached and again.sha256 == first.sha256
    assert again.seconds < 0.5
    (app / "main.wat").write_text(wat_app("two"))
    third = build_app(app, cache_root=apps_cache)
    assert not third.cached and third.sha256 != first.sha256
    assert run_request(third.wasm_path, Request()).response.body == b"two"


def test_out_dir_gets_name_dot_wasm(tmp_path, apps_cache):
    src = tmp_path / "Hello World.wat"
    src.write_text(wat_app("hi"))
    result = build_app(src, out_dir=tmp_path / "dist", cache_root=apps_cache)
    assert result.name == "hello-world"
    assert result.wasm_path == tmp_path / "dist" / "hello-world.wasm"
    assert cache.sha256_file(result.wasm_path) == result.sha256
    named = build_app(src, out_dir=tmp_path / "dist", name="greeter", cache_root=apps_cache)
    assert named.wasm_path.name == "greeter.wasm" and named.cached


def test_module_with_invalid_code_is_refused_by_wasmtime_validation(tmp_path, apps_cache):
    src = tmp_path / "typeerr.wat"
    # well-formed text and sections, but i32.add has no operands: only full validation sees it
    src.write_text('(module (memory (export "memory") 1) (func (export "_start") (i32.add) (drop)))')
    with pytest.raises(InvalidWasm, match="not a valid module: Wasmtime rejects it"):
        build_app(src, cache_root=apps_cache)


def test_ready_wasm_is_validated_and_copied(tmp_path, apps_cache):
    import wasmtime

    good = tmp_path / "ready.wasm"
    good.write_bytes(wasmtime.wat2wasm(wat_app("ready")))
    result = build_app(good, cache_root=apps_cache)
    assert result.language == "wasm" and result.toolchain == "copy"
    assert run_request(result.wasm_path, Request()).response.body == b"ready"


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"\0asm\x0d\x00\x01\x00", "exports no wasi:cli/run"),
        (b"\0asm\x01\x00\x00\x00", "exports no _start"),
        (b"junk", "no \\\\0asm magic"),
    ],
    ids=["component", "no-start", "garbage"],
)
def test_unrunnable_wasm_is_refused_and_not_cached(tmp_path, apps_cache, data, msg):
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(data)
    with pytest.raises(InvalidWasm, match=msg):
        build_app(bad, cache_root=apps_cache)
    assert not [
        e
        for e in cache.list_entries(apps_cache)
        if e[3]["inputs"]["entry"] == "bad.wasm" and e[3]["inputs"].get("single_file")
    ]


def test_wat_syntax_error_is_one_line(tmp_path, apps_cache):
    src = tmp_path / "broken.wat"
    src.write_text('(module (func (export "_start") (i32.bogus)))\n')
    with pytest.raises(BuildFailed) as err:
        build_app(src, cache_root=apps_cache)
    assert err.value.message.startswith("WAT (wat2wasm): broken.wat:") and "\n" not in err.value.message


def test_c_compile_error_is_one_line_with_the_full_log_kept(tmp_path, apps_cache):
    need("c")
    src = tmp_path / "oops.c"
    src.write_text("int main(void) { return missing_symbol; }\n")
    with pytest.raises(BuildFailed) as err:
        build_app(src, cache_root=apps_cache)
    assert "build failed (exit 1)" in err.value.message and "missing_symbol" in err.value.message
    assert "\n" not in err.value.message and "oops.c" in err.value.log


def test_single_rust_file_builds_with_rustc(tmp_path, apps_cache):
    need("rust")
    src = tmp_path / "solo.rs"
    src.write_text('fn main() { print!("Content-Type: text/plain\\n\\nsolo {}", std::env::args().count()); }\n')
    result = build_app(src, cache_root=apps_cache)
    assert result.name == "solo" and result.toolchain == "cargo"
    assert run_request(result.wasm_path, Request(query="a&b")).response.body == b"solo 3"


def test_plain_c_forced_through_emscripten(apps_cache):
    need("emscripten")
    result = build_app(EXAMPLES / "hello-c", language="emscripten", cache_root=apps_cache)
    assert result.language == "emscripten"
    body = run_request(result.wasm_path, Request(path="/e")).response.body
    assert body == b"Hello from C! GET /e\n"


@pytest.mark.slow
def test_c_through_zig_cc(apps_cache):
    """The fallback C toolchain (always there: ziglang is a dependency). First use builds wasi-libc."""
    need("c", "zig")
    result = build_app(EXAMPLES / "json-api", toolchain="zig", cache_root=apps_cache)
    assert result.toolchain == "zig"
    resp = run_request(
        result.wasm_path,
        Request("POST", "/session", headers=[("Content-Type", "application/json")], body=b'{"user": "zig"}'),
        app="json-api",
    ).response
    assert resp.status == 200 and len(resp.header_all("Set-Cookie")) == 2


@pytest.mark.slow
def test_zig_build_project(tmp_path, apps_cache):
    """A build.zig project: zig build decides, we take the one .wasm in zig-out/bin.
    Cold (fresh zig global cache) this compiles zig's build runner: minutes."""
    need("zig")
    app = tmp_path / "zigproj"
    (app / "src").mkdir(parents=True)
    (app / "src" / "main.zig").write_text((EXAMPLES / "hello-zig" / "main.zig").read_text())
    (app / "build.zig").write_text(ZIG_BUILD)
    result = build_app(app, cache_root=apps_cache)
    assert result.language == "zig" and result.name == "zigproj"
    assert run_request(result.wasm_path, Request(path="/b")).response.body == b"Hello from Zig! /b\n"
    assert not (app / "zig-out").exists() and not (app / ".zig-cache").exists()


ZIG_BUILD = """const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const exe = b.addExecutable(.{
        .name = "zigproj",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/main.zig"),
            .target = target,
            .optimize = optimize,
        }),
    });
    b.installArtifact(exe);
}
"""


def test_npm_failure_is_one_line(tmp_path, monkeypatch):
    """No registry (a closed loopback port): the AssemblyScript install fails with one line."""
    builder = need("assemblyscript")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    monkeypatch.setenv("npm_config_fetch_retries", "0")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    with pytest.raises(BuildFailed) as err:
        build_app(EXAMPLES / "hello-assemblyscript", cache_root=tmp_path / "cache")
    assert err.value.message.startswith("npm install assemblyscript@") and "install failed" in err.value.message
    assert "\n" not in err.value.message
    assert not cache.list_entries(tmp_path / "cache")  # nothing half-installed counts as cached
    assert builder.toolchain == "asc"


def test_concurrent_builds_of_one_project_agree(tmp_path, apps_cache):
    from concurrent.futures import ThreadPoolExecutor

    app = tmp_path / "twice"
    app.mkdir()
    (app / "main.wat").write_text(wat_app("same"))
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: build_app(app, cache_root=apps_cache), range(4)))
    assert len({r.sha256 for r in results}) == 1


# ---------------------------------------------------------------- the task ---


def tiramisu(*args, cache_dir):
    env = dict(os.environ, TIRAMISU_CACHE=str(cache_dir))
    return subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", *args],
        cwd=str(repo_root()),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=600,
    )


def test_cli_build_json(tmp_path, apps_cache):
    proc = tiramisu("build", "wasm_examples/hello-wat", "--json", "--out", str(tmp_path), cache_dir=apps_cache)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["name"] == "hello-wat" and data["language"] == "wat"
    assert data["wasm_path"] == str(tmp_path / "hello-wat.wasm") and data["size"] > 0
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args,code,msg",
    [
        (["build", "no/such/dir"], 2, "tiramisu: no/such/dir: no such file or directory"),
        (["build", "wasm_examples/hello-wat", "--name", "Bad Name"], 2, "app name 'Bad Name' is not valid"),
        (["build", "wasm_examples/hello-c", "--lang", "rust"], 2, "--lang rust: no rust source"),
    ],
    ids=["missing-source", "bad-name", "wrong-lang"],
)
def test_cli_errors_are_one_line(args, code, msg, apps_cache):
    proc = tiramisu(*args, cache_dir=apps_cache)
    assert proc.returncode == code
    assert msg in proc.stderr and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("tiramisu:")]) == 1


def test_cli_compile_error_shows_log_and_exits_4(tmp_path, apps_cache):
    need("c")
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { syntax error here }\n")
    proc = tiramisu("build", str(src), cache_dir=apps_cache)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "tiramisu: C (clang): build failed"
    ) or proc.stderr.strip().splitlines()[-1].startswith("tiramisu: C (zig): build failed")


def test_cli_build_languages(apps_cache):
    proc = tiramisu("build-languages", "--json", cache_dir=apps_cache)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)["languages"]
    by = {(r["language"], r["toolchain"]): r for r in rows}
    assert by[("wat", "wat2wasm")]["ok"] and by[("c", "zig")]["ok"]
    for r in rows:
        assert r["ok"] or (r["problem"] and "\n" not in r["problem"])
    started = time.monotonic()
    table = tiramisu("build-languages", cache_dir=apps_cache)
    assert table.returncode == 0 and table.stdout.startswith("LANGUAGE")
    assert time.monotonic() - started < 60
