#!/usr/bin/env python3
"""Lifecycle benchmark (issues #5/#6): setup, re-run, footprint, redeploy, deploys under load.

    sudo .venv/bin/python bench/lifecycle_bench.py [--deploys 20] [--json FILE]

Needs root: it makes real SSH test hosts (testhosts, x86_64: sshd
in a network namespace, a fresh user). Runs the real `tiramisu` CLI as a
subprocess with TIRAMISU_HOME/TIRAMISU_INVENTORY in a temporary dir, as a user
would. Measures:

1. warm-cache `setup` of a bare host (a first setup on a throwaway host fills
   the local caches: server build, nginx, Wasmtime library) and a no-change
   re-run;
2. the whole env on the box (`du -sk ~/tiramisu-env`, with a breakdown);
3. redeploy of a changed small app (a prebuilt .wasm whose bytes change each
   time, so no compile time): wall time from command start until the new
   version answers through nginx, N times, under a load loop through nginx that
   counts every non-2xx answer and socket error; plus a breakdown of one deploy
   (interpreter start, cProfile of the CLI by phase).
"""

import argparse
import cProfile  # noqa: F401 - used through `python -m cProfile`
import http.client
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/ (a package of the checkout)
import benchkit as bk  # noqa: E402

BIN = Path(sys.executable).parent
TARGETS = {"setup_s": 10.0, "rerun_s": 2.0, "env_mb": 35.0, "redeploy_s": 1.0}


def cli(env, *args, timeout=900):
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "tiramisu"), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=str(bk.REPO),
    )
    return proc, time.monotonic() - t0


