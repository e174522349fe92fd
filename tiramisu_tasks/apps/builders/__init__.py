"""One builder per toolchain that turns a language into a WASI command module.

One module per toolchain family: :mod:`.cfamily` (C, C++, Zig, Emscripten),
:mod:`.rust`, :mod:`.go`, :mod:`.assemblyscript`, :mod:`.wasm` (WAT, ready
modules), over :mod:`.base` (the context, the interface, tool lookups).

Each builder answers three questions:

* ``problem()`` — None when the toolchain works here, else ONE line naming
  what to install. Checks are real (a probe compile for clang, the sysroot's
  installed targets for rustc, ``go env GOVERSION``), never assumed from a
  binary's presence.
* ``identity()`` — a string that changes whenever the toolchain would produce
  different output (versions), part of the artifact cache key.
* ``build(ctx)`` — produce ``ctx.out`` from the working copy ``ctx.src``.

The argv for every tool comes from a pure ``*_argv`` function of its family, so the
exact commands are tested with tables; only ``build`` runs them (through
``ctx.run``, see :mod:`toolrun`).
"""

from typing import List

# What callers and tests use, by family (pure argv builders are tested by table).
from .assemblyscript import AscBuilder, asc_argv, node_candidates, npm_install_argv
from .base import LANGUAGE_TITLES, BuildContext, Builder, probe_text, version_tuple, which
from .cfamily import (
    ClangBuilder,
    EmccBuilder,
    ZigBuilder,
    ZigCcBuilder,
    clang_argv,
    emcc_argv,
    probe_clang,
    zig_build_argv,
    zig_cc_argv,
    zig_exe_argv,
)
from .go import (
    GO_ENV,
    GoBuilder,
    TinyGoBuilder,
    find_go,
    go_argv,
    go_env,
    go_package,
    go_supports_wasip1,
    pypi_go,
    tinygo_argv,
    tinygo_target,
)
from .python import ComponentizePyBuilder
from .rust import (
    CargoBuilder,
    cargo_argv,
    cargo_env,
    cargo_wasm_outputs,
    installed_wasi_targets,
    pick_rust_target,
    probe_rust,
    rustc_argv,
)
from .wasm import ReadyWasmBuilder, WatBuilder

__all__ = [
    "LANGUAGE_TITLES",
    "BuildContext",
    "Builder",
    "builders_for",
    "reset_probes",
    "version_tuple",
    "asc_argv",
    "node_candidates",
    "npm_install_argv",
    "clang_argv",
    "emcc_argv",
    "zig_build_argv",
    "zig_cc_argv",
    "zig_exe_argv",
    "GO_ENV",
    "go_argv",
    "go_env",
    "go_package",
    "find_go",
    "pypi_go",
    "go_supports_wasip1",
    "tinygo_argv",
    "tinygo_target",
    "cargo_argv",
    "cargo_env",
    "cargo_wasm_outputs",
    "installed_wasi_targets",
    "pick_rust_target",
    "rustc_argv",
]


def reset_probes():
    """Forget every memoized toolchain probe (tests that change the machine call this)."""
    for fn in (which, probe_text, probe_clang, probe_rust):
        fn.cache_clear()


def builders_for(language) -> List[Builder]:
    """The builders that can handle a language, preferred first."""
    table = {
        "c": [ClangBuilder(), ZigCcBuilder()],
        "cpp": [ClangBuilder(cpp=True), ZigCcBuilder(cpp=True)],
        "zig": [ZigBuilder()],
        "rust": [CargoBuilder()],
        "go": [TinyGoBuilder(), GoBuilder()],
        "assemblyscript": [AscBuilder()],
        "emscripten": [EmccBuilder()],
        "python": [ComponentizePyBuilder()],
        "wat": [WatBuilder()],
        "wasm": [ReadyWasmBuilder()],
    }
    return table.get(language, [])
