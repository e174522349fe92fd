"""AssemblyScript: asc with the WASI shim, installed with npm into the artifact cache."""

import os
import sys
from pathlib import Path

from ...errors import BuildError
from ..toolrun import Step, locked
from .base import Builder, probe_text, version_tuple, which

# Pinned AssemblyScript toolchain, installed with npm into the artifact cache on
# first use (never globally). assemblyscript 0.28 needs Node.js >= 20.
ASSEMBLYSCRIPT_VERSION = "0.28.20"
AS_WASI_SHIM_VERSION = "0.1.0"
NODE_MIN_MAJOR = 20


def asc_argv(node, tools, entry, out, cwd):
    asc = Path(tools) / "node_modules" / "assemblyscript" / "bin" / "asc.js"
    shim = Path(tools) / "node_modules" / "@assemblyscript" / "wasi-shim" / "asconfig.json"
    # The shim's config must be given relative to the working directory: asc
    # 0.28 resolves its "lib" wrongly from an absolute --config path
    # ("Element 'wasi_abort' not found").
    return [node, str(asc), str(entry), "--config", os.path.relpath(shim, cwd), "--optimize", "--outFile", str(out)]


def node_candidates(path_node, path_npm, venv_bin):
    """(node, npm) pairs to try, PATH first, then the venv's bin dir (pure but for is_file)."""
    pairs = []
    if path_node and path_npm:
        pairs.append((path_node, path_npm))
    venv_node, venv_npm = Path(venv_bin) / "node", Path(venv_bin) / "npm"
    if venv_node.is_file() and venv_npm.is_file() and str(venv_node) != path_node:
        pairs.append((str(venv_node), str(venv_npm)))
    return pairs


def npm_install_argv(npm, prefix, packages):
    specs = [f"{name}@{version}" for name, version in sorted(packages.items())]
    return [
        npm,
        "install",
        "--prefix",
        str(prefix),
        "--no-save",
        "--no-package-lock",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        "--loglevel=error",
    ] + specs


class AscBuilder(Builder):
    language = "assemblyscript"
    toolchain = "asc"

    def node(self):
        """(node, npm) paths: the first pair on PATH or in this venv with node >= 20.

        The venv's bin dir counts because scripts/bootstrap installs Node.js
        from PyPI there (extra [node]) when the system's is missing or older
        (Debian 12 ships 18). Falls back to the PATH pair (or None) so that
        problem() can name what was found.
        """
        found = node_candidates(which("node"), which("npm"), Path(sys.executable).parent)
        for node, npm in found:
            major = version_tuple(probe_text((node, "--version")) or "", 1)
            if major and major[0] >= NODE_MIN_MAJOR:
                return node, npm
        return found[0] if found else (None, None)

    def node_version(self):
        node, _ = self.node()
        return (probe_text((node, "--version")) or "").strip() if node else ""

    def problem(self):
        node, npm = self.node()
        if not node or not npm:
            return (
                f"asc: needs Node.js >= {NODE_MIN_MAJOR} and npm (NodeSource package nodejs, "
                f"or pip install 'tiramisu[node]'; AssemblyScript itself is installed from "
                f"npm on first use)"
            )
        major = version_tuple(self.node_version(), 1)
        if not major or major[0] < NODE_MIN_MAJOR:
            return (
                f"asc: assemblyscript {ASSEMBLYSCRIPT_VERSION} needs Node.js >= {NODE_MIN_MAJOR}, "
                f"found {self.node_version() or 'unknown'} (pip install 'tiramisu[node]' adds one)"
            )
        return None

    def identity(self):
        return f"assemblyscript {ASSEMBLYSCRIPT_VERSION} wasi-shim {AS_WASI_SHIM_VERSION} node {self.node_version()}"

    def packages(self):
        return {"assemblyscript": ASSEMBLYSCRIPT_VERSION, "@assemblyscript/wasi-shim": AS_WASI_SHIM_VERSION}

    def tools_dir(self, run, progress, cache_root=None):
        """The pinned npm packages, installed once into the artifact cache."""
        from ...artifacts import cache

        def install(tmp):
            progress(f"installing AssemblyScript {ASSEMBLYSCRIPT_VERSION} from npm (once)")
            run(
                Step(
                    npm_install_argv(self.node()[1], tmp, self.packages()),
                    tmp,
                    label=f"npm install assemblyscript@{ASSEMBLYSCRIPT_VERSION}",
                    what="install",
                )
            )

        base = Path(cache_root) if cache_root else None
        from ...paths import cache_dir

        with locked((base or cache_dir()) / "npm-tools"):
            entry = cache.get_or_build("npm-tools", {"packages": self.packages()}, install, root=cache_root)
        return entry.path

    def build(self, ctx):
        if not ctx.entry:
            raise BuildError("AssemblyScript project without assembly/index.ts (the entry file)")
        tools = self.tools_dir(ctx.run, ctx.progress, ctx.cache_root)
        ctx.run(Step(asc_argv(self.node()[0], tools, ctx.src / ctx.entry, ctx.out, ctx.src), ctx.src, label=self.title))
