#!/usr/bin/env python3
"""Per-request cost of the app manifest features, in one run.

    .venv/bin/python bench/appmap_bench.py [--seconds 4] [--rounds 4]

One custom_server (built from this tree), one module (wasm_examples/wagi-map
handlers.wat, which exports `_routes`) served two ways, alternating rounds
with `wrk -t2 -c32`:

* bare: wasm_modules/bare.wasm at /bare/x, no map (WAGI's default everything);
* features: the same module through an app map: a wildcard route among its
  `_routes` sub-routes, 6 environment variables (plain + a secrets file), a
  read-only and a writable preopened folder, an argv template;
* without folders: the same route features but no preopened folder (such runs
  keep the server's own fd_write; runs with folders use Wasmtime's WASI).

Target (issue 12): features ≥ 0.9 × bare rps. Not measured here: static files
through the box's nginx vs a plain nginx, and the 10-route deploy time (both
need a box; see the README's known limits).
"""

import argparse
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--connections", type=int, default=32)
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
    with bk.Procs() as procs:
        port = bk.free_port()
        modules = env_root / "wasm_modules"
        modules.mkdir()
        for name in ("bare", "feat.main"):
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
        for path in ("/bare/x", "/feat/x", "/feat/hello", "/nodirs/x"):
            deadline = time.time() + 20
            while bk.http_get(port, path)[0] != 200:
                if time.time() > deadline:
                    raise SystemExit(f"bench: {path} does not answer 200")
                time.sleep(0.1)
        configs = [
            ("bare", "bare module", f"http://127.0.0.1:{port}/bare/x"),
            ("features", "app map features", f"http://127.0.0.1:{port}/feat/x"),
            ("nodirs", "features without folders", f"http://127.0.0.1:{port}/nodirs/x"),
        ]
        summary = sb.summarize(sb.run_rounds(configs, args.seconds, args.rounds, args.connections))
    b, f, n = summary["bare"], summary["features"], summary["nodirs"]
    ratio = f["rps"] / b["rps"]
    print(
        bk.table(
            ["configuration", "rps (median)", "p50 ms", "p99 ms", "rps per round", "errors"],
            [
                [k, f"{s['rps']:.0f}", s["p50_ms"], s["p99_ms"], " / ".join(map(str, s["rounds_rps"])), s["errors"]]
                for k, s in (("bare module", b), ("app map features", f), ("without folders", n))
            ],
        )
    )
    print()
    print(f"features / bare: {ratio:.2f}× (target ≥ 0.90: {bk.verdict(ratio >= 0.9)})")
    print(f"features without folders / bare: {n['rps'] / b['rps']:.2f}×")


if __name__ == "__main__":
    main()
