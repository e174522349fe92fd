"""WASI 0.2 command components: what the box's server can run, checked here with
the same Wasmtime release (the `wasmtime` package's component API), never by
reading the component binary ourselves.

The server (cserver/ts_component.c) runs a component that exports
``wasi:cli/run@0.2.x`` per request like a preview 1 command, linked against
Wasmtime's WASI 0.2 (``wasmtime_component_linker_add_wasip2``). So a component
is accepted when:

* Wasmtime compiles it (full validation);
* it exports ``wasi:cli/run`` (any 0.2 minor: Wasmtime links by semver);
* every import is a WASI 0.2 interface that linker defines (``wasi:cli``,
  ``wasi:io``, ``wasi:clocks``, ``wasi:random``, ``wasi:filesystem``,
  ``wasi:sockets``), confirmed by instantiating it once against that linker;
* it is not a ``wasi:http`` component: the pinned C API has no way to create
  the incoming request or the response outparam of
  ``wasi:http/incoming-handler`` (cserver/README.md), and the box's linker
  does not define ``wasi:http`` imports.
"""

import re
from dataclasses import dataclass, field
from typing import List

WASI_P2_PACKAGES = ("cli", "io", "clocks", "random", "filesystem", "sockets")
RUN_EXPORT = re.compile(r"^wasi:cli/run(@0\.2\.\d+)?$")
HTTP_HANDLER = re.compile(r"^wasi:http/incoming-handler(@[\w.\-]+)?$")
_WASI_NAME = re.compile(r"^wasi:(?P<pkg>[a-z\-]+)/(?P<iface>[a-z\-]+)(@(?P<version>[\w.\-]+))?$")

# The preamble: "\0asm", a 16-bit version, a 16-bit layer (1: component).
COMPONENT_PREAMBLE = b"\0asm\x0d\x00\x01\x00"


def is_component(data):
    """True when the binary's preamble says component (layer 1) (pure)."""
    return len(data) >= 8 and bytes(data[:4]) == b"\0asm" and bytes(data[6:8]) == b"\x01\x00"


@dataclass
class ComponentInfo:
    """What build reports for a component: its world's import and export names."""

    imports: List[str] = field(default_factory=list)
    exports: List[str] = field(default_factory=list)
    run_export: str = ""
    kind: str = "component"


def import_problem(name):
    """Why the box cannot link an import named ``name``, or None (pure)."""
    m = _WASI_NAME.match(name)
    if not m:
        return f"imports {name}, which is not a WASI 0.2 interface"
    pkg, version = m["pkg"], m["version"] or ""
    if pkg == "http":
        return f"imports {name}: wasi:http is not provided to components on the box"
    if pkg not in WASI_P2_PACKAGES:
        return f"imports {name}, which the box's WASI 0.2 does not define"
    if version and not version.startswith("0.2."):
        return f"imports {name}: only WASI 0.2.x interfaces are linked (found {version})"
    return None


def world_problems(imports, exports):
    """Every reason a component with these import/export names cannot run (pure).

    imports, exports: names as Wasmtime's component type lists them. Returns a
    list of one-line strings, empty when the world is a WASI 0.2 command."""
    problems = []
    if not any(RUN_EXPORT.match(e) for e in exports):
        http = [e for e in exports if HTTP_HANDLER.match(e)]
        if http:
            problems.append(
                f"it exports {http[0]} (a wasi:http handler), which the server cannot drive: "
                "the pinned Wasmtime C API cannot create its incoming request (see cserver/README.md); "
                "build a wasi:cli command (export wasi:cli/run) instead"
            )
        else:
            problems.append("it exports no wasi:cli/run (not a WASI 0.2 command)")
    for name in imports:
        p = import_problem(name)
        if p:
            problems.append(p)
    return problems


def _engine():
    import wasmtime

    cfg = wasmtime.Config()
    cfg.epoch_interruption = True
    return wasmtime.Engine(cfg)


def inspect_component(data, what="component"):
    """ComponentInfo of a runnable WASI 0.2 command component, else InvalidWasm (one line).

    Compiles with the pinned Wasmtime, reads the world from its component
    type, applies :func:`world_problems`, then instantiates once against
    Wasmtime's WASI 0.2 linker (no export is called)."""
    import wasmtime
    from wasmtime import component as wc

    from .validate import InvalidWasm

    engine = _engine()
    try:
        comp = wc.Component(engine, bytes(data))
    except wasmtime.WasmtimeError as exc:
        raise InvalidWasm(f"{what}: not a valid component: {_first_line(exc)}") from None
    ty = comp.type
    imports, exports = list(ty.imports(engine).keys()), list(ty.exports(engine).keys())
    problems = world_problems(imports, exports)
    if problems:
        raise InvalidWasm(f"{what}: cannot run on Tiramisu: " + "; ".join(problems))
    linker = wc.Linker(engine)
    linker.add_wasip2()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_epoch_deadline(1_000_000)
    try:
        linker.instantiate(store, comp)
    except wasmtime.WasmtimeError as exc:
        raise InvalidWasm(f"{what}: cannot run on Tiramisu: it does not link: {_first_line(exc)}") from None
    run = next(e for e in exports if RUN_EXPORT.match(e))
    return ComponentInfo(imports=imports, exports=exports, run_export=run)


def _first_line(exc):
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:2])[:300] if lines else "error"
