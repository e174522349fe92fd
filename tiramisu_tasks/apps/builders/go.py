"""Go: TinyGo (-target=wasip1/wasi) or Go >= 1.21 (GOOS=wasip1)."""

from ..toolrun import Step
from .base import Builder, probe_text, version_tuple, which

GO_MIN_WASIP1 = (1, 21)
TINYGO_MIN_WASIP1 = (0, 30)


def tinygo_argv(tinygo, target, out, package):
    return [tinygo, "build", f"-target={target}", "-opt=z", "-no-debug", "-o", str(out), package]


def go_argv(go, out, package):
    return [go, "build", "-trimpath", "-o", str(out), package]


GO_ENV = {"GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0"}


def go_supports_wasip1(goversion):
    v = version_tuple(goversion)
    return v is not None and v >= GO_MIN_WASIP1


def tinygo_target(version_text):
    v = version_tuple(version_text)
    return "wasip1" if v is None or v >= TINYGO_MIN_WASIP1 else "wasi"


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
        package = ctx.entry if ctx.single_file else "."
        ctx.run(Step(tinygo_argv(which("tinygo"), target, ctx.out, package), ctx.src, label=self.title))


class GoBuilder(Builder):
    language = "go"
    toolchain = "go"

    def goversion(self):
        go = which("go")
        return (probe_text((go, "env", "GOVERSION")) or "").strip() if go else ""

    def problem(self):
        if not which("go"):
            return "go: not installed (Go >= 1.21 is needed for GOOS=wasip1; Debian 12 has 1.19)"
        version = self.goversion()
        if not go_supports_wasip1(version):
            return (
                f"go: {version or 'unknown version'} cannot build GOOS=wasip1 "
                f"(needs Go >= {GO_MIN_WASIP1[0]}.{GO_MIN_WASIP1[1]})"
            )
        return None

    def identity(self):
        return self.goversion()

    def build(self, ctx):
        package = ctx.entry if ctx.single_file else "."
        ctx.run(Step(go_argv(which("go"), ctx.out, package), ctx.src, env=dict(GO_ENV), label=self.title))
