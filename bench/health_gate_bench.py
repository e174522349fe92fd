#!/usr/bin/env python3
"""Health gate benchmark (issue 13, part 2): what the pre-switch check adds to a deploy.

    sudo .venv/bin/python bench/health_gate_bench.py [--rounds 10] [--base main] [--json FILE]

Needs root: one real SSH test host (testhosts, x86_64), set up by this work
tree's CLI. Then, in alternating rounds, a redeploy of a changed small app (a
prebuilt WAT module whose text changes each time, so nothing compiles on this
side) by this work tree's ``tiramisu deploy`` (health gate: preview slot,
loopback check, switch, check through nginx) and by the ``--base`` revision's
(today's deploy: switch, one request through nginx), both against the same box
and server. Reports the wall time of each CLI run (median, max), the
difference of the medians (goal <= 0.3 s) and the gate's own time inside the
deploy (summary ``gate_ms``: preview placed -> compiled -> checked).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/
import benchkit as bk  # noqa: E402

GOAL_S = 0.3


def text_module(text):
    import server_bench

    return server_bench.text_module(text)


def run(argv, env, cwd):
    t0 = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=str(cwd))
    return proc, time.monotonic() - t0


def must(proc, what):
    if proc.returncode != 0:
        raise SystemExit(f"bench: {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    doc = json.loads(proc.stdout)
    # the CLI contract's envelope (one host's object under "hosts"); older revisions print the object itself
    return doc["hosts"][0] if isinstance(doc, dict) and "hosts" in doc else doc


def base_tree(rev, work):
    """The ``rev`` revision's tiramisu_tasks, unpacked beside (run with ``python -m tiramisu_tasks``)."""
    out = work / "base"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(bk.REPO), "archive", rev], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10, help="deploys with the gate and without it, alternating")
    ap.add_argument("--base", default="main", help="git revision whose deploy has no health gate")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-gate-"))
    env = {**os.environ, "TIRAMISU_HOME": str(work / "home"), "TIRAMISU_INVENTORY": str(work / "tiramisu.yaml")}
    base = base_tree(args.base, work)
    gate_cli = ([str(Path(sys.executable).parent / "tiramisu")], env, bk.REPO)
    base_cli = ([sys.executable, "-m", "tiramisu_tasks"], {**env, "PYTHONPATH": str(base)}, base)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start",
        "command": "bench/health_gate_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "base": subprocess.run(
            ["git", "-C", str(bk.REPO), "rev-parse", "--short", args.base], capture_output=True, text=True
        ).stdout.strip(),
    }
    host = None
    try:
        host = testhosts.start_host("x86_64", name="benchgate")
        host.register(work / "tiramisu.yaml", "box")
        bk.note("setup of the bench host")
        must(run([*gate_cli[0], "setup", "--host", "box", "--json"], env, bk.REPO)[0], "setup")
        wasm = work / "benchapp.wasm"
        version = [0]

        def deploy(front):
            argv0, fenv, cwd = front
            version[0] += 1
            wasm.write_bytes(text_module(f"bench v{version[0]}"))
            proc, secs = run([*argv0, "deploy", str(wasm), "--host", "box", "--json"], fenv, cwd)
            summary = must(proc, f"deploy {version[0]}")
            return {"cli_s": round(secs, 3), "box_s": summary.get("seconds"), "gate_ms": summary.get("gate_ms")}

        deploy(gate_cli)  # first deploy of the app (creates it), and a warm-up of each front end
        deploy(base_cli)
        gated, plain = [], []
        for i in range(args.rounds):
            bk.note(f"round {i + 1}/{args.rounds}")
            gated.append(deploy(gate_cli))
            plain.append(deploy(base_cli))
        result["gated"], result["plain"] = gated, plain
    finally:
        if host is not None:
            host.stop()

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    over = med(gated, "cli_s") - med(plain, "cli_s")
    result.update(
        gated_median_s=med(gated, "cli_s"),
        gated_max_s=max(r["cli_s"] for r in gated),
        plain_median_s=med(plain, "cli_s"),
        plain_max_s=max(r["cli_s"] for r in plain),
        overhead_s=round(over, 3),
        gate_ms_median=med(gated, "gate_ms"),
        gate_ms_max=max(r["gate_ms"] for r in gated),
    )
    print(f"\n{result['date']}  {result['machine']}  base {result['base']}  ({args.rounds} rounds, alternating)")
    print("| deploy of a changed small app (warm) | median | max |")
    print("|---|---|---|")
    print(f"| with the health gate (this tree) | {result['gated_median_s']:.2f} s | {result['gated_max_s']:.2f} s |")
    print(f"| without it (base {result['base']}) | {result['plain_median_s']:.2f} s | {result['plain_max_s']:.2f} s |")
    print(f"| gate inside the deploy (gate_ms) | {result['gate_ms_median']:.0f} ms | {result['gate_ms_max']:.0f} ms |")
    verdict = "met" if over <= GOAL_S else "NOT met"
    print(f"overhead (difference of medians): {over:+.2f} s, goal <= {GOAL_S} s: {verdict}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
