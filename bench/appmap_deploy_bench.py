#!/usr/bin/env python3
"""Deploy of a 10-route WAGI module map to an installed box, cold and warm (issue 12, goal: warm <= 2 s).

    sudo .venv/bin/python bench/appmap_deploy_bench.py [--rounds 5] [--json FILE]

Needs root: it makes a real SSH test host (testhosts, x86_64: sshd in a
network namespace, a fresh user) and runs ``tiramisu setup`` on it, then the
real CLI as a user would (``tiramisu deploy DIR --host box``, a subprocess with
TIRAMISU_HOME/TIRAMISU_INVENTORY in a temporary dir), timed from command start
to exit (the deploy itself checks that the new release answers).

The map (generated, WAT modules like wasm_examples/wagi-map): 10 routes over
8 modules: ``/`` exact, ``/hello/...`` wildcard with entry point ``hello``,
``/bye`` exact with entry point ``goodbye`` and an environment, ``/api`` whose
module exports ``_routes``, ``/store/...`` with a WAGI volume (a writable data
folder seeded on the first deploy), and five pages ``/p/1`` .. ``/p/5/...``.

Rows, in alternating rounds:

* map, cold: ``remove --yes --purge-data`` first (not timed), then deploy;
* map, warm unchanged: the same folder again;
* map, warm one module changed: ``p5.wat`` gets a new text each round;
* plain single module (the peer), changed: a prebuilt .wasm with a new text;
* plain single module, unchanged.

Then a breakdown of the warm map deploys in this process (the same
procedure the task runs: the box's lock around ``appdeploy.deploy_app``),
every SSH effect timed and labelled with the source line that made it, and
SSH channels counted (each channel is at least one network round trip).
"""

import argparse
import collections
import inspect
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/ (a package of the checkout)
import benchkit as bk  # noqa: E402
from deploy_safety_bench import built_module, open_box_in_process, text_module  # noqa: E402
from deploy_safety_bench import cli as _cli  # noqa: E402

SETTINGS = {"http_port": 8484, "server_port": 9494}
GOAL_S = 2.0
APP = "map10"

PAGE_WAT = """;; A page of the benchmark's module map.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {length}))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""

MAP = """# 10 routes over 8 modules (bench/appmap_deploy_bench.py)
[[module]]
route = "/"
module = "root.wat"

[[module]]
route = "/hello/..."
module = "handlers.wat"
entrypoint = "hello"

[[module]]
route = "/bye"
module = "file:handlers.wat"
entrypoint = "goodbye"
environment.TEST_NAME = "test value"

[[module]]
route = "/api"
module = "handlers.wat"

