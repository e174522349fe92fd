#!/usr/bin/env python3
"""Per-request cost of the app manifest features, in one run.

    .venv/bin/python bench/appmap_bench.py [--seconds 4] [--rounds 4]

One custom_server (built from this tree), one module (wasm_examples/wagi-map
handlers.wat, which exports `_routes`) served four ways, alternating rounds
with `wrk -t2 -c32`:

* bare: wasm_modules/bare.wasm at /bare/x, no map (WAGI's default everything);
* features: the same module through an app map: a wildcard route among its
  `_routes` sub-routes, 6 environment variables (plain + a secrets file), a
  read-only and a writable preopened folder, an argv template;
* without folders: the same route features but no preopened folder;
* folders only: a plain route with the two preopened folders and nothing else.

Besides rps (meaningless alone on a loaded machine) every round reads the
server's CPU time (utime + stime of all its threads, /proc/PID/stat) before
and after, so each configuration also gets CPU µs per request: what the
server spends, whatever the load around it. Ratios are of medians over the
same alternating rounds; the best (lowest) round of each is printed too, the
one least disturbed by other processes on a shared machine.

With `--compare-server BIN` (a custom_server built from another tree, e.g.
before a change) a second server on the same modules serves the bare, features
and folders-only routes too, in the same alternating rounds: a before/after
that the machine's load hits alike.

Target (issue 12): the features cost ≤ 10 % per request, i.e. features ≥
0.9 × bare rps and ≤ 1.1 × bare CPU per request. Not measured here: static
files through the box's nginx vs a plain nginx, and the 10-route deploy time
(both need a box; see the README's known limits).
"""

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402  (run_rounds, summarize)

from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402

