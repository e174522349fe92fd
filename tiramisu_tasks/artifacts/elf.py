"""Facts about built ELF binaries, read in pure Python (no readelf needed).

Used to check artifacts before they ship: the machine a binary is for, whether
it is static, its program interpreter, and which glibc symbol versions it
needs (the glibc floor of a box that can run it).

Only 64-bit little-endian ELF is parsed (every supported target); anything
else raises :class:`ElfError`.
"""

import struct
from dataclasses import dataclass
from typing import List, Optional, Tuple

from ..errors import BuildError

EM_NAMES = {62: "x86_64", 183: "aarch64", 40: "arm", 243: "riscv", 3: "i386"}

PT_INTERP = 3
PT_DYNAMIC = 2
SHT_GNU_VERNEED = 0x6FFFFFFE
VER_FLG_WEAK = 0x2


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


def _cstr(blob, offset):
    end = blob.find(b"\0", offset)
    return blob[offset:end if end >= 0 else len(blob)].decode("ascii", "replace")


def parse_elf(data: bytes, name="file") -> ElfInfo:
    """Pure: machine, interpreter and version needs of a 64-bit LE ELF image."""
    if data[:4] != b"\x7fELF":
        raise ElfError(f"{name} is not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError(f"{name}: only 64-bit little-endian ELF is supported")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    e_phoff, e_shoff = struct.unpack_from("<QQ", data, 32)
    e_phentsize, e_phnum, e_shentsize, e_shnum = struct.unpack_from("<HHHH", data, 54)
    machine = EM_NAMES.get(e_machine, f"em{e_machine}")

    interpreter = None
    dynamic = False
    for i in range(e_phnum):
        p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == PT_INTERP:
            interpreter = data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
        elif p_type == PT_DYNAMIC:
            dynamic = True

    sections = []
    for i in range(e_shnum):
        (sh_name, sh_type, _fl, _addr, sh_offset, sh_size, sh_link, sh_info) = struct.unpack_from(
            "<IIQQQQII", data, e_shoff + i * e_shentsize)
        sections.append((sh_type, sh_offset, sh_size, sh_link, sh_info))

    needs: List[VersionNeed] = []
    for sh_type, offset, _size, link, count in sections:
        if sh_type != SHT_GNU_VERNEED or link >= len(sections):
            continue
        _t, str_off, str_size, _l, _i = sections[link]
        strtab = data[str_off:str_off + str_size]
        pos = offset
        for _ in range(count):  # sh_info holds the number of Verneed entries
            _ver, cnt, vn_file, vn_aux, vn_next = struct.unpack_from("<HHIII", data, pos)
            lib = _cstr(strtab, vn_file)
            apos = pos + vn_aux
            for _ in range(cnt):
                _hash, flags, _other, vna_name, vna_next = struct.unpack_from("<IHHII", data, apos)
                needs.append(VersionNeed(lib, _cstr(strtab, vna_name), bool(flags & VER_FLG_WEAK)))
                if not vna_next:
                    break
                apos += vna_next
            if not vn_next:
                break
            pos += vn_next
    return ElfInfo(machine, e_type == 3, interpreter, dynamic, tuple(needs))


def read_elf(path) -> ElfInfo:
    with open(path, "rb") as fh:
        data = fh.read()
    return parse_elf(data, name=str(path))


def _glibc_tuple(name):
    return tuple(int(x) for x in name[len("GLIBC_"):].split("."))


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
