#!/usr/bin/env python3
"""A fleet: `setup` and `deploy` of N fresh x86_64 hosts in one group vs one host, with CPU seconds.

    sudo .venv/bin/python bench/fleet_bench.py [--hosts 20] [--rounds 3] [--cli PATH] [--json FILE]

Needs root (testhosts: sshd in a network namespace, a fresh user each). Runs
the real CLI with TIRAMISU_HOME and TIRAMISU_INVENTORY in a temporary dir:

1. warm-up: setup of a throwaway host (fills the local caches);
2. setup of one fresh host, then of N fresh hosts in one group
   (``setup --host fleet --json``);
3. ``--rounds`` alternating rounds of a deploy of a changed small module
   (prebuilt .wasm: nothing compiles) to the one host and to the group.

For every CLI run: wall seconds (interpreter start included), the CLI's own
CPU seconds (``RUSAGE_CHILDREN``: user + system of the process and what it
ran here, e.g. zstd), and the CPU seconds of the hosts' processes (every
process in the hosts' network namespaces, plus what their sshd reaped:
sessions, shells, decompressors; a cpuacct cgroup per host where the machine
has one, which also counts the daemonized server and nginx) — all on the same two cores, so CPU seconds
per host are the load-robust figure when the machine is shared. Per-host
phases come from setup's ``--json`` summaries (``phases``, ``connect_s``,
``channels``).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/
import benchkit as bk  # noqa: E402

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime + cutime + cstime of a process, in seconds (0 when gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / TICK


class CpuGroups:
    """One cpuacct cgroup (v1) per host holding its sshd: every process it starts, the
    daemonized server and nginx included, is counted there (``cpuacct.usage``).
    :meth:`make` gives None when this machine has no writable cpuacct hierarchy."""

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.base = self.ROOT / f"tiramisu-bench-fleet-{os.getpid()}"
        self.base.mkdir()
        self.paths = {}

    @classmethod
    def make(cls):
        try:
            return cls() if (cls.ROOT / "cpuacct.usage").exists() else None
        except OSError:
            return None

    def add(self, host):
        path = self.base / host.netns
        path.mkdir()
        for pid in host.pids:
            (path / "cgroup.procs").write_text(str(pid))
        self.paths[host.netns] = path

    def seconds(self, hosts):
        return sum(int((self.paths[h.netns] / "cpuacct.usage").read_text()) for h in hosts) / 1e9

    def remove(self):
        for path in [*self.paths.values(), self.base]:
            for pid in (path / "cgroup.procs").read_text().split():
                try:
                    (self.ROOT / "cgroup.procs").write_text(pid)
                except OSError:
                    pass
            try:
                path.rmdir()
            except OSError:
                pass


GROUPS = None  # this run's CpuGroups, when there are


def hosts_cpu(hosts):
    """CPU seconds used by the hosts so far: their cgroups when there are, else every
    process in the hosts' network namespaces (reaped children included)."""
    if GROUPS is not None:
        return GROUPS.seconds(hosts)
    from testhosts.registry import netns_pids

    return sum(proc_cpu(pid) for h in hosts for pid in netns_pids(h.netns))


def start_host(testhosts, name):
    host = testhosts.start_host("x86_64", name=name)
    if GROUPS is not None:
        GROUPS.add(host)
    return host


