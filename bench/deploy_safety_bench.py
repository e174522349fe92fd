#!/usr/bin/env python3
"""Deploy safety benchmark (issue 13): what the box's lock and history cost, and rolling vs all-at-once.

    sudo .venv/bin/python bench/deploy_safety_bench.py [--rounds 10] [--hosts 8] [--json FILE]

Needs root: it makes real SSH test hosts (testhosts, x86_64: sshd in a
network namespace, a fresh user each). Measures, in one run:

1. **Lock + history overhead of a deploy** (warm, small app, one box, one SSH
   connection): alternating rounds of the deploy procedure as it was before
   (``deploy.deploy``: observe, upload, switch, verify) and the same procedure
   as the task runs it now (``deploy.locked_deploy``: take the lock, list the
   releases, deploy, prune plan, history record, release the lock), each with
   a changed module so every round really switches. Median wall time of each
   and the difference.
2. **Rolling deploy over N hosts**: the real CLI, ``deploy --host fleet``
   (all hosts at once) vs ``deploy --host fleet --batch 2``, alternating,
   from command start to exit (every host verified by the deploy itself).
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/ (a package of the checkout)
import benchkit as bk  # noqa: E402

BIN = Path(sys.executable).parent
SETTINGS = {"http_port": 8383, "server_port": 9393}


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
    return proc.stdout


def text_module(text):
    import server_bench

    return server_bench.text_module(text)


def built_module(work, text):
    """A stand-in for apps.build.BuildResult of a prebuilt .wasm (no compile time)."""
    data = text_module(text)
    path = work / f"m-{hashlib.sha256(data).hexdigest()[:12]}.wasm"
    path.write_bytes(data)
    return SimpleNamespace(wasm_path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), name="safe")


def open_box_in_process(name):
    """One Box over one SSH connection, as a task would make it."""
    import invoke

    from tiramisu_tasks.box import connect_box
    from tiramisu_tasks.connect import connect, resolve_specs
    from tiramisu_tasks.hostrun import Reporter
    from tiramisu_tasks.inventory import Inventory
    from tiramisu_tasks.namespace import ns

    config = invoke.Config(overrides={"tiramisu": dict(ns.configuration()["tiramisu"])})
    c = invoke.Context(config=config)
    inventory = Inventory.load()
    (spec,) = resolve_specs(c, name, inventory)
    rep = Reporter(name)
    rep.note = lambda *a: None  # quiet: the plan lines would swamp the table
    conn = connect(c, spec, inventory, notify=rep.note)
    return connect_box(c, conn, spec, rep), conn


def lock_overhead(work, rounds):
    from tiramisu_tasks import deploy as dp

    box, conn = open_box_in_process("box")
    plain, locked = [], []
    try:
        for i in range(rounds):
            for label, fn, out in (("plain", dp.deploy, plain), ("locked", dp.locked_deploy, locked)):
                built = built_module(work, f"bench {label} {i}")
                t0 = time.monotonic()
                summary = fn(box, built, "safe", None)
                out.append(time.monotonic() - t0)
                assert summary["changed"] and summary["status"] == 200, summary
    finally:
        conn.close()
    return plain, locked


def fleet_rollout(env, work, rounds):
    times = {"all": [], "batch2": []}
    for i in range(rounds):
        for label, extra in (("all", []), ("batch2", ["--batch", "2"])):
            wasm = work / "fleet" / "fleetapp.wasm"
            wasm.parent.mkdir(exist_ok=True)
            wasm.write_bytes(text_module(f"fleet {label} {i}"))
            proc, seconds = cli(env, "deploy", wasm, "--host", "fleet", *extra)
            must(proc, f"fleet deploy {label} {i}")
            times[label].append(seconds)
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="alternating rounds of the lock overhead measurement")
    ap.add_argument("--fleet-rounds", type=int, default=3, help="alternating rounds of the fleet deploys")
    ap.add_argument("--hosts", type=int, default=8, help="x86_64 test hosts in the fleet")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-safety-"))
    os.environ.update(TIRAMISU_HOME=str(work / "home"), TIRAMISU_INVENTORY=str(work / "tiramisu.yaml"))
    env = dict(os.environ)
    hosts = []
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "command": "bench/deploy_safety_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    try:
        bk.note(f"starting {args.hosts} x86_64 test hosts")
        for i in range(args.hosts):
            host = testhosts.start_host("x86_64", name=f"safe{i}")
            hosts.append(host)
            host.register(work / "tiramisu.yaml", f"h{i}", groups=["fleet"], settings=SETTINGS)
        hosts[0].register(work / "tiramisu.yaml", "box", settings=SETTINGS)
        bk.note("setup of the fleet (parallel)")
        must(cli(env, "setup", "--host", "fleet")[0], "setup")

        bk.note(f"lock overhead: {args.rounds} alternating rounds, plain vs locked deploy procedure")
        plain, locked = lock_overhead(work, args.rounds)
        result["deploy_plain_s"] = plain
        result["deploy_locked_s"] = locked
        bk.note(f"fleet: {args.fleet_rounds} alternating rounds, all at once vs --batch 2")
        fleet = fleet_rollout(env, work, args.fleet_rounds)
        result["fleet_all_s"] = fleet["all"]
        result["fleet_batch2_s"] = fleet["batch2"]
    finally:
        for host in hosts:
            host.stop()

    mp, ml = statistics.median(plain), statistics.median(locked)
    fa, fb = statistics.median(fleet["all"]), statistics.median(fleet["batch2"])
    rows = [
        ["deploy procedure, before (no lock, no history)", f"{mp:.3f} s", ""],
        ["deploy procedure, under the lock + history + prune", f"{ml:.3f} s", f"+{ml - mp:.3f} s (goal <= 0.3 s)"],
        [f"deploy to {args.hosts} hosts, all at once", f"{fa:.2f} s", ""],
        [f"deploy to {args.hosts} hosts, --batch 2", f"{fb:.2f} s", f"{fb / fa:.2f}x"],
    ]
    print(bk.table(["what", "median", "vs"], rows))
    result.update(
        median_plain_s=mp, median_locked_s=ml, lock_overhead_s=ml - mp, median_fleet_all_s=fa, median_fleet_batch2_s=fb
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
