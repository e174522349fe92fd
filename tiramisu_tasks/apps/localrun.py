"""Run a module once, WAGI-style, under the Python `wasmtime` package.

Not the server: no HTTP, no limits beyond a wall-clock timeout. It exists so
an app can be tried (and the examples tested) on the local machine with the
same Wasmtime release the server embeds, before anything is deployed.
"""

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import TiramisuError
from .wagi import CgiError, Request, Response, cgi_argv, cgi_environ, parse_cgi_output


@dataclass
class LocalRun:
    response: Response  # a 500 with the reason in the body when the guest failed
    exit_code: int
    stderr: str
    seconds: float
    error: str = ""  # trap / exit / CGI problem, "" when fine


class _Engines:
    """One engine (with epoch interruption for timeouts) and compiled modules by path+mtime."""

    def __init__(self):
        self.lock = threading.Lock()
        self.engine = None
        self.modules = {}

    def get(self, path):
        import wasmtime

        with self.lock:
            if self.engine is None:
                cfg = wasmtime.Config()
                cfg.epoch_interruption = True
                self.engine = wasmtime.Engine(cfg)
            st = Path(path).stat()
            key = (str(path), st.st_mtime_ns, st.st_size)
            mod = self.modules.get(key)
            if mod is None:
                from wasmtime import component as wc

                from .component import is_component

                data = Path(path).read_bytes()
                if is_component(data):  # a WASI 0.2 command: run through wasi:cli/run
                    mod = wc.Component(self.engine, data)
                else:
                    mod = wasmtime.Module(self.engine, data)
                self.modules[key] = mod
            return self.engine, mod


_ENGINES = _Engines()


def _error_response(message):
    return Response(500, [("Content-Type", "text/plain")], (message + "\n").encode())


def _trap_reason(text):
    """The 'Caused by' line of a Wasmtime trap, not its backtrace header (pure)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "Caused by:" in lines:
        rest = lines[lines.index("Caused by:") + 1 :]
        if rest:
            return rest[-1]
    return lines[0] if lines else "unknown trap"


def _run_component(engine, store, component):
    """Instantiate a WASI 0.2 command and call its wasi:cli/run; its exit status (0 or 1)."""
    from wasmtime import component as wc

    from .component import RUN_EXPORT

    linker = wc.Linker(engine)
    linker.add_wasip2()
    instance = linker.instantiate(store, component)
    name = next(e for e in component.type.exports(engine) if RUN_EXPORT.match(e))
    run = instance.get_func(store, instance.get_export_index(store, "run", instance.get_export_index(store, name)))
    result = run(store)
    return 0 if getattr(result, "tag", "ok") == "ok" else 1


def run_request(wasm_path, req: Request, app="app", timeout=10.0, **environ_args) -> LocalRun:
    """Run ``wasm_path`` for one request; never raises for what the guest does."""
    import wasmtime

    try:
        engine, module = _ENGINES.get(wasm_path)
    except (OSError, wasmtime.WasmtimeError) as exc:
        raise TiramisuError(f"{wasm_path}: cannot load module: {str(exc).splitlines()[0]}") from None
    script = f"/{app}"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tiramisu-run-") as tmp:
        tmp = Path(tmp)
        (tmp / "stdin").write_bytes(req.body or b"")
        wasi = wasmtime.WasiConfig()
        wasi.argv = cgi_argv(req, script)
        env = cgi_environ(req, script_name=script, **environ_args)
        wasi.env = sorted(env.items())
        wasi.stdin_file = str(tmp / "stdin")
        wasi.stdout_file = str(tmp / "stdout")
        wasi.stderr_file = str(tmp / "stderr")
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_epoch_deadline(1)
        timer = threading.Timer(timeout, engine.increment_epoch)
        timer.daemon = True
        exit_code, error = 0, ""
        timer.start()
        try:
            if isinstance(module, wasmtime.Module):
                linker = wasmtime.Linker(engine)
                linker.define_wasi()
                instance = linker.instantiate(store, module)
                instance.exports(store)["_start"](store)
            else:
                exit_code = _run_component(engine, store, module)
                if exit_code:
                    error = f"guest exited with status {exit_code}"
        except wasmtime.ExitTrap as exc:
            exit_code = exc.code
            if exit_code != 0:
                error = f"guest exited with status {exit_code}"
        except wasmtime.Trap as exc:
            exit_code = -1
            if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
                error = "timed out after %.1f s" % timeout
            else:
                error = f"trap: {_trap_reason(str(exc))}"
        except wasmtime.WasmtimeError as exc:
            exit_code = -1
            error = f"cannot instantiate: {str(exc).splitlines()[0]}"
        finally:
            timer.cancel()
        stdout = (tmp / "stdout").read_bytes() if (tmp / "stdout").exists() else b""
        stderr = (tmp / "stderr").read_text("utf-8", "replace") if (tmp / "stderr").exists() else ""
    seconds = time.monotonic() - started
    if error:
        return LocalRun(_error_response(error), exit_code, stderr, seconds, error)
    try:
        response = parse_cgi_output(stdout)
    except CgiError as exc:
        return LocalRun(_error_response(f"bad CGI output: {exc}"), exit_code, stderr, seconds, str(exc))
    return LocalRun(response, exit_code, stderr, seconds)