def must(proc, what):
    if proc.returncode != 0:
        raise SystemExit(f"bench: {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    if not proc.stdout.strip().startswith(("{", "[")):
        return proc.stdout
    doc = json.loads(proc.stdout)
    # the CLI contract's envelope: one host's object under "hosts"
    return doc["hosts"][0] if isinstance(doc, dict) and len(doc.get("hosts") or []) == 1 else doc


def text_module(text):
    import server_bench

    return server_bench.text_module(text)


class Load:
    """Keep-alive GET loops through nginx from a few threads; counts everything that is not a 200 from the app."""

    def __init__(self, host, port, path, threads=4):
        self.host, self.port, self.path = host, port, path
        self.ok = self.non2xx = self.socket_errors = 0
        self.bodies = set()
        self.errors = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self):
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                body = resp.read()
                with self._lock:
                    if resp.status == 200 and body.startswith(b"bench v"):
                        self.ok += 1
                        self.bodies.add(body)
                    else:
                        self.non2xx += 1
                        self.errors.append(f"{resp.status} {body[:80]!r}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.socket_errors += 1
                    self.errors.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self):
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for t in self._threads:
            t.join(30)


def wait_body(host, port, path, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = bk.http_get(port, path, host=host, timeout=5)
            if status == 200 and body == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"bench: {path} never answered {want!r}")


def profile_deploy(env, wasm, work):
    """One deploy under cProfile: where the wall time goes, by phase (cumulative seconds)."""
    out = work / "deploy.prof"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            out,
            "-m",
            "tiramisu_tasks",
            "deploy",
            wasm,
            "--host",
            "box",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(bk.REPO),
        stdin=subprocess.DEVNULL,
    )
    wall = time.monotonic() - t0
    must(proc, "profiled deploy")
    stats = pstats.Stats(str(out))
    phases = {
        # (module file suffix, function name): label; functions that do not exist
        # in the code under test are left out of the table
        ("tiramisu_tasks/cli.py", "main"): "CLI main (all, after imports)",
        ("tiramisu_tasks/apps/build.py", "build_app"): "build_app (prebuilt .wasm: read + hash)",
        ("fabric/connection.py", "open"): "SSH connect + auth (Connection.open, all calls)",
        ("tiramisu_tasks/box.py", "open_box"): "probe (open_box)",
        ("tiramisu_tasks/deploy.py", "server_apps"): "admin /apps (all)",
        ("tiramisu_tasks/transfer.py", "upload_batch"): "upload + check-module",
        ("tiramisu_tasks/deploy.py", "signal_server"): "SIGHUP",
        ("tiramisu_tasks/deploy.py", "wait_for_app"): "wait until the server swapped",
        ("tiramisu_tasks/sshhttp.py", "request"): "HTTP requests over SSH (all)",
        ("tiramisu_tasks/deploy.py", "current_release"): "current release",
        ("tiramisu_tasks/deploy.py", "read_text"): "read_text",
        ("tiramisu_tasks/remote.py", "run"): "remote commands (remote.run, all)",
        ("fabric/connection.py", "run"): "remote commands (Connection.run, all)",
    }
    rows = []
    for (fname, func), label in phases.items():
        for (file, _line, name), (_cc, nc, _tt, ct, _callers) in stats.stats.items():
            if name == func and file.replace("\\", "/").endswith(fname):
                rows.append((label, nc, ct))
                break
    return wall, rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quiet-deploys", type=int, default=10, help="timed deploys of changed versions, no load")
    ap.add_argument("--deploys", type=int, default=20, help="deploys of changed versions under load")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-lifecycle-"))
    env = {**os.environ, "TIRAMISU_HOME": str(work / "home"), "TIRAMISU_INVENTORY": str(work / "tiramisu.yaml")}
    hosts = []
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "command": "bench/lifecycle_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    try:
        bk.note("warm-up: setup of a throwaway host fills the local caches")
        warm = testhosts.start_host("x86_64", name="benchwarm")
        hosts.append(warm)
        warm.register(work / "tiramisu.yaml", "warm")
        proc, t_warm = cli(env, "setup", "--host", "warm", "--json")
        must(proc, "warm-up setup")
        result["warmup_setup_s"] = t_warm
        warm.stop()
        hosts.remove(warm)

        box = testhosts.start_host("x86_64", name="benchbox")
        hosts.append(box)
        box.register(work / "tiramisu.yaml", "box")
        bk.note("setup of a bare host (warm cache)")
        proc, t_setup = cli(env, "setup", "--host", "box", "--json")
        s = must(proc, "setup")
        assert s["health"]["status"] == 200, s
        bk.note(f"setup {t_setup:.2f} s; re-run")
        proc, t_rerun = cli(env, "setup", "--host", "box", "--json")
        s2 = must(proc, "setup re-run")
        result.update(
            setup_s=t_setup,
            setup_uploaded=s["uploaded"],
            rerun_s=t_rerun,
            rerun_changed=bool(s2["uploaded"] or s2["done"]),
        )

        du = box.ssh("du -sk tiramisu-env; du -sk tiramisu-env/* | sort -rn", check=True).stdout.split("\n")
        result["env_kib"] = int(du[0].split()[0])
        result["env_breakdown_kib"] = {
            Path(line.split()[1]).name: int(line.split()[0]) for line in du[1:] if line.strip()
        }

        app_dir = work / "app"
        app_dir.mkdir()
        wasm = app_dir / "benchapp.wasm"
        wasm.write_bytes(text_module("bench v0"))
        proc, t_first = cli(env, "deploy", wasm, "--host", "box", "--json")
        must(proc, "first deploy")
        result["first_deploy_s"] = t_first
        http_port = 8080
        wait_body(box.hostname, http_port, "/benchapp", b"bench v0\n")

        # interpreter + imports alone: the floor of any CLI command
        starts = [cli(env, "--version")[1] for _ in range(3)]
        result["cli_start_s"] = statistics.median(starts)

        version = [0]

        def deploy_next(front=(str(BIN / "tiramisu"),)):
            version[0] += 1
            i = version[0]
            wasm.write_bytes(text_module(f"bench v{i}"))
            t0 = time.monotonic()
            proc = subprocess.run(
                [*front, "deploy", str(wasm), "--host", "box", "--json"],
                env=env,
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                cwd=str(bk.REPO),
            )
            t_cli = time.monotonic() - t0
            d = must(proc, f"deploy {i}")
            t_seen = wait_body(box.hostname, http_port, "/benchapp", f"bench v{i}\n".encode()) - t0
            return {
                "cli_s": round(t_cli, 3),
                "verified_s": round(max(t_cli, t_seen), 3),
                "box_s": _find(d, "seconds"),
                "swap_ms": _find(d, "swap_ms"),
            }

        bk.note(f"{args.quiet_deploys} timed deploys of changed versions (no load)")
        result["deploys"] = [deploy_next() for _ in range(args.quiet_deploys)]
        bk.note(
            f"what-if: {args.quiet_deploys} timed deploys with TCP_NODELAY on the SSH socket (bench/nodelay_cli.py)"
        )
        shim = (sys.executable, str(bk.HERE / "nodelay_cli.py"))
        result["deploys_nodelay"] = [deploy_next(shim) for _ in range(args.quiet_deploys)]
        t0 = time.monotonic()
        proc = subprocess.run(
            [*shim, "setup", "--host", "box", "--json"],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            cwd=str(bk.REPO),
        )
        must(proc, "setup re-run (nodelay)")
        result["rerun_nodelay_s"] = time.monotonic() - t0
        bk.note(f"{args.deploys} deploys of changed versions under load through nginx")
        with Load(box.hostname, http_port, "/benchapp") as load:
            time.sleep(0.5)
            result["deploys_under_load"] = [deploy_next() for _ in range(args.deploys)]
            time.sleep(0.5)
        result["load"] = {
            "ok": load.ok,
            "non2xx": load.non2xx,
            "socket_errors": load.socket_errors,
            "versions_seen": len(load.bodies),
            "errors": load.errors[:5],
        }

        wasm.write_bytes(text_module("bench profiled"))
        wall, rows = profile_deploy(env, wasm, work)
        result["profile"] = {"wall_s": wall, "rows": [[label, n, round(ct, 3)] for label, n, ct in rows]}
    finally:
        for h in hosts:
            try:
                h.stop()
            except Exception as exc:  # noqa: BLE001 - report and go on tearing down
                bk.note(f"teardown of {h.name}: {exc}")
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _find(obj, key):
    """A key in a deploy JSON summary, whatever the per-host nesting."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    if isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def report(r):
    verified = [d["verified_s"] for d in r["deploys"]]
    box_s = [d["box_s"] for d in r["deploys"] if d["box_s"] is not None]
    swap = [d["swap_ms"] for d in r["deploys"] if d["swap_ms"] is not None]
    loaded = [d["verified_s"] for d in r["deploys_under_load"]]
    nodelay = [d["verified_s"] for d in r.get("deploys_nodelay", [])]
    load = r["load"]
    failed = load["non2xx"] + load["socket_errors"]
    rows = [
        ["warm-cache setup of a bare x86_64 host ≤ 10 s", f"{r['setup_s']:.2f} s", bk.verdict(r["setup_s"] <= 10)],
        [
            "no-change re-run ≤ 2 s",
            f"{r['rerun_s']:.2f} s" + (" (changed something!)" if r["rerun_changed"] else ""),
            bk.verdict(r["rerun_s"] <= 2 and not r["rerun_changed"]),
        ],
        ["whole env on the box ≤ 35 MB", f"{r['env_kib'] / 1024:.1f} MiB", bk.verdict(r["env_kib"] / 1024 <= 35)],
        [
            "redeploy of a changed small app ≤ 1 s (command start → new version verified)",
            f"median {statistics.median(verified):.2f} s, max {max(verified):.2f} s",
            bk.verdict(statistics.median(verified) <= 1.0),
        ],
        [
            f"0 failed requests across {len(loaded)} deploys under load",
            f"{failed} failed ({load['non2xx']} non-2xx, {load['socket_errors']} socket errors) of "
            f"{load['ok'] + failed}",
            bk.verdict(failed == 0),
        ],
    ]
    out = [
        f"Lifecycle benchmark, {r['date']}, {r['machine']}",
        f"command: {r['command']}",
        "",
        bk.table(["target", "measured", "verdict"], rows),
        "",
        f"information: warm-up setup (cold local caches unless earlier runs filled them) "
        f"{r['warmup_setup_s']:.1f} s; "
        f"first deploy {r['first_deploy_s']:.2f} s; `tiramisu --version` {r['cli_start_s']:.2f} s; "
        f"time on the box per deploy (summary 'seconds') median {statistics.median(box_s):.2f} s; "
        f"server swap after the switch (summary 'swap_ms') median {statistics.median(swap):.0f} ms; "
        f"versions seen by the load: {load['versions_seen']}; "
        f"redeploy under that load: median {statistics.median(loaded):.2f} s, max {max(loaded):.2f} s",
        "",
        "what-if, TCP_NODELAY on the SSH client socket (bench/nodelay_cli.py runs the same CLI with "
        f"that one change): redeploy median {statistics.median(nodelay):.2f} s, max {max(nodelay):.2f} s; "
        f"no-change setup re-run {r['rerun_nodelay_s']:.2f} s"
        if nodelay
        else "",
        "",
        "env on the box (KiB): " + ", ".join(f"{k} {v}" for k, v in r["env_breakdown_kib"].items()),
        "",
        f"one deploy under cProfile ({r['profile']['wall_s']:.2f} s wall with the profiler):",
        bk.table(["phase", "calls", "cumulative s"], r["profile"]["rows"]),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
