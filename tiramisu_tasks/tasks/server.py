"""server.*: build custom_server (the C WebAssembly application server) for a target."""

import platform
from pathlib import Path

from invoke import Collection

from ..errors import UsageError
from ..targets import parse_target_name
from ..taskkit import emit_json, note, out, task
from ..toolchains import choose_toolchain, settings_from_config


def _target_for(arch):
    """--arch value (x86_64, aarch64-linux-musl, arm64 ...) or this machine."""
    return parse_target_name(arch or platform.machine())


@task(
    help={
        "out": "directory to put bin/custom_server and lib/libwasmtime.so into (default: only cache)",
        "arch": "target: x86_64, aarch64, or with libc, e.g. aarch64-linux-musl (default: this machine)",
        "toolchain": "zig | gcc | docker | auto (default: auto = first that works)",
        "static_lib": "link a user-supplied static libwasmtime.a instead of the wheel's shared library",
        "json": "print the result as JSON",
    }
)
def build(c, out_=None, arch=None, toolchain="auto", static_lib=None, json=False):
    """Build custom_server for a target (cached by Wasmtime version, target, toolchain, sources)."""
    from ..serverbuild import build_server

    target = _target_for(arch)
    if static_lib and not Path(static_lib).is_file():
        raise UsageError(f"--static-lib: no such file {static_lib}")
    tc = choose_toolchain(toolchain, target, settings_from_config(c))
    note(f"server.build: target {target.name}, toolchain {tc.name}")
    result = build_server(target, tc, out_dir=out_, static_lib=static_lib)
    if json:
        emit_json(result)
    else:
        where = Path(result["binary"]).parent.parent
        out(f"custom_server for {target.name} ({'cached' if result['hit'] else 'built'}): {where}")


# invoke turns `out_` into --out
ns = Collection("server", build)
