"""The ELF reader agrees with binutils' readelf on real binaries and refuses damaged ones in one line."""

import random
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tiramisu_tasks.artifacts import elf
from tiramisu_tasks.errors import BuildError

needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="binutils readelf not installed")


def readelf_needs(path):
    """(file, name, weak) triples from readelf -V, for comparison."""
    text = subprocess.run(["readelf", "-VW", str(path)], capture_output=True, text=True, check=True).stdout
    out, current = [], None
    section = text.split("Version needs section", 1)[1] if "Version needs section" in text else ""
    for line in section.splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags: (\S+)", line)
        if m:
            out.append((current, m.group(1), "WEAK" in m.group(2)))
    return sorted(out)


@pytest.fixture(scope="module")
def zig_binaries(tmp_path_factory):
    """A tiny program built for both arches with zig at the glibc floor, and for musl."""
    d = tmp_path_factory.mktemp("elf")
    src = d / "t.c"
    src.write_text(
        "#include <stdio.h>\n#include <math.h>\n"
        'int main(int c, char **v) { printf("%f\\n", sqrt((double)c)); return 0; }\n'
    )
    built = {}
    for target in ("x86_64-linux-gnu.2.17", "aarch64-linux-gnu.2.17", "aarch64-linux-musl"):
        out = d / target
        subprocess.run(
            [sys.executable, "-m", "ziglang", "cc", "-target", target, str(src), "-lm", "-o", str(out)],
            check=True,
            capture_output=True,
        )
        built[target] = out
    return built


@needs_readelf
@pytest.mark.parametrize("path", ["/bin/ls", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"])
def test_version_needs_match_readelf_on_system_files(path):
    import os

    if not os.path.exists(path):
        pytest.skip(f"{path} not on this machine")
    info = elf.read_elf(path)
    assert sorted((n.file, n.name, n.weak) for n in info.version_needs) == readelf_needs(path)


@needs_readelf
def test_zig_binaries(zig_binaries):
    gnu64 = elf.read_elf(zig_binaries["x86_64-linux-gnu.2.17"])
    arm = elf.read_elf(zig_binaries["aarch64-linux-gnu.2.17"])
    musl = elf.read_elf(zig_binaries["aarch64-linux-musl"])
    assert (gnu64.machine, arm.machine, musl.machine) == ("x86_64", "aarch64", "aarch64")
    assert arm.interpreter == "/lib/ld-linux-aarch64.so.1"
    floor = tuple(int(x) for x in elf.glibc_floor([gnu64]).split("."))
    assert floor <= (2, 17)
    assert elf.glibc_floor([arm]) == "2.17"
    assert elf.glibc_floor([musl]) is None
    for path in zig_binaries.values():
        assert sorted((n.file, n.name, n.weak) for n in elf.read_elf(path).version_needs) == readelf_needs(path)


def test_weak_needs_do_not_raise_the_floor():
    needs = (
        elf.VersionNeed("libc.so.6", "GLIBC_2.17", False),
        elf.VersionNeed("libc.so.6", "GLIBC_2.28", True),
        elf.VersionNeed("libc.so.6", "GLIBC_PRIVATE", False),
        elf.VersionNeed("libgcc_s.so.1", "GCC_3.0", False),
        elf.VersionNeed("libc.so.6", "GLIBC_2.9", False),
    )
    info = elf.ElfInfo("x86_64", True, None, True, needs)
    assert elf.glibc_floor([info]) == "2.17"
    assert elf.glibc_floor([info], include_weak=True) == "2.28"


def test_not_elf_is_refused(tmp_path):
    p = tmp_path / "script"
    p.write_text("#!/bin/sh\n")
    with pytest.raises(elf.ElfError, match="not an ELF"):
        elf.read_elf(p)
    assert issubclass(elf.ElfError, BuildError)


def test_check_machine(zig_binaries):
    with pytest.raises(BuildError, match="built for aarch64, expected x86_64"):
        elf.check_machine(zig_binaries["aarch64-linux-musl"], "x86_64")


SMALL_ELF = Path("/bin/true")
needs_small_elf = pytest.mark.skipif(not SMALL_ELF.exists(), reason="/bin/true missing")


def _one_line_error(data, name="bin"):
    with pytest.raises(elf.ElfError) as caught:
        elf.parse_elf(data, name=name)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(name)
    return message


@needs_small_elf
def test_every_truncation_of_a_real_binary_is_a_one_line_error():
    data = SMALL_ELF.read_bytes()
    assert elf.parse_elf(data).machine  # the whole file reads
    for n in range(len(data)):
        _one_line_error(data[:n])


@needs_small_elf
def test_a_segment_cut_short_is_reported_even_without_a_section_table():
    data = bytearray(SMALL_ELF.read_bytes())
    if data[4] != 2 or data[5] != 1:
        pytest.skip("expects a 64-bit little-endian /bin/true")
    struct.pack_into("<Q", data, 40, 0)  # e_shoff
    struct.pack_into("<HHH", data, 58, 0, 0, 0)  # e_shentsize, e_shnum, e_shstrndx
    assert elf.parse_elf(bytes(data)).interpreter  # still readable from its segments
    last_segment_end = len(data) - 1
    assert "truncated" in _one_line_error(bytes(data[: last_segment_end // 2]))


@pytest.mark.parametrize(
    "data",
    [b"", b"\x7f", b"\x7fELF", b"#!/bin/sh\necho hi\n", b"\x7fELF" + b"\xff" * 60],
    ids=["empty", "one-byte", "magic-only", "script", "bad-class"],
)
def test_not_elf_or_no_header_is_a_one_line_error(data, tmp_path):
    _one_line_error(data)
    path = tmp_path / "file"
    path.write_bytes(data)
    with pytest.raises(elf.ElfError, match=str(path)):
        elf.read_elf(path)


@needs_small_elf
def test_damaged_bytes_never_escape_as_another_exception():
    data = SMALL_ELF.read_bytes()
    rng = random.Random(10)  # fixed: the same damaged files every run
    for _ in range(400):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            # mostly in the headers and tables, where the reader looks
            where = rng.randrange(64 + 56 * 14) if rng.random() < 0.7 else rng.randrange(len(damaged))
            damaged[where] = rng.randrange(256)
        try:
            elf.parse_elf(bytes(damaged), name="bin")
        except elf.ElfError as exc:
            assert "\n" not in str(exc)
