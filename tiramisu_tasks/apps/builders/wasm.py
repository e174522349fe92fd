"""Modules that need no compiler: WAT (assembled with the wasmtime wheel) and ready .wasm files."""

import importlib.util
import shutil

from ..toolrun import BuildFailed
from .base import Builder


class WatBuilder(Builder):
    """WebAssembly text, assembled in-process by the `wasmtime` package."""

    language = "wat"
    toolchain = "wat2wasm"

    def problem(self):
        if importlib.util.find_spec("wasmtime") is None:
            return "wat2wasm: the Python package wasmtime is not installed (pip install wasmtime)"
        return None

    def identity(self):
        from importlib.metadata import version

        return f"wasmtime-py {version('wasmtime')}"

    def build(self, ctx):
        import wasmtime

        path = ctx.src / ctx.entry
        ctx.progress(f"assembling {ctx.entry}")
        try:
            ctx.out.write_bytes(wasmtime.wat2wasm(path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            raise BuildFailed(f"{self.title}: {ctx.entry} is not UTF-8 text") from None
        except wasmtime.WasmtimeError as exc:
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            raise BuildFailed(f"{self.title}: {ctx.entry}: {' '.join(lines[:3])[:300]}", str(exc)) from None


class ReadyWasmBuilder(Builder):
    language = "wasm"
    toolchain = "copy"

    def problem(self):
        return None

    def identity(self):
        return "copy"

    def build(self, ctx):
        shutil.copyfile(ctx.src / ctx.entry, ctx.out)
