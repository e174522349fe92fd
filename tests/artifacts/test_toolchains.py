"""Toolchain backends: pure pieces (tables), real compiles, the doctor task."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from tiramisu_tasks import toolchains as tc
from tiramisu_tasks.errors import BuildError, ToolMissing, UsageError
from tiramisu_tasks.targets import parse_target_name
from tiramisu_tasks.toolchains import docker as dk

# ------------------------------------------------------------- docker ---

MOUNTS = [
    (
        "ro-and-rw",
        dict(read_only=["/src"], writable=["/out"], cwd="/src"),
        {"/src": {"bind": "/src", "mode": "ro"}, "/out": {"bind": "/out", "mode": "rw"}},
    ),
    ("rw-wins", dict(read_only=["/a"], writable=["/a"], cwd=None), {"/a": {"bind": "/a", "mode": "rw"}}),
    (
        "cwd-inside-a-mount",
        dict(read_only=[], writable=["/out"], cwd="/out/obj"),
        {"/out": {"bind": "/out", "mode": "rw"}},
    ),
    (
        "cwd-added-read-only",
        dict(read_only=["/src"], writable=[], cwd="/work"),
        {"/src": {"bind": "/src", "mode": "ro"}, "/work": {"bind": "/work", "mode": "ro"}},
    ),
    (
        "prefix-is-not-a-parent",
        dict(read_only=["/out"], writable=[], cwd="/output"),
        {"/out": {"bind": "/out", "mode": "ro"}, "/output": {"bind": "/output", "mode": "ro"}},
    ),
]


@pytest.mark.parametrize("kwargs,expected", [m[1:] for m in MOUNTS], ids=[m[0] for m in MOUNTS])
def test_mounts_keep_absolute_paths(kwargs, expected):
    assert dk.mounts_for(**kwargs) == expected


COMPILERS = [
    ("aarch64", "x86_64", "aarch64-linux-gnu-gcc"),
    ("x86_64", "x86_64", "x86_64-linux-gnu-gcc"),
    ("x86_64", "aarch64", "x86_64-linux-gnu-gcc"),
    ("x86_64-linux-musl", "x86_64", "musl-gcc"),
    ("aarch64-linux-musl", "x86_64", None),
    ("aarch64-linux-musl", "aarch64", "musl-gcc"),
]


@pytest.mark.parametrize("target,engine,cc", COMPILERS, ids=[f"{c[0]}-on-{c[1]}" for c in COMPILERS])
def test_compiler_in_image(target, engine, cc):
    assert dk.compiler_in_image(parse_target_name(target), engine) == cc


def test_image_tag_changes_with_every_input():
    base = dk.image_tag("FROM x", "debian:bookworm", "x86_64")
    assert base.startswith("tiramisu-toolchain:")
    assert base == dk.image_tag("FROM x", "debian:bookworm", "x86_64")
    assert (
        len(
            {
                base,
                dk.image_tag("FROM y", "debian:bookworm", "x86_64"),
                dk.image_tag("FROM x", "debian:trixie", "x86_64"),
                dk.image_tag("FROM x", "debian:bookworm", "aarch64"),
            }
        )
        == 4
    )


def test_base_image_setting_beats_environment_beats_default(monkeypatch):
    monkeypatch.delenv(dk.BASE_IMAGE_ENV, raising=False)
    assert dk.resolve_base_image(None) == "debian:bookworm"
    monkeypatch.setenv(dk.BASE_IMAGE_ENV, "local/base:1")
    assert dk.resolve_base_image(None) == "local/base:1"
    assert dk.resolve_base_image("cfg/base:2") == "cfg/base:2"
    assert tc.get_toolchain("docker", {"docker_base_image": "cfg/base:2"}).base_image == "cfg/base:2"


def test_settings_from_config():
    c = SimpleNamespace(config={"tiramisu": {"docker_base_image": "img:1", "http_port": 1}})
    assert tc.settings_from_config(c) == {"docker_base_image": "img:1"}
    assert tc.settings_from_config(SimpleNamespace()) == {}


def test_dockerfile_is_package_data_and_takes_the_base_as_an_argument():
    text = dk.DOCKERFILE.read_text()
    assert "ARG BASE=debian:bookworm" in text and "FROM ${BASE}" in text
    assert "gcc-aarch64-linux-gnu" in text and "gcc-x86-64-linux-gnu" in text


def test_docker_without_engine_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    why = tc.get_toolchain("docker").problem(parse_target_name("aarch64"))
    assert why and "no Docker engine" in why and "docker.io" in why


# ------------------------------------------------------------ general ---


def test_unknown_toolchain_is_a_usage_error():
    with pytest.raises(UsageError, match="auto, zig, gcc, docker"):
        tc.get_toolchain("clang")


def test_parse_glibc_macros():
    text = "#define __GLIBC_MINOR__ 17\n#define __GNU_LIBRARY__ 6\n#define __GLIBC__ 2\n"
    assert tc.parse_glibc_macros(text) == "2.17"
    with pytest.raises(BuildError):
        tc.parse_glibc_macros("#define __MUSL__ 1\n")


def test_explicit_backend_that_cannot_build_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    with pytest.raises(ToolMissing, match="toolchain docker cannot build for aarch64-linux-gnu"):
        tc.choose_toolchain("docker", parse_target_name("aarch64"))


def test_auto_prefers_zig():
    assert tc.choose_toolchain("auto", parse_target_name("aarch64")).name == "zig"


HELLO = '#include <stdio.h>\nint main(void) { printf("hello %d\\n", (int)sizeof(void *)); return 0; }\n'


@pytest.mark.parametrize("backend,glibc", [("zig", "2.17"), ("gcc", None)])
def test_backend_compiles_hello_for_aarch64_that_runs_under_qemu(backend, glibc, tmp_path, qemu_aarch64):
    target = parse_target_name("aarch64")
    chain = tc.get_toolchain(backend).require(target)
    src = tmp_path / "hello.c"
    src.write_text(HELLO)
    out = tmp_path / "hello"
    chain.run(
        [*chain.cc(target), "-O2", str(src), "-o", str(out)],
        cwd=str(tmp_path),
        read_only=(str(tmp_path),),
        writable=(str(tmp_path),),
    )
    from tiramisu_tasks.artifacts.elf import read_elf

    assert read_elf(out).machine == "aarch64"
    run = subprocess.run([*qemu_aarch64, str(out)], capture_output=True, text=True, timeout=60)
    assert run.stdout == "hello 8\n"
    if glibc:
        assert chain.glibc_version(target) == glibc


def test_docker_backend_builds_as_the_invoking_user_with_read_only_sources(docker_env, tmp_path, qemu_aarch64):
    target = parse_target_name("aarch64")
    chain = tc.get_toolchain("docker", docker_env).require(target)
    src_dir = tmp_path / "src"
    out_dir = tmp_path / "out"
    src_dir.mkdir()
    out_dir.mkdir()
    (src_dir / "hello.c").write_text(HELLO)
    chain.run(
        [*chain.cc(target), "-O2", str(src_dir / "hello.c"), "-o", str(out_dir / "hello")],
        cwd=str(src_dir),
        read_only=(str(src_dir),),
        writable=(str(out_dir),),
    )
    st = (out_dir / "hello").stat()
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    run = subprocess.run([*qemu_aarch64, str(out_dir / "hello")], capture_output=True, text=True, timeout=60)
    assert run.stdout == "hello 8\n"
    # sources are mounted read-only; the container has no network
    with pytest.raises(BuildError, match="Read-only file system"):
        chain.run(["touch", str(src_dir / "x")], cwd=str(src_dir), read_only=(str(src_dir),))
    ids = chain.run(["id", "-u"], cwd=str(src_dir), read_only=(str(src_dir),)).strip()
    assert ids == str(os.getuid())
    with pytest.raises(BuildError):
        chain.run(["getent", "hosts", "deb.debian.org"], cwd=str(src_dir), read_only=(str(src_dir),))


# ------------------------------------------------------------- doctor ---


def test_doctor_json_lists_every_backend_and_target():
    proc = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", "toolchain.doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)["backends"]
    assert [b["backend"] for b in report] == ["zig", "gcc", "docker"]
    zig = report[0]["targets"]
    assert set(zig) == {"x86_64-linux-gnu", "aarch64-linux-gnu", "x86_64-linux-musl", "aarch64-linux-musl"}
    assert all(why is None for why in zig.values())


def test_doctor_table_names_the_fix(monkeypatch, tmp_path):
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"}
    proc = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", "toolchain.doctor", "--arch", "aarch64"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["BACKEND", "WORKS", "TARGETS", "FIX"]
    docker = [ln for ln in lines if ln.startswith("docker")][0]
    assert " no " in docker and "docker.io" in docker


def test_summary_rows_are_pure():
    from tiramisu_tasks.tasks.toolchain import summary_rows

    report = [
        {"backend": "gcc", "targets": {"a": None, "b": "install x"}, "notes": []},
        {"backend": "docker", "targets": {"a": "no engine", "b": "no engine"}, "notes": []},
    ]
    assert summary_rows(report) == [["gcc", "yes", "a", "install x"], ["docker", "no", "-", "no engine"]]