def local_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_cli(cli, env, args, hosts, timeout=1800):
    """(proc, {s, local_cpu_s, hosts_cpu_s}) of one CLI run."""
    c0, h0, t0 = local_cpu(), hosts_cpu(hosts), time.monotonic()
    proc = subprocess.run(
        [cli, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    took = time.monotonic() - t0
    facts = {
        "s": round(took, 2),
        "local_cpu_s": round(local_cpu() - c0, 2),
        "hosts_cpu_s": round(hosts_cpu(hosts) - h0, 2),
    }
    if proc.returncode != 0:
        why = proc.stderr[-1500:]
        try:  # --json runs: each failed host's own error
            why = "; ".join(f"{h['host']}: {h['error']}" for h in json.loads(proc.stdout)["hosts"] if not h["ok"])
        except (ValueError, KeyError, TypeError):
            pass
        raise SystemExit(f"bench: {' '.join(map(str, args))} failed (exit {proc.returncode}): {why}")
    return proc, facts


def setup_summaries(stdout):
    doc = json.loads(stdout)
    return doc["hosts"] if isinstance(doc, dict) and "hosts" in doc else (doc if isinstance(doc, list) else [doc])


def phase_table(summaries):
    """{phase: [median, max]} over the hosts' setup summaries."""
    names = []
    for s in summaries:
        for k in s.get("phases") or {}:
            if k not in names:
                names.append(k)
    out = {}
    for k in names + ["connect_s", "channels", "seconds"]:
        vals = [(s.get("phases") or {}).get(k) if k in (s.get("phases") or {}) else s.get(k) for s in summaries]
        vals = [v for v in vals if isinstance(v, (int, float))]
        if vals:
            out[k] = [round(statistics.median(vals), 3), round(max(vals), 3)]
    return out


def module(work, text):
    import server_bench

    path = work / "apps" / "fleetapp.wasm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(server_bench.text_module(text))
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=20, help="hosts in the fleet")
    ap.add_argument("--rounds", type=int, default=3, help="alternating deploy rounds (one host, the fleet)")
    ap.add_argument("--cli", default=str(BIN / "tiramisu"), help="the tiramisu executable to measure")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--keep-going", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-fleet-"))
    inv = work / "tiramisu.yaml"
    env = {**os.environ, "TIRAMISU_HOME": str(work / "home"), "TIRAMISU_INVENTORY": str(inv)}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "load_start": [round(x, 1) for x in os.getloadavg()],
        "command": "bench/fleet_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cli": args.cli,
    }
    global GROUPS
    GROUPS = CpuGroups.make()
    result["hosts_cpu_from"] = "cpuacct cgroup per host" if GROUPS is not None else "netns processes"
    hosts = []
    try:
        warm = start_host(testhosts, "fleetw")
        hosts.append(warm)
        warm.register(inv, "warm")
        bk.note("warm-up setup")
        run_cli(args.cli, env, ["setup", "--host", "warm"], [warm])
        warm.stop()
        hosts.remove(warm)

        one = start_host(testhosts, "fleet1")
        hosts.append(one)
        one.register(inv, "one")
        fleet = []
        for i in range(args.hosts):
            h = start_host(testhosts, f"fleetf{i}")
            hosts.append(h)
            fleet.append(h)
            h.register(inv, f"f{i}", groups=["fleet"])

        bk.note("setup of one fresh host")
        proc, facts = run_cli(args.cli, env, ["setup", "--host", "one", "--json"], [one])
        summaries = setup_summaries(proc.stdout)
        result["setup_one"] = dict(facts, sent_bytes=summaries[0].get("sent_bytes"), phases=phase_table(summaries))
        bk.note(f"  {result['setup_one']}")
        bk.note(f"setup of {args.hosts} fresh hosts in one group")
        proc, facts = run_cli(args.cli, env, ["setup", "--host", "fleet", "--json"], fleet)
        summaries = setup_summaries(proc.stdout)
        result["setup_fleet"] = dict(
            facts,
            sent_bytes=sum(s.get("sent_bytes") or 0 for s in summaries),
            phases=phase_table(summaries),
            host_seconds=sorted(s.get("seconds") for s in summaries),
        )
        bk.note(f"  {result['setup_fleet']}")

        deploys = {"one": [], "fleet": []}
        for r in range(args.rounds):
            for label, target, group in (("one", "one", [one]), ("fleet", "fleet", fleet)):
                wasm = module(work, f"fleet bench {label} {r}")
                _, facts = run_cli(args.cli, env, ["deploy", wasm, "--host", target], group)
                deploys[label].append(facts)
                bk.note(f"deploy {label} round {r}: {facts}")
        result["deploy"] = deploys
    finally:
        for host in hosts:
            host.stop()
        if GROUPS is not None:
            GROUPS.remove()
    result["load_end"] = [round(x, 1) for x in os.getloadavg()]

    def med(rows, key):
        return round(statistics.median(r[key] for r in rows), 2)

    so, sf = result["setup_one"], result["setup_fleet"]
    do = {k: med(deploys["one"], k) for k in ("s", "local_cpu_s", "hosts_cpu_s")}
    df = {k: med(deploys["fleet"], k) for k in ("s", "local_cpu_s", "hosts_cpu_s")}
    n = args.hosts
    rows = [
        ["setup, 1 host", so["s"], so["local_cpu_s"], so["hosts_cpu_s"], ""],
        [
            f"setup, {n} hosts",
            sf["s"],
            f"{sf['local_cpu_s']} ({sf['local_cpu_s'] / n:.2f}/host)",
            f"{sf['hosts_cpu_s']} ({sf['hosts_cpu_s'] / n:.2f}/host)",
            f"{sf['s'] / so['s']:.1f}x (goal <= 3x)",
        ],
        ["deploy, 1 host (median)", do["s"], do["local_cpu_s"], do["hosts_cpu_s"], ""],
        [
            f"deploy, {n} hosts (median)",
            df["s"],
            f"{df['local_cpu_s']} ({df['local_cpu_s'] / n:.2f}/host)",
            f"{df['hosts_cpu_s']} ({df['hosts_cpu_s'] / n:.2f}/host)",
            f"{df['s'] / do['s']:.1f}x (goal <= 2x)",
        ],
    ]
    print(bk.table(["run", "wall s", "local CPU s", "hosts CPU s", "ratio"], rows))
    print("per-host setup phases, [median, max] s:")
    for k in sf["phases"]:
        print(f"  {k:18} one {so['phases'].get(k)}  fleet {sf['phases'][k]}")
    result.update(median_deploy_one=do, median_deploy_fleet=df)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
