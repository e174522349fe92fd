"""Rust: cargo or rustc for wasm32-wasip1 (or wasm32-wasi), with the installed targets probed."""

import functools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ...errors import BuildError
from ..toolrun import Step, capture
from .base import Builder, _short, which

RUST_WASM_TARGETS = ("wasm32-wasip1", "wasm32-wasi")  # preferred first


def cargo_argv(cargo, target):
    return [cargo, "build", "--release", "--target", target, "--message-format=json-render-diagnostics"]


def cargo_env(rustc, target_dir):
    # RUSTC pins the compiler we checked: otherwise a rustup shim earlier in
    # PATH (without the wasm target) would be used by Debian's cargo.
    # Debian's wasm32 std carries debug info: strip it or a hello is 5 MB.
    return {
        "RUSTC": str(rustc),
        "CARGO_TARGET_DIR": str(target_dir),
        "RUSTC_WRAPPER": None,
        "CARGO_PROFILE_RELEASE_STRIP": "debuginfo",
    }


def rustc_argv(rustc, entry, out, target):
    return [
        rustc,
        "--target",
        target,
        "--edition",
        "2021",
        "-C",
        "opt-level=s",
        "-C",
        "strip=debuginfo",
        "-o",
        str(out),
        str(entry),
    ]


def pick_rust_target(installed: Sequence[str]):
    """The best WASI target among the installed ones (pure)."""
    for t in RUST_WASM_TARGETS:
        if t in installed:
            return t
    return None


def cargo_wasm_outputs(messages_text):
    """Executables a `cargo build --message-format=json` run produced (pure)."""
    found = []
    for line in (messages_text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        exe = msg.get("executable") if msg.get("reason") == "compiler-artifact" else None
        if exe and exe.endswith(".wasm") and exe not in found:
            found.append(exe)
    return found


@dataclass(frozen=True)
class RustToolchain:
    rustc: str
    cargo: Optional[str]
    version: str  # `rustc -vV` first line
    targets: tuple  # installed WASI targets (with a std library)


def rustc_candidates():
    """rustc binaries to consider, in order: $RUSTC, PATH's, Debian's /usr/bin/rustc."""
    seen, out = set(), []
    for cand in (os.environ.get("RUSTC"), which("rustc"), "/usr/bin/rustc"):
        if cand and cand not in seen and Path(cand).exists():
            seen.add(cand)
            out.append(cand)
    return out


def installed_wasi_targets(sysroot):
    """WASI targets whose std library is installed under a rustc sysroot."""
    found = []
    for t in RUST_WASM_TARGETS:
        libdir = Path(sysroot) / "lib" / "rustlib" / t / "lib"
        if libdir.is_dir() and any(libdir.glob("libstd-*.rlib")):
            found.append(t)
    return tuple(found)


@functools.lru_cache(maxsize=None)
def probe_rust(rustc):
    vv = capture([rustc, "-vV"])
    sysroot = capture([rustc, "--print", "sysroot"])
    if not vv or not sysroot:
        return None
    cargo = Path(rustc).parent / "cargo"
    return RustToolchain(
        rustc,
        str(cargo) if cargo.exists() else None,
        vv.splitlines()[0].strip(),
        installed_wasi_targets(sysroot.strip()),
    )


class CargoBuilder(Builder):
    """Rust: the first rustc whose sysroot has a WASI std; cargo beside it."""

    language = "rust"
    toolchain = "cargo"

    def toolchain_info(self):
        for rustc in rustc_candidates():
            info = probe_rust(rustc)
            if info and pick_rust_target(info.targets) and info.cargo:
                return info
        return None

    def problem(self):
        if self.toolchain_info():
            return None
        seen = []
        for rustc in rustc_candidates():
            info = probe_rust(rustc)
            seen.append(f"{_short(rustc)} ({info.version if info else 'does not run'}) has none")
        checked = f" ({'; '.join(seen)})" if seen else ""
        return (
            "rustc: no toolchain with the wasm32-wasip1/wasm32-wasi target"
            + checked
            + "; install Debian packages rustc cargo libstd-rust-dev-wasm32, "
            "or run: rustup target add wasm32-wasip1"
        )

    def identity(self):
        info = self.toolchain_info()
        return f"{info.version} {pick_rust_target(info.targets)}" if info else ""

    def build(self, ctx):
        info = self.toolchain_info()
        target = pick_rust_target(info.targets)
        if ctx.single_file:
            ctx.run(
                Step(
                    rustc_argv(info.rustc, ctx.src / ctx.entry, ctx.out, target),
                    ctx.src,
                    env={"RUSTC_WRAPPER": None},
                    label=self.title,
                )
            )
            return
        target_dir = ctx.scratch / "cargo-target"
        output = ctx.run(
            Step(cargo_argv(info.cargo, target), ctx.src, env=cargo_env(info.rustc, target_dir), label=self.title)
        )
        wasm = cargo_wasm_outputs(output)
        if len(wasm) != 1:
            names = ", ".join(Path(w).name for w in wasm) or "none"
            raise BuildError(f"cargo: expected one binary, built {names} (a Tiramisu app is one [[bin]] crate)")
        shutil.copyfile(wasm[0], ctx.out)