HANDLERS = bk.REPO / "wasm_examples" / "wagi-map" / "handlers.wat"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """utime + stime of every thread of `pid` so far (s), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def run_rounds_cpu(configs, seconds, rounds, connections, pids):
    """sb.run_rounds plus the serving process's CPU time per round (pids: key -> pid):
    {key: [wrk result + cpu_us]}."""
    results = {key: [] for key, _, _ in configs}
    for _key, _label, url in configs:  # warm-up
        bk.wrk(url, 1, connections)
    for r in range(rounds):
        order = configs if r % 2 == 0 else list(reversed(configs))
        for key, label, url in order:
            pid = pids[key]
            c0 = cpu_seconds(pid)
            res = bk.wrk(url, seconds, connections)
            cpu = cpu_seconds(pid) - c0
            res["cpu_us"] = cpu * 1e6 / res["requests"] if res["requests"] else None
            results[key].append(res)
            bk.note(
                f"round {r + 1}/{rounds} {label:<28} {res['rps']:>9.0f} rps  p50 {res['p50_ms']:.2f} ms"
                f"  cpu {res['cpu_us'] or 0:.1f} µs/req"
            )
    return results


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--compare-server", type=Path, help="another custom_server binary, measured in the same rounds")
    args = ap.parse_args(argv)
    import wasmtime

    work = Path(tempfile.mkdtemp(prefix="tiramisu-appmap-bench-"))
    wasm = work / "handlers.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(HANDLERS.read_text()))
    target = parse_target_name(platform.machine())
    server = work / "server"
    build_server(target, choose_toolchain("auto", target), out_dir=server)
    env_root = work / "env"
    for d in ("ro/templates", "data/feat/data", "secrets"):
        (env_root / d).mkdir(parents=True, exist_ok=True)
    (env_root / "secrets" / "feat.env").write_text("TOKEN=t0k\nDB_KEY=k\n")
    load_before = os.getloadavg()
    with bk.Procs() as procs:
        port = bk.free_port()
        modules = env_root / "wasm_modules"
        modules.mkdir()
        for name in ("bare", "feat.main", "dirs.main"):
            (modules / f"{name}.wasm").write_bytes(wasm.read_bytes())
        argv = [server / "bin" / "custom_server", "--listen", f"127.0.0.1:{port}", "--modules", modules]
        argv += ["--log-dir", env_root / "logs", "--cache", env_root / "cache", "--workers", "2"]
        proc = procs.start(argv, env_root / "stderr.log")
        bk.wait_http(port, "/_tiramisu/health", proc=proc)
        (modules / "feat.map").write_text(
            "tiramisu-appmap 1\n"
            "env\tGREETING\thello\nenv\tMODE\tprod\nenv\tLANG\tC\nenv\tPAGE_SIZE\t20\n"
            f"envfile\t{env_root}/secrets/feat.env\n"
            "route\t/feat/...\tfeat.main\t_start\t${SCRIPT_NAME} ${ARGS}\n"
            f"dir\t/templates\t{env_root}/ro/templates\tro\n"
            f"dir\t/data\t{env_root}/data/feat/data\trw\n"
            "route\t/nodirs/...\tfeat.main\t_start\t${SCRIPT_NAME} ${ARGS}\n"
        )
        (modules / "dirs.map").write_text(  # another app: none of feat's app-wide env
            "tiramisu-appmap 1\n"
            "route\t/dirs\tdirs.main\t_start\n"
            f"dir\t/templates\t{env_root}/ro/templates\tro\n"
            f"dir\t/data\t{env_root}/data/feat/data\trw\n"
        )
        servers = [(port, "")]
        if args.compare_server:
            other = bk.free_port()
            argv2 = [args.compare_server, "--listen", f"127.0.0.1:{other}", "--modules", modules]
            argv2 += ["--log-dir", env_root / "logs-compare", "--cache", env_root / "cache-compare", "--workers", "2"]
            proc2 = procs.start(argv2, env_root / "stderr-compare.log")
            bk.wait_http(other, "/_tiramisu/health", proc=proc2)
            servers.append((other, "compare:"))
        for p, _ in servers:
            for path in ("/bare/x", "/feat/x", "/feat/hello", "/nodirs/x", "/dirs"):
                deadline = time.time() + 20
                while bk.http_get(p, path)[0] != 200:
                    if time.time() > deadline:
                        raise SystemExit(f"bench: {path} does not answer 200")
                    time.sleep(0.1)
        configs = [
            ("bare", "bare module", f"http://127.0.0.1:{port}/bare/x"),
            ("features", "app map features", f"http://127.0.0.1:{port}/feat/x"),
            ("nodirs", "features without folders", f"http://127.0.0.1:{port}/nodirs/x"),
            ("dirs", "folders only", f"http://127.0.0.1:{port}/dirs"),
        ]
        pids = dict.fromkeys(("bare", "features", "nodirs", "dirs"), proc.pid)
        if args.compare_server:
            for key, label, path in (
                ("bare", "bare", "/bare/x"),
                ("features", "features", "/feat/x"),
                ("dirs", "folders only", "/dirs"),
            ):
                configs.append((f"compare:{key}", f"compare: {label}", f"http://127.0.0.1:{other}{path}"))
                pids[f"compare:{key}"] = proc2.pid
        results = run_rounds_cpu(configs, args.seconds, args.rounds, args.connections, pids)
    load_after = os.getloadavg()
    summary = sb.summarize(results)
    for key, runs in results.items():
        summary[key]["cpu_us"] = bk.median([r["cpu_us"] for r in runs])
        summary[key]["rounds_cpu"] = [round(r["cpu_us"], 1) for r in runs if r["cpu_us"]]
        summary[key]["cpu_best"] = min(r["cpu_us"] for r in runs if r["cpu_us"])
    b = summary["bare"]
    rows = []
    labels = (
        ("bare", "bare module"),
        ("features", "app map features"),
        ("nodirs", "without folders"),
        ("dirs", "folders only"),
    )
    if args.compare_server:
        labels += (
            ("compare:bare", f"{args.compare_server.name} (compare): bare"),
            ("compare:features", "compare: app map features"),
            ("compare:dirs", "compare: folders only"),
        )
    for key, label in labels:
        s = summary[key]
        rows.append(
            [
                label,
                f"{s['rps']:.0f}",
                f"{s['rps'] / b['rps']:.2f}×",
                f"{s['cpu_us']:.1f}",
                f"{s['cpu_us'] / b['cpu_us']:.2f}×",
                f"{s['cpu_best']:.1f} ({s['cpu_best'] / b['cpu_best']:.2f}×)",
                " / ".join(map(str, s["rounds_rps"])),
                " / ".join(map(str, s["rounds_cpu"])),
                s["errors"],
            ]
        )
    print(
        bk.table(
            [
                "configuration",
                "rps (median)",
                "rps vs bare",
                "CPU µs/req (median)",
                "CPU vs bare",
                "CPU µs/req best round (vs bare)",
                "rps per round",
                "CPU µs/req per round",
                "errors",
            ],
            rows,
        )
    )
    print()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    f = summary["features"]
    ok_rps, ok_cpu = f["rps"] / b["rps"] >= 0.9, f["cpu_us"] / b["cpu_us"] <= 1.1
    print(f"features / bare rps: {f['rps'] / b['rps']:.2f}× (target ≥ 0.90: {bk.verdict(ok_rps)})")
    print(f"features / bare CPU per request: {f['cpu_us'] / b['cpu_us']:.2f}× (target ≤ 1.10: {bk.verdict(ok_cpu)})")
    if args.compare_server:
        cb, cf = summary["compare:bare"], summary["compare:features"]
        print(
            f"compare server: features / its bare rps {cf['rps'] / cb['rps']:.2f}×, "
            f"CPU per request {cf['cpu_us'] / cb['cpu_us']:.2f}×"
        )


if __name__ == "__main__":
    main()
