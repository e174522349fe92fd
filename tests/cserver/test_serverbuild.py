"""server.build: pure command builders, and the real build's output."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiramisu_tasks import serverbuild as sb
from tiramisu_tasks.artifacts import wasmtime as wt
from tiramisu_tasks.targets import get_target, parse_target_name

CC = ["zig-cc", "-target", "x86_64-linux-gnu.2.17"]


def test_static_link_line_is_exact():
    argv = sb.link_argv(CC, ["a.o", "b.o"], "out/custom_server", "/libs", static=True)
    assert argv == CC + [
        "a.o",
        "b.o",
        "-o",
        "out/custom_server",
        "-pthread",
        "-L",
        "/libs",
        "-Wl,-Bstatic",
        "-lwasmtime",
        "-Wl,-Bdynamic",
        "-ldl",
        "-lpthread",
        "-lm",
    ]


def test_dynamic_link_uses_relative_runpath_and_l_flag():
    argv = sb.link_argv(CC, ["a.o"], "bin/custom_server", "lib")
    # -lwasmtime, not a path: the library has no SONAME, and a path would be recorded as NEEDED
    assert "-lwasmtime" in argv and "-Wl,-rpath,$ORIGIN/../lib" in argv
    assert not any(a.endswith("libwasmtime.so") for a in argv)


def test_compile_argv_and_flags():
    argv = sb.compile_argv(CC, "/src/ts_http.c", "/o/ts_http.o", "/src")
    assert argv[:3] == CC and argv[-4:] == ["-c", "/src/ts_http.c", "-o", "/o/ts_http.o"]
    assert "-std=c11" in argv and any(a.startswith("-DTS_WASMTIME_VERSION=") for a in argv)


def test_source_list_is_only_product_sources():
    files = [p.name for p in sb.source_files()]
    assert files == sorted(files) and "ts_main.c" in files and "ts_http.c" in files
    assert all(re.fullmatch(r"ts_\w+\.c", f) for f in files)


def test_build_inputs_change_with_target_and_toolchain():
    class TC:
        name = "fake"

        def __init__(self, ident):
            self.ident = ident

        def identity(self, target):
            return {"cc": self.ident, "t": target.name}

    a = sb.build_inputs(get_target("x86_64"), TC("1"))
    b = sb.build_inputs(get_target("aarch64"), TC("1"))
    c = sb.build_inputs(get_target("x86_64"), TC("2"))
    assert a != b and a != c and a["sources"] == sb.sources_hash()


@pytest.mark.parametrize(
    "name, tag, member",
    [
        ("x86_64", "manylinux2014_x86_64", "wasmtime/linux-x86_64/_libwasmtime.so"),
        ("aarch64", "manylinux2014_aarch64", "wasmtime/linux-aarch64/_libwasmtime.so"),
        ("x86_64-linux-musl", "musllinux_1_2_x86_64", "wasmtime/linux-x86_64/_libwasmtime.so"),
        ("aarch64-linux-musl", "musllinux_1_2_aarch64", "wasmtime/linux-aarch64/_libwasmtime.so"),
    ],
)
def test_wheel_download_command(name, tag, member):
    target = parse_target_name(name)
    assert target.wheel_platforms[0] == tag
    argv = wt.download_argv(tag, "/d", version="50.0.1", python="py")
    assert argv == [
        "py",
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        tag,
        "--dest",
        "/d",
        "wasmtime==50.0.1",
    ]
    assert wt.wheel_member(target) == member


def test_built_server_is_movable_and_glibc_floor(server_build, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(server_build, moved)
    out = subprocess.run([str(moved / "bin" / "custom_server"), "--version"], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0 and "wasmtime 50.0.1" in out.stdout
    readelf = shutil.which("readelf")
    if not readelf:
        pytest.skip("no readelf")
    dyn = subprocess.run([readelf, "-d", str(moved / "bin" / "custom_server")], capture_output=True, text=True).stdout
    assert "[$ORIGIN/../lib]" in dyn and "[libwasmtime.so]" in dyn
    syms = subprocess.run(
        [readelf, "--dyn-syms", "-W", str(moved / "bin" / "custom_server")], capture_output=True, text=True
    ).stdout
    versions = {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+\.\d+(?:\.\d+)?)", syms)}
    if os.environ.get("TIRAMISU_SERVER_TOOLCHAIN", "zig") == "zig":
        assert max(versions) <= (2, 17), sorted(versions)


@pytest.mark.slow
def test_cross_build_aarch64_with_zig(tmp_path):
    from tiramisu_tasks.toolchains import get_toolchain

    target = get_target("aarch64")
    tc = get_toolchain("zig")
    if tc.problem(target):
        pytest.skip(tc.problem(target))
    res = sb.build_server(target, tc, out_dir=tmp_path / "out")
    info = subprocess.run(["file", res["binary"], res["library"]], capture_output=True, text=True).stdout
    assert info.count("ARM aarch64") == 2


def test_server_build_task_json(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", "server.build", "--out", str(tmp_path / "o"), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    import json

    res = json.loads(out.stdout)
    assert Path(res["binary"]).is_file() and Path(res["library"]).is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", "server.build", "--arch", "armv7l"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "armv7l" in bad.stderr and "Traceback" not in bad.stderr