[[module]]
route = "/store/..."
module = "store.wat"
volumes = { "/data" = "data" }
""" + "".join(f'\n[[module]]\nroute = "/p/{i}{"/..." if i % 2 else ""}"\nmodule = "p{i}.wat"\n' for i in range(1, 6))


def page_wat(text):
    body = f"Content-Type: text/plain\n\n{text}\n"
    return PAGE_WAT.format(data=body.replace("\n", "\\n"), length=len(body.encode()))


def make_map(folder):
    folder.mkdir(parents=True)
    src = bk.REPO / "wasm_examples" / "wagi-map"
    (folder / "root.wat").write_text((src / "root.wat").read_text())
    (folder / "handlers.wat").write_text((src / "handlers.wat").read_text())
    (folder / "store.wat").write_text(page_wat("store"))
    for i in range(1, 6):
        (folder / f"p{i}.wat").write_text(page_wat(f"page {i}"))
    (folder / "data").mkdir()
    (folder / "data" / "seed.txt").write_text("seeded on the first deploy only\n")
    (folder / "modules.toml").write_text(MAP)


def cli(env, *args):
    """(proc, wall seconds, CPU seconds of the CLI process: user + system, from getrusage)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc, wall = _cli(env, *args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return proc, wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def must(proc, what):
    if proc.returncode != 0:
        raise SystemExit(f"bench: {what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def timed_rounds(env, work, rounds):
    mapdir, single = work / APP, work / "single" / "single.wasm"
    single.parent.mkdir()
    times = collections.defaultdict(list)  # key -> [(wall s, CLI CPU s)]

    def one(key, *args):
        proc, wall, cpu = cli(env, *args)
        must(proc, key)
        times[key].append((wall, cpu))

    def map_rows(r):
        must(cli(env, "remove", APP, "--host", "box", "--yes", "--purge-data")[0], "remove")
        one("map_cold", "deploy", mapdir, "--host", "box")
        one("map_warm_same", "deploy", mapdir, "--host", "box")
        (mapdir / "p5.wat").write_text(page_wat(f"page 5, round {r}"))
        one("map_warm_one", "deploy", mapdir, "--host", "box")

    def single_rows(r):
        single.write_bytes(text_module(f"single, round {r}"))
        one("single_changed", "deploy", single, "--host", "box")
        one("single_same", "deploy", single, "--host", "box")
        one("version", "--version")  # interpreter + imports: the floor of any command

    for r in range(rounds):
        order = (map_rows, single_rows) if r % 2 == 0 else (single_rows, map_rows)
        for fn in order:
            fn(r)
        bk.note(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1][0]:.2f} s" for k, v in sorted(times.items())))
    return times


# ------------------------------------------------------------- breakdown ---


class Channels:
    """Counts SSH channels opened (paramiko), process-wide."""

    def __init__(self):
        import paramiko

        self.count = 0
        self._orig = paramiko.Transport.open_channel
        counter = self

        def open_channel(transport, *a, **kw):
            counter.count += 1
            return counter._orig(transport, *a, **kw)

        paramiko.Transport.open_channel = open_channel


class Recorder:
    """Wraps a box's effects: each run/upload/http timed, with its channels and the line that made it."""

    FILES = ("appdeploy.py", "boxlock.py", "deploy.py", "history.py", "healthgate.py", "rollout.py")

    def __init__(self, inner, channels):
        self.inner, self.channels, self.events = inner, channels, []

    def _where(self):
        for f in inspect.stack()[3:]:
            if os.path.basename(f.filename) in self.FILES and "tiramisu_tasks" in f.filename:
                line = (f.code_context or [""])[0].strip()
                return f"{os.path.basename(f.filename)}:{f.lineno} {f.function}: {line[:90]}"
        return "?"

    def _call(self, kind, fn, *a, **kw):
        where = self._where()
        c0, t0 = self.channels.count, time.monotonic()
        try:
            return fn(*a, **kw)
        finally:
            self.events.append((kind, where, time.monotonic() - t0, self.channels.count - c0))

    def run(self, *a, **kw):
        return self._call("run", self.inner.run, *a, **kw)

    def upload(self, *a, **kw):
        return self._call("upload", self.inner.upload, *a, **kw)

    def http(self, *a, **kw):
        return self._call("http", self.inner.http, *a, **kw)


def breakdown(work, rounds):
    """In-process warm deploys (map unchanged, map with one module changed, a changed single module),
    each on a fresh connection as the CLI makes it, effects recorded; plus the bare SSH round trip."""
    from tiramisu_tasks import appdeploy, boxlock
    from tiramisu_tasks import deploy as dp
    from tiramisu_tasks.apps.manifest import read_app

    channels = Channels()
    mapdir = work / APP
    out = {"connect": [], "rtt_s": [], "same": [], "one": [], "single": []}
    for r in range(rounds):
        for kind in ("same", "one", "single"):
            if kind == "one":
                (mapdir / "p5.wat").write_text(page_wat(f"page 5, breakdown {r}"))
            c0, t0 = channels.count, time.monotonic()
            box, conn = open_box_in_process("box")
            out["connect"].append((time.monotonic() - t0, channels.count - c0))
            try:
                for _ in range(3):
                    t0 = time.monotonic()
                    box.run("true")
                    out["rtt_s"].append(time.monotonic() - t0)
                rec = Recorder(box.effects, channels)
                box.effects = rec
                t0 = time.monotonic()
                if kind == "single":
                    built = built_module(work, f"single, breakdown {r}")
                    dp.locked_deploy(box, built, "single", None)
                else:
                    spec = read_app(mapdir)
                    with boxlock.held(box, "deploy", spec.name):
                        appdeploy.deploy_app(box, spec)
                total = time.monotonic() - t0
                out[kind].append({"total_s": total, "events": rec.events, "sent_bytes": box.sent_bytes})
            finally:
                conn.close()
    return out


def summarize_events(runs):
    """[(kind, where, calls per deploy, median seconds per deploy, channels per deploy)] (pure)."""
    per = collections.defaultdict(lambda: collections.defaultdict(list))
    for i, run in enumerate(runs):
        for kind, where, secs, chans in run["events"]:
            per[(kind, where)][i].append((secs, chans))
    rows = []
    for (kind, where), by_run in per.items():
        calls = statistics.median([len(by_run.get(i, [])) for i in range(len(runs))])
        secs = statistics.median([sum(s for s, _ in by_run.get(i, [])) for i in range(len(runs))])
        chans = statistics.median([sum(c for _, c in by_run.get(i, [])) for i in range(len(runs))])
        rows.append((kind, where, calls, secs, chans))
    return sorted(rows, key=lambda r: -r[3])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds of the CLI deploys")
    ap.add_argument("--profile-rounds", type=int, default=3, help="in-process deploys for the breakdown")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-appmap-"))
    os.environ.update(TIRAMISU_HOME=str(work / "home"), TIRAMISU_INVENTORY=str(work / "tiramisu.yaml"))
    env = dict(os.environ)
    make_map(work / APP)
    load_start = os.getloadavg()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": "bench/appmap_deploy_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    host = testhosts.start_host("x86_64", name="appmap")
    try:
        host.register(work / "tiramisu.yaml", "box", settings=SETTINGS)
        bk.note("setup of the box")
        must(cli(env, "setup", "--host", "box")[0], "setup")
        must(cli(env, "deploy", work / APP, "--host", "box")[0], "first map deploy")
        bk.note(f"{args.rounds} alternating rounds of CLI deploys")
        times = timed_rounds(env, work, args.rounds)
        bk.note(f"breakdown: {args.profile_rounds} in-process warm deploys of each kind")
        prof = breakdown(work, args.profile_rounds)
    finally:
        host.stop()
    load_end = os.getloadavg()
    result["machine"] = (
        f"{os.uname().machine}, {os.cpu_count()} cores, load average {load_start[0]:.1f} at the start, "
        f"{load_end[0]:.1f} at the end"
    )

    labels = {
        "map_cold": "10-route map, cold (after remove --purge-data)",
        "map_warm_same": "10-route map, warm, unchanged",
        "map_warm_one": "10-route map, warm, one module changed",
        "single_changed": "plain single module, changed",
        "single_same": "plain single module, unchanged",
        "version": "`tiramisu --version` (interpreter + imports)",
    }
    rows = []
    base = times["single_changed"]
    for key, label in labels.items():
        v = times[key]
        walls, cpus = [w for w, _ in v], [c for _, c in v]
        ratio = statistics.median([a[0] / b[0] for a, b in zip(v, base)])
        rows.append(
            [
                label,
                f"{statistics.median(walls):.2f}",
                f"{min(walls):.2f}–{max(walls):.2f}",
                f"{statistics.median(cpus):.2f}",
                f"{ratio:.2f}",
                len(v),
            ]
        )
        result[key] = {"wall_s": walls, "cli_cpu_s": cpus, "per_round_ratio_to_single_changed": ratio}
    print(result["machine"])
    print(
        bk.table(["CLI (command start to exit)", "median s", "range s", "CLI CPU s", "÷ single changed", "runs"], rows)
    )
    for key in ("map_warm_same", "map_warm_one"):
        m = statistics.median(w for w, _ in times[key])
        print(f"{labels[key]}: {m:.2f} s wall on this machine, goal <= {GOAL_S} s: {bk.verdict(m <= GOAL_S)}")

    conn_s = statistics.median([s for s, _ in prof["connect"]])
    conn_ch = statistics.median([c for _, c in prof["connect"]])
    rtt = statistics.median(prof["rtt_s"])
    result["breakdown"] = {"connect_probe_s": conn_s, "connect_channels": conn_ch, "ssh_round_trip_s": rtt}
    print(f"\nconnect + probe {conn_s:.2f} s ({conn_ch:g} channel); one bare SSH command (`true`) {rtt * 1000:.0f} ms")
    titles = (("same", "map, warm, unchanged"), ("one", "map, warm, one module changed"), ("single", "single module"))
    for kind, title in titles:
        runs = prof[kind]
        ev = summarize_events(runs)
        total = statistics.median([r["total_s"] for r in runs])
        effects = sum(r[3] for r in ev)
        chans = sum(r[4] for r in ev)
        sent = statistics.median([r["sent_bytes"] for r in runs])
        print(
            f"\nIn-process deploy, {title}: {total:.2f} s under the lock; SSH effects {effects:.2f} s over "
            f"{chans:g} channels (x bare round trip = {chans * rtt:.2f} s); {sent:.0f} bytes uploaded"
        )
        print(
            bk.table(
                ["effect", "made by", "calls", "s (median)", "channels"],
                [[k, w, f"{c:g}", f"{s:.3f}", f"{ch:g}"] for k, w, c, s, ch in ev],
            )
        )
        result["breakdown"][kind] = {
            "total_s": total,
            "effects_s": effects,
            "channels": chans,
            "sent_bytes": sent,
            "rows": [dict(kind=k, where=w, calls=c, seconds=s, channels=ch) for k, w, c, s, ch in ev],
        }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
