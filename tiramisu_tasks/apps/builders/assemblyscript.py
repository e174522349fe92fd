"""AssemblyScript: asc with the WASI shim, installed with npm into the artifact cache."""

import os
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
    return [node, str(asc), str(entry), "--config", os.path.relpath(shim, cwd), "--optimize",
            "--outFile", str(out)]


def npm_install_argv(npm, prefix, packages):
    specs = [f"{name}@{version}" for name, version in sorted(packages.items())]
    return [npm, "install", "--prefix", str(prefix), "--no-save", "--no-package-lock",
            "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"] + specs


class AscBuilder(Builder):
    language = "assemblyscript"
    toolchain = "asc"

    def node_version(self):
        node = which("node")
        return (probe_text((node, "--version")) or "").strip() if node else ""

    def problem(self):
        if not which("node") or not which("npm"):
            return ("asc: needs Node.js >= 20 and npm (Debian/NodeSource package nodejs; "
                    "AssemblyScript itself is installed from npm on first use)")
        major = version_tuple(self.node_version(), 1)
        if not major or major[0] < NODE_MIN_MAJOR:
            return f"asc: assemblyscript {ASSEMBLYSCRIPT_VERSION} needs Node.js >= {NODE_MIN_MAJOR}, found {self.node_version() or 'unknown'}"
        return None

    def identity(self):
        return (f"assemblyscript {ASSEMBLYSCRIPT_VERSION} wasi-shim {AS_WASI_SHIM_VERSION} "
                f"node {self.node_version()}")

    def packages(self):
        return {"assemblyscript": ASSEMBLYSCRIPT_VERSION,
                "@assemblyscript/wasi-shim": AS_WASI_SHIM_VERSION}

    def tools_dir(self, run, progress, cache_root=None):
        """The pinned npm packages, installed once into the artifact cache."""
        from ...artifacts import cache

        def install(tmp):
            progress(f"installing AssemblyScript {ASSEMBLYSCRIPT_VERSION} from npm (once)")
            run(Step(npm_install_argv(which("npm"), tmp, self.packages()), tmp,
                     label=f"npm install assemblyscript@{ASSEMBLYSCRIPT_VERSION}", what="install"))

        base = Path(cache_root) if cache_root else None
        from ...paths import cache_dir

        with locked((base or cache_dir()) / "npm-tools"):
            entry = cache.get_or_build("npm-tools", {"packages": self.packages()}, install, root=cache_root)
        return entry.path

    def build(self, ctx):
        if not ctx.entry:
            raise BuildError("AssemblyScript project without assembly/index.ts (the entry file)")
        tools = self.tools_dir(ctx.run, ctx.progress, ctx.cache_root)
        ctx.run(Step(asc_argv(which("node"), tools, ctx.src / ctx.entry, ctx.out, ctx.src), ctx.src,
                     label=self.title))
