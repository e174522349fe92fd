#!/usr/bin/env python3
"""What `setup` sends over SSH to a fresh host, and how long it takes, on a fast and a slow link.

    sudo .venv/bin/python bench/ship_bench.py [--cli PATH] [--rate 8mbit] [--json FILE]

Needs root (testhosts: x86_64 sshd in a network namespace, a fresh user).
Runs the real CLI (``--cli``: any checkout's ``.venv/bin/tiramisu``, so two
revisions can be compared on the same machine) with TIRAMISU_HOME and
TIRAMISU_INVENTORY in a temporary dir:

1. warm-up: setup of a throwaway host (fills the local caches: server build,
   nginx, the compressed wire copies);
2. setup of a fresh host over the veth link as it is;
3. setup of a fresh host whose link is shaped to ``--rate`` both ways (tc tbf
   on both ends of the host's own veth pair: the root-side end, made by
   testhosts for this host, and the end inside its namespace).

Bytes: the summary's ``sent_bytes`` (bytes of the upload streams) where the
CLI reports it, else ``uploaded_bytes`` (a revision that sends files as they
are). Seconds: wall time of the CLI, interpreter start included.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/
import benchkit as bk  # noqa: E402

BIN = Path(sys.executable).parent


def host_summaries(stdout):
    """Per-host setup summaries from ``--json`` output: the CLI contract's document
    (``{"schema": ..., "hosts": [...]}``), or what older revisions printed (one dict, or a list)."""
    doc = json.loads(stdout)
    if isinstance(doc, dict) and "hosts" in doc:
        return doc["hosts"]
    return doc if isinstance(doc, list) else [doc]


def setup(cli, env, name):
    t0 = time.monotonic()
    proc = subprocess.run(
        [cli, "setup", "--host", name, "--json"], env=env, capture_output=True, text=True, timeout=1800
    )
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench: setup of {name} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    (s,) = host_summaries(proc.stdout)
    sent = s.get("sent_bytes", s.get("uploaded_bytes"))
    return {
        "s": round(took, 2),
        "sent_bytes": sent,
        "files_bytes": s.get("uploaded_bytes"),
        "health": s["health"],
        "phases": s.get("phases"),  # seconds per setup phase (revisions that report them)
    }


def shape(host, rate):
    """tbf at ``rate`` on both ends of the host's veth pair."""
    from testhosts.commands import link_names

    outside, inside = link_names(host.netns)
    tbf = ["root", "tbf", "rate", rate, "burst", "32kb", "latency", "200ms"]
    subprocess.run(["tc", "qdisc", "add", "dev", outside, *tbf], check=True)
    subprocess.run(["ip", "netns", "exec", host.netns, "tc", "qdisc", "add", "dev", inside, *tbf], check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cli", default=str(BIN / "tiramisu"), help="the tiramisu executable to measure")
    ap.add_argument("--rate", default="8mbit", help="tc rate of the shaped link (8mbit = 1 MB/s)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--fleet", type=int, default=0, help="also: setup of N fresh hosts in one group (0: skip)")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-ship-"))
    inv = work / "tiramisu.yaml"
    env = {**os.environ, "TIRAMISU_HOME": str(work / "home"), "TIRAMISU_INVENTORY": str(inv)}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the start",
        "command": "bench/ship_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cli": args.cli,
    }
    hosts = []
    try:
        for key, shaped in (("warmup", False), ("fresh", False), ("shaped", True)):
            host = testhosts.start_host("x86_64", name=f"ship{key}")
            hosts.append(host)
            host.register(inv, key)
            if shaped:
                shape(host, args.rate)
            bk.note(f"setup of a fresh host ({key}{', link ' + args.rate if shaped else ''})")
            result[key] = setup(args.cli, env, key)
            bk.note(f"  {result[key]}")
            host.stop()
            hosts.remove(host)
        if args.fleet:
            for i in range(args.fleet):
                host = testhosts.start_host("x86_64", name=f"shipf{i}")
                hosts.append(host)
                host.register(inv, f"f{i}", groups=["fleet"])
            bk.note(f"setup of {args.fleet} fresh hosts in one group")
            t0 = time.monotonic()
            proc = subprocess.run(
                [args.cli, "setup", "--host", "fleet", "--json"], env=env, capture_output=True, text=True, timeout=1800
            )
            took = time.monotonic() - t0
            if proc.returncode != 0:
                raise SystemExit(f"bench: fleet setup failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
            per_host = host_summaries(proc.stdout)
            from fleet_bench import phase_table

            result["fleet"] = {
                "hosts": args.fleet,
                "s": round(took, 2),
                "sent_bytes": sum(h.get("sent_bytes", h.get("uploaded_bytes")) for h in per_host),
                "phases": phase_table(per_host),  # [median, max] s per phase (revisions that report them)
            }
            bk.note(f"  {result['fleet']}")
    finally:
        for host in hosts:
            host.stop()
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
