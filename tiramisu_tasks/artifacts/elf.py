"""Facts about built ELF binaries, read with pyelftools (no readelf needed).

Used to check artifacts before they ship: the machine a binary is for, whether
it is static, its program interpreter, and which glibc symbol versions it
needs (the glibc floor of a box that can run it).

A file that is not ELF, or is cut short or damaged, raises :class:`ElfError`
with one line naming the file; nothing of pyelftools' own exceptions escapes.
"""

import io
import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

from elftools.common.exceptions import ELFError as _PyElfError
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

from ..errors import BuildError

# pyelftools' e_machine names -> the architecture names used everywhere else
MACHINES = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_ARM": "arm", "EM_RISCV": "riscv", "EM_386": "i386"}

VER_FLG_WEAK = 0x2

# What pyelftools raises on a damaged file: its own errors, or the lower-level
# ones when an offset points outside the data or a name is not text.
_DAMAGED = (_PyElfError, struct.error, ValueError, EOFError, IndexError, KeyError, OverflowError, UnicodeDecodeError)


class ElfError(BuildError):
    """Not an ELF file of a kind we can read."""


@dataclass(frozen=True)
class VersionNeed:
    file: str  # the library the version is needed from (libc.so.6)
    name: str  # GLIBC_2.17
    weak: bool  # a weak need does not stop the loader when missing


@dataclass(frozen=True)
class ElfInfo:
    machine: str  # x86_64 | aarch64 | ...
    shared: bool  # ET_DYN: a shared library or a PIE
    interpreter: Optional[str]  # /lib/ld-linux-aarch64.so.1, None when static
    dynamic: bool  # has a PT_DYNAMIC segment (needs a loader or is a PIE)
    version_needs: Tuple[VersionNeed, ...]

    @property
    def static(self):
        return self.interpreter is None


def _machine_name(e_machine):
    if isinstance(e_machine, int):
        return f"em{e_machine}"
    return MACHINES.get(e_machine, e_machine[3:].lower() if e_machine.startswith("EM_") else e_machine)


# Where the ELF header keeps the two table offsets, entry sizes and counts:
# (header size, struct format of e_phoff, e_shoff, e_flags, e_ehsize,
# e_phentsize, e_phnum, e_shentsize, e_shnum, byte offset of e_phoff) per class.
_TABLE_FIELDS = {1: (52, "IIIHHHHH", 28), 2: (64, "QQIHHHHH", 32)}


def _tables_fit(data, name):
    """Refuse a file cut before the end of its header or either header table.

    Linkers put the section header table last, so this catches nearly every
    truncation from the fixed-size header alone, before pyelftools builds its
    parsers (which is much slower than this).
    """
    if len(data) < 6 or data[4] not in _TABLE_FIELDS or data[5] not in (1, 2):
        raise ElfError(f"{name}: damaged or truncated ELF file (no valid ELF identification)")
    header_size, fields, offset = _TABLE_FIELDS[data[4]]
    if len(data) < header_size:
        raise ElfError(f"{name}: truncated ELF file (header needs {header_size} bytes, file has {len(data)})")
    order = "<" if data[5] == 1 else ">"
    phoff, shoff, _flags, _ehsize, phentsize, phnum, shentsize, shnum = struct.unpack_from(order + fields, data, offset)
    for start, length, what in (
        (phoff, phentsize * phnum, "program headers"),
        (shoff, shentsize * shnum, "section headers"),
    ):
        if length and start + length > len(data):
            raise ElfError(f"{name}: truncated ELF file ({what} end at byte {start + length}, file has {len(data)})")


def _check_extent(elffile, size, name):
    """Every segment and section that has bytes in the file ends inside it.

    pyelftools reads a cut-off table or section as short data without
    complaint, so a truncated file is caught here, before anything is read.
    """
    for segment in elffile.iter_segments():
        end = segment["p_offset"] + segment["p_filesz"]
        if end > size:
            raise ElfError(
                f"{name}: truncated ELF file (a {segment['p_type']} segment ends at byte {end}, file has {size})"
            )
    for section in elffile.iter_sections():
        end = section["sh_offset"] + section["sh_size"]
        if section["sh_type"] != "SHT_NOBITS" and end > size:
            raise ElfError(
                f"{name}: truncated ELF file (section {section.name or '?'} ends at byte {end}, file has {size})"
            )


def _version_needs(elffile) -> List[VersionNeed]:
    needs = []
    for section in elffile.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        for verneed, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                needs.append(VersionNeed(verneed.name, aux.name, bool(aux["vna_flags"] & VER_FLG_WEAK)))
    return needs


def parse_elf(data: bytes, name="file") -> ElfInfo:
    """Pure: machine, interpreter and version needs of an ELF image."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name} is not an ELF file")
    _tables_fit(data, name)
    try:
        elffile = ELFFile(io.BytesIO(data))
        _check_extent(elffile, len(data), name)
        interpreter, dynamic = None, False
        for segment in elffile.iter_segments():
            if segment["p_type"] == "PT_INTERP":
                interpreter = segment.get_interp_name()
            elif segment["p_type"] == "PT_DYNAMIC":
                dynamic = True
        needs = _version_needs(elffile)
        return ElfInfo(
            _machine_name(elffile["e_machine"]), elffile["e_type"] == "ET_DYN", interpreter, dynamic, tuple(needs)
        )
    except ElfError:
        raise
    except _DAMAGED as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ElfError(f"{name}: damaged or truncated ELF file ({detail})") from None


def read_elf(path) -> ElfInfo:
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_elf(data, name=str(path))


def _glibc_tuple(name):
    return tuple(int(x) for x in name[len("GLIBC_") :].split("."))


def glibc_floor(infos, include_weak=False) -> Optional[str]:
    """Highest ``GLIBC_x.y`` version the binaries need (the oldest glibc that runs them).

    Weak needs are left out by default: the loader accepts a missing weak
    version (Rust's std references e.g. ``statx@GLIBC_2.28`` weakly and falls
    back at run time).
    """
    best = None
    for info in infos:
        for need in info.version_needs:
            if not need.name.startswith("GLIBC_") or need.name == "GLIBC_PRIVATE":
                continue
            if need.weak and not include_weak:
                continue
            try:
                version = _glibc_tuple(need.name)
            except ValueError:
                continue
            if best is None or version > best:
                best = version
    return ".".join(str(x) for x in best) if best else None


def describe(info: ElfInfo) -> str:
    """One line like ``file`` prints: ``ELF aarch64, static``."""
    if info.interpreter:
        kind = f"dynamic ({info.interpreter})"
    elif info.shared:
        kind = "shared object" if info.dynamic else "static-pie"
    else:
        kind = "static"
    return f"ELF {info.machine}, {kind}"


def check_machine(path, arch):
    """Raise BuildError unless ``path`` is an ELF binary for ``arch``."""
    info = read_elf(path)
    if info.machine != arch:
        raise BuildError(f"{path} is built for {info.machine}, expected {arch}")
    return info
