#!/usr/bin/env python3
"""aarch64 under qemu-user: the trivial-guest and libc-guest ratios (server
direct, nginx → server, nginx → a C backend) and the first request after a
deploy with and without ``--aot``. Emulation: read ratios, never rps.

    sudo .venv/bin/python bench/aarch64_bench.py [--seconds 5] [--rounds 3] [--json FILE]

Needs what the tests' aarch64 host needs (root, qemu-user-static with
binfmt_misc, debootstrap or a cached root; see tests/testhosts). Steps:

1. a fresh aarch64 test host (testhosts.start_host), registered in a throw-away
   inventory (TIRAMISU_HOME / TIRAMISU_INVENTORY under a temp dir), then
   ``tiramisu setup`` (production configs, the shipped arm64 server and nginx);
2. ``tiramisu deploy`` of the trivial WAT guest and of the wasi-libc C guest
   (bench/guests/hello.wat, hello_libc.c);
3. on the box, the trivial C backend (bench/peers/c_backend.c, cross-compiled
   with zig cc for aarch64-linux-musl) behind a second nginx rendered from the
   production template (port 8081): the ceiling;
4. ``wrk -t2 -c32`` (x86_64, in the host's network namespace) against every row
   in alternating rounds; the ratios per round, then their medians;
5. first request: a fresh app (new bytes, so no cache hit) deployed without and
   with ``--aot``; the deploy's wall time and the first and second GET through
   nginx, timed here.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchkit as bk  # noqa: E402
import server_bench as sb  # noqa: E402

REPO = bk.REPO
sys.path.insert(0, str(REPO))
import testhosts  # noqa: E402
from testhosts import commands as th_commands  # noqa: E402
from tiramisu_tasks.config import DEFAULTS  # noqa: E402
from tiramisu_tasks.layout import RemoteLayout  # noqa: E402
from tiramisu_tasks.render import config_values, render_nginx_conf  # noqa: E402

TIRAMISU = Path(sys.executable).parent / "tiramisu"
C_PORT, CEIL_PORT = 9100, 8081


def tiramisu(*args, timeout=1800):
    proc = subprocess.run(
        [str(TIRAMISU), *map(str, args)], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        raise SystemExit(
            f"bench: tiramisu {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return proc


def get(url, timeout=600):
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        body = resp.read()
        status = resp.status
    return status, body, time.monotonic() - t0


def wrk_in(host, url, seconds, connections):
    argv = th_commands.netns_exec_argv(
        host.netns, ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    )
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 120)
    res = bk.parse_wrk(proc.stdout)
    if res["rps"] is None:
        raise SystemExit(f"bench: cannot read wrk output for {url}:\n{proc.stdout}\n{proc.stderr}")
    return res


def start_ceiling(host, work):
    """The C backend on the box at C_PORT behind a production-template nginx at CEIL_PORT."""
    exe = work / "c_backend_aarch64"
    bk.run(
        [
            sys.executable,
            "-m",
            "ziglang",
            "cc",
            "-target",
            "aarch64-linux-musl",
            "-O2",
            "-pthread",
            sb.PEERS / "c_backend.c",
            "-o",
            exe,
        ],
        capture_output=True,
    )
    box_home = "/home/" + host.user if host.user != "root" else "/root"
    local_home = Path(host.root) / box_home.lstrip("/")
    shutil.copy(exe, local_home / "c_backend")
    ids = host.ssh("id -u; id -un; id -gn", check=True).stdout.split()
    layout = RemoteLayout(f"{box_home}/ceiling-env")
    settings = dict(DEFAULTS, server_port=C_PORT, http_port=CEIL_PORT, listen_address=host.hostname)
    values = config_values(layout, "bench", settings, box_ids={"uid": ids[0], "user": ids[1], "group": ids[2]})
    root = local_home / "ceiling-env"
    for d in ("conf", "logs", "run", "tmp"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "conf" / "nginx.conf").write_text(render_nginx_conf(values))
    uid, gid = int(ids[0]), os.stat(local_home).st_gid
    for p in [local_home / "c_backend", *root.rglob("*"), root]:
        os.chown(p, uid, gid)
    host.ssh(
        f"chmod 755 ~/c_backend; (nohup ~/c_backend {C_PORT} {DEFAULTS['workers']} >/dev/null 2>&1 &); "
        f"(nohup ~/tiramisu-env/bin/nginx -p {layout.root} -c {layout.nginx_conf} >/dev/null 2>&1 &)",
        check=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            return get(f"http://{host.hostname}:{CEIL_PORT}/hello", timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bench: the ceiling nginx → C backend does not answer on the box") from None
            time.sleep(1)


def first_request(host, work, aot):
    """Deploy a never-seen libc app (with --aot or not); wall times of deploy, first and second GET."""
    name = f"first_{'aot' if aot else 'plain'}_{int(time.time())}"
    src = work / f"{name}.c"
    src.write_text((sb.GUESTS / "hello_libc.c").read_text().replace("hello from wasm", f"hello from {name}"))
    t0 = time.monotonic()
    proc = tiramisu("deploy", src, "--host", "box", "--json", *(["--aot"] if aot else []))
    deploy_s = time.monotonic() - t0
    code = None
    try:
        doc = json.loads(proc.stdout)
        code = doc["hosts"][0].get("code")
    except (ValueError, KeyError, IndexError):
        pass
    s1, b1, first_s = get(f"http://{host.hostname}:8080/{name}/")
    s2, b2, second_s = get(f"http://{host.hostname}:8080/{name}/")
    if s1 != 200 or name.encode() not in b1:
        raise SystemExit(f"bench: {name} answered {s1} {b1[:200]!r}")
    said = [ln.strip() for ln in proc.stderr.splitlines() if "compil" in ln]
    return {
        "app": name,
        "aot": aot,
        "code": code,
        "deploy_s": deploy_s,
        "first_s": first_s,
        "second_s": second_s,
        "compile_lines": said,
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    why = testhosts.missing_requirements("aarch64")
    if why:
        raise SystemExit(f"bench: no aarch64 test host here: {why}")

    work = Path(tempfile.mkdtemp(prefix="tb-a64-"))
    os.environ["TIRAMISU_HOME"] = str(work / "home")
    os.environ["TIRAMISU_INVENTORY"] = str(work / "home" / "tiramisu.yaml")
    (work / "home").mkdir()
    load_before = os.getloadavg()[0]
    bk.note("starting the aarch64 test host (qemu-user)")
    host = testhosts.start_host("aarch64", name="a64-bench")
    try:
        host.register(work / "home" / "tiramisu.yaml", "box")
        t0 = time.monotonic()
        tiramisu("setup", "--host", "box")
        setup_s = time.monotonic() - t0
        bk.note(f"setup {setup_s:.1f} s")
        hello = work / "hello.wat"
        hello.write_text((sb.GUESTS / "hello.wat").read_text())
        libc = work / "hello_libc.c"
        libc.write_text((sb.GUESTS / "hello_libc.c").read_text())
        tiramisu("deploy", hello, "--host", "box")
        tiramisu("deploy", libc, "--host", "box")
        start_ceiling(host, work)
        for port, path in ((8080, "/hello/"), (8080, "/hello_libc/"), (CEIL_PORT, "/hello")):
            status, body, _ = get(f"http://{host.hostname}:{port}{path}")
            if status != 200 or not body.endswith(sb.BODY):
                raise SystemExit(f"bench: {port}{path} answered {status} {body[:200]!r}")

        rows = [
            ("cs", "server direct, trivial", "http://127.0.0.1:9000/hello/"),
            ("n_cs", "nginx → server, trivial", f"http://{host.hostname}:8080/hello/"),
            ("cs_libc", "server direct, libc", "http://127.0.0.1:9000/hello_libc/"),
            ("n_cs_libc", "nginx → server, libc", f"http://{host.hostname}:8080/hello_libc/"),
            ("n_c", "nginx → C backend (ceiling)", f"http://{host.hostname}:{CEIL_PORT}/hello"),
        ]
        raw = {k: [] for k, _, _ in rows}
        for _, _, url in rows:
            wrk_in(host, url, 1, args.connections)
        for n in range(args.rounds):
            for key, label, url in rows if n % 2 == 0 else list(reversed(rows)):
                res = wrk_in(host, url, args.seconds, args.connections)
                raw[key].append(res)
                bk.note(f"round {n + 1}/{args.rounds} {label:<30} {res['rps']:>8.0f} rps  p99 {res['p99_ms']:.1f} ms")
        firsts = [first_request(host, work, aot=False), first_request(host, work, aot=True)]
    finally:
        try:
            tiramisu("teardown", "--host", "box", "--yes", timeout=300)
        except SystemExit:
            pass
        host.stop()
    load_after = os.getloadavg()[0]

    def ratio(a, b):
        return statistics.median(x["rps"] / y["rps"] for x, y in zip(raw[a], raw[b]))

    ratios = {
        "nginx→server / nginx→C, trivial": ratio("n_cs", "n_c"),
        "nginx→server / nginx→C, libc": ratio("n_cs_libc", "n_c"),
        "nginx→server / server direct, trivial": ratio("n_cs", "cs"),
        "nginx→server / server direct, libc": ratio("n_cs_libc", "cs_libc"),
        "libc / trivial, direct": ratio("cs_libc", "cs"),
        "libc / trivial, nginx →": ratio("n_cs_libc", "n_cs"),
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.machine()} host, aarch64 box under qemu-user, {os.cpu_count()} cores, "
        f"load {load_before:.1f} before, {load_after:.1f} after",
        "command": "bench/aarch64_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "setup_s": setup_s,
        "rows": {
            k: {
                "label": lab,
                "rounds_rps": [round(r["rps"]) for r in raw[k]],
                "errors": sum(r["non2xx"] + r["socket_errors"] for r in raw[k]),
            }
            for k, lab, _ in rows
        },
        "ratios": ratios,
        "first_request": firsts,
    }
    out = [f"aarch64 (qemu-user), {result['date']}, {result['machine']}", f"command: {result['command']}", ""]
    out.append(
        bk.table(
            ["row", "rps per round (emulated: ratios only)", "errors"],
            [[v["label"], " / ".join(map(str, v["rounds_rps"])), v["errors"]] for v in result["rows"].values()],
        )
    )
    out += ["", bk.table(["ratio (median of per-round ratios)", "value"], [[k, f"{v:.2f}"] for k, v in ratios.items()])]
    out += [
        "",
        bk.table(
            ["deploy", "code", "deploy s", "first GET s", "second GET s"],
            [
                [
                    "--aot" if f["aot"] else "plain",
                    f["code"],
                    f"{f['deploy_s']:.1f}",
                    f"{f['first_s']:.3f}",
                    f"{f['second_s']:.3f}",
                ]
                for f in firsts
            ],
        ),
    ]
    out += [f"{'--aot' if f['aot'] else 'plain'}: {line}" for f in firsts for line in f["compile_lines"]]
    print("\n".join(out))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
