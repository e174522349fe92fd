"""Where one request's time goes in a WASI preview 1 guest, measured in-process
with wasmtime-py (the same Wasmtime line as the server, on-demand allocator,
copy-on-write memory images on).

    .venv/bin/python bench/guests/phases.py GUEST.wasm [...] [--runs 200] [--json FILE]

Per module: its size, compile time (once), then ``runs`` fresh instances, each
timed in two phases (CPU time of this thread, so a busy machine does not
inflate it; the guest runs on the calling thread): instantiate (linker.instantiate: memory, tables, data
segments, start function) and ``_start`` (the guest's own start-up + main +
output). The guest's stdout goes to a callback that counts the writes
(one per fd_write the guest makes on fd 1) and their bytes; linear memory size
after ``_start`` shows how much the guest grew its heap. Medians are printed.

With ``--wasmtime CLI``, also the WASI calls of one run by name, from the
Wasmtime CLI's trace log (``WASMTIME_LOG=wasmtime_wasi=trace wasmtime run``):
the number of fd_write calls, and what else a guest asks the host for.

A CGI environment like the server's is given (REQUEST_METHOD=GET, PATH_INFO=/,
...), so the guests take their usual path.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

CGI_ENV = {
    "GATEWAY_INTERFACE": "CGI/1.1",
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/",
    "QUERY_STRING": "",
    "SCRIPT_NAME": "/hello",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "9000",
    "REMOTE_ADDR": "127.0.0.1",
}


def measure(path, runs):
    """A dict of the phases of ``path`` (µs medians, counts, sizes); see the module docstring."""
    import wasmtime

    cfg = wasmtime.Config()
    cfg.epoch_interruption = True  # as the server: epoch checks are in the compiled code
    engine = wasmtime.Engine(cfg)
    data = Path(path).read_bytes()
    if data[4:8] != b"\x01\x00\x00\x00":
        return {
            "module": Path(path).name,
            "size_bytes": len(data),
            "skipped": "a component (wasmtime-py: modules only)",
        }
    t0 = time.perf_counter()
    module = wasmtime.Module(engine, data)
    compile_ms = (time.perf_counter() - t0) * 1000
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    inst_us, start_us, writes, nbytes, pages = [], [], [], [], []
    for _ in range(runs):
        counts = [0, 0]

        def out(chunk, counts=counts):
            counts[0] += 1
            counts[1] += len(chunk)
            return len(chunk)

        store = wasmtime.Store(engine)
        store.set_epoch_deadline(1 << 30)
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["hello"]
        wasi.env = list(CGI_ENV.items())
        wasi.stdout_custom = out
        store.set_wasi(wasi)
        t0 = time.thread_time()
        instance = linker.instantiate(store, module)
        t1 = time.thread_time()
        try:
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                raise
        t2 = time.thread_time()
        inst_us.append((t1 - t0) * 1e6)
        start_us.append((t2 - t1) * 1e6)
        writes.append(counts[0])
        nbytes.append(counts[1])
        mem = instance.exports(store).get("memory")
        pages.append(mem.size(store) if mem is not None else 0)
    return {
        "module": Path(path).name,
        "size_bytes": len(data),
        "compile_ms": round(compile_ms, 1),
        "instantiate_us": round(statistics.median(inst_us), 1),
        "start_us": round(statistics.median(start_us), 1),
        "stdout_writes": statistics.median(writes),
        "stdout_bytes": statistics.median(nbytes),
        "memory_kib_after": statistics.median(pages) * 64,
    }


_CALL = re.compile(r'function="([A-Za-z0-9_:/.-]+)"[^\n]*\bresult=')


def parse_wasi_trace(text):
    """{function: calls} from Wasmtime's wasmtime_wasi trace log (pure): one per ``result=`` line."""
    counts = {}
    for m in _CALL.finditer(re.sub(r"\x1b\[[0-9;]*m", "", text)):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def wasi_calls(wasmtime_cli, path):
    """WASI calls of one ``wasmtime run`` of ``path`` with the CGI environment (module or command component)."""
    argv = [str(wasmtime_cli), "run"]
    for k, v in CGI_ENV.items():
        argv += ["--env", f"{k}={v}"]
    env = dict(os.environ, WASMTIME_LOG="wasmtime_wasi=trace", RUST_BACKTRACE="0")
    proc = subprocess.run(argv + [str(path)], capture_output=True, text=True, env=env, timeout=600)
    return parse_wasi_trace(proc.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="+")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--json")
    ap.add_argument("--wasmtime", help="the wasmtime CLI: also count WASI calls per guest")
    args = ap.parse_args(argv)
    rows = [measure(m, args.runs) for m in args.modules]
    if args.wasmtime:
        for row, m in zip(rows, args.modules):
            calls = wasi_calls(args.wasmtime, m)
            row["wasi_calls"] = calls
            row["fd_write_calls"] = sum(n for f, n in calls.items() if f.endswith("fd_write"))
    for r in rows:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    sys.stdout.flush()
    # wasmtime-py's stdout callback thread can panic in interpreter teardown: leave at once
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
