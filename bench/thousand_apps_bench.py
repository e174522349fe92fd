#!/usr/bin/env python3
"""A thousand apps on one box (issue 16, part 3).

    sudo .venv/bin/python bench/thousand_apps_bench.py [--apps 1000] [--few 10] [--deploys 5] [--json FILE]

Needs root: it makes a real SSH test host (testhosts, x86_64: sshd in a network
namespace, a fresh user) and runs the real `tiramisu` CLI against it. The many
small apps (a C hello built with WASI libc by `zig cc`, one distinct module per
app: the same code with a custom section naming the app) are put in place in
bulk by the layout `deploy` leaves on the box (releases/<app>/<id>.wasm, its
CURRENT file, a hard link as wasm_modules/<app>.wasm renamed into place), not by
1,000 CLI runs. At `--few` apps and again at `--apps` apps it measures:

- the server's memory: VmRSS, RssAnon, RssFile (/proc/PID/status) and Pss
  (/proc/PID/smaps_rollup), once all apps are active and again after every app
  answered one request through nginx;
- restart → all apps active, warm compiled cache: the server is stopped and
  started by the same shell commands `webserv.restart` sends; a probe inside
  the host's namespace polls /_tiramisu/metrics until `tiramisu_apps_loaded`
  counts every app. Reported from the new process's start (its start time in
  /proc) and from the moment the restart command was sent;
- a real `tiramisu deploy` of one more app (a WAT module whose body names its
  version): CLI wall time and its `swap_ms`, median of --deploys runs;
- the hot swap alone: a new version of one app renamed into wasm_modules/ here,
  until nginx serves the new body (median of --deploys runs);
- `tiramisu apps --host` and `apps --json`: wall time (median of 3 each).

Also reported: how long the bulk install of the many apps took to be active
with a cold compiled cache (every module compiled once), and the CPU time the
server used (utime+stime from /proc/PID/stat) for each phase, which stays
meaningful on a loaded machine where wall times do not.
"""

import argparse
import http.client
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # testhosts/ (a package of the checkout)
import benchkit as bk  # noqa: E402

BIN = Path(sys.executable).parent
HTTP_PORT, SERVER_PORT = 8080, 9000
GOALS = {"rss_mb": 150.0, "restart_s": 3.0, "apps_s": 1.0}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------- the probe ---
# Runs inside the host's network namespace (python3 this_file _probe ...):
# the server's admin port listens on the namespace's loopback only.


def _get(port, path, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def probe_main(argv):
    """_probe PORT COUNT TIMEOUT: poll /_tiramisu/metrics until COUNT apps are loaded; print JSON."""
    port, count, timeout = int(argv[0]), int(argv[1]), float(argv[2])
    want = f"tiramisu_apps_loaded {count}\n".encode()
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        polls += 1
        try:
            status, body = _get(port, "/_tiramisu/metrics")
            if status == 200 and want in body:
                print(json.dumps({"ok": True, "boottime": time.clock_gettime(time.CLOCK_BOOTTIME), "polls": polls}))
                return 0
        except OSError:
            pass
        time.sleep(0.01)
    print(json.dumps({"ok": False, "polls": polls}))
    return 1


# ------------------------------------------------------------ the guests ---


def _leb(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tagged(module, tag):
    """The module with one more custom section (named tiramisu-bench, payload tag): new bytes, same code."""
    name = b"tiramisu-bench"
    payload = _leb(len(name)) + name + tag.encode()
    return module + b"\x00" + _leb(len(payload)) + payload


def build_small_app(out):
    """The C hello with WASI libc (bench/guests/hello_libc.c), built by zig cc as the other benches do."""
    import server_bench

    wasm = out / "hello_libc.wasm"
    bk.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-wasi", "-Os", "-s"]
        + [str(server_bench.GUESTS / "hello_libc.c"), "-o", str(wasm)],
        capture_output=True,
    )
    return wasm.read_bytes()


def text_module(text):
    import server_bench

    return server_bench.text_module(text)


# -------------------------------------------------------------- the box ---


class Box:
    """The test host, its env dir as seen from here, and the CLI against it."""

    def __init__(self, host, env, work):
        self.host, self.env, self.work = host, env, work
        self.root = Path(host.home) / "tiramisu-env"
        pw = pwd.getpwnam(host.user)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def cli(self, *args, check=True):
        """(CompletedProcess, wall s); self.last_cpu_s: the CLI process's own CPU (user+sys)."""
        import resource

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(BIN / "tiramisu"), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            stdin=subprocess.DEVNULL,
            cwd=str(bk.REPO),
        )
        took = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.last_cpu_s = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        if check and proc.returncode != 0:
            raise SystemExit(
                f"bench: tiramisu {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
            )
        return proc, took

    def pid(self):
        return int((self.root / "run" / "server.pid").read_text().split()[0])

    def mem(self):
        pid = self.pid()
        out = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmSize"):
                out[key + "_kib"] = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss_kib"] = int(line.split()[1])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        out["maps"] = len(Path(f"/proc/{pid}/maps").read_text().splitlines())
        return out

    def cpu_s(self):
        """utime+stime of the server (all its threads), seconds."""
        fields = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def start_boottime(self):
        fields = Path(f"/proc/{self.pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19]) / CLK_TCK

    def probe(self, count, timeout=120):
        argv = self.host.netns_exec_argv([sys.executable, str(Path(__file__).resolve()), "_probe"])
        argv += [str(SERVER_PORT), str(count), str(timeout)]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)

    def wait_loaded(self, count, timeout=300):
        p = self.probe(count, timeout)
        out, _ = p.communicate(timeout=timeout + 30)
        doc = json.loads(out)
        if not doc["ok"]:
            raise SystemExit(f"bench: {count} apps not all active after {timeout} s")
        return doc["boottime"]

    def _own(self, path):
        os.chown(path, self.uid, self.gid)

    def install(self, apps):
        """{name: bytes}: each as a release + CURRENT + live hard link, the layout deploy leaves."""
        import hashlib

        from tiramisu_tasks.plans import release_id

        modules = self.root / "wasm_modules"
        releases = self.root / "releases"
        for name, data in apps.items():
            rid = release_id(hashlib.sha256(data).hexdigest())
            d = releases / name
            d.mkdir(mode=0o700, exist_ok=True)
            self._own(d)
            rel = d / f"{rid}.wasm"
            rel.write_bytes(data)
            rel.chmod(0o600)
            self._own(rel)
            cur = d / "CURRENT.new"
            cur.write_text(rid + "\n")
            self._own(cur)
            os.replace(cur, d / "CURRENT")
            tmp = modules / f".{name}.wasm.tiramisu-new"
            if tmp.exists():
                tmp.unlink()
            os.link(rel, tmp)
            os.replace(tmp, modules / f"{name}.wasm")

    def restart(self, count):
        """Stop + start as webserv.restart does; (s from the new process's start, s from the command) to all active."""
        from tiramisu_tasks import services
        from tiramisu_tasks.layout import RemoteLayout

        layout = RemoteLayout(str(self.root))
        old = self.pid()
        self.host.ssh(services.stop_command(layout, "server"), check=True)
        t_cmd = time.clock_gettime(time.CLOCK_BOOTTIME)
        probe = self.probe(count, 120)
        self.host.ssh(services.start_command(layout, "server"), check=True)
        out, _ = probe.communicate(timeout=150)
        doc = json.loads(out)
        if not doc["ok"]:
            raise SystemExit(f"bench: restart: {count} apps not all active")
        new = self.pid()
        assert new != old, "the server did not restart"
        return doc["boottime"] - self.start_boottime(), doc["boottime"] - t_cmd

    def swap(self, name, version):
        """Rename a new version of one app into wasm_modules/ here; s until nginx serves its body."""
        body = f"{name} v{version}"
        data = text_module(body)
        t0 = time.monotonic()
        self.install({name: data})
        return wait_body(self.host.hostname, f"/{name}", (body + "\n").encode()) - t0

    def hit_all(self, names):
        """One GET of each app through nginx (keep-alive); the number of 200s."""
        ok = 0
        conn = http.client.HTTPConnection(self.host.hostname, HTTP_PORT, timeout=30)
        for name in names:
            conn.request("GET", f"/{name}")
            resp = conn.getresponse()
            resp.read()
            ok += resp.status == 200
        conn.close()
        return ok


def wait_body(hostname, path, want, timeout=30):
    """monotonic time when GET path through nginx first answers `want`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection(hostname, HTTP_PORT, timeout=5)
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if body == want:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"bench: {path} never answered {want!r}")


# ------------------------------------------------------------ the phases ---


def measure(box, count, names, args, deploy_wasm, version):
    """Everything at one app count; the probe app for deploys is counted in."""
    r = {"apps": count}
    box.wait_loaded(count)
    time.sleep(0.5)
    r["mem_loaded"] = box.mem()
    t0 = time.monotonic()
    r["hit_200"] = box.hit_all(names)
    r["hit_s"] = time.monotonic() - t0
    time.sleep(0.3)
    r["mem_after_requests"] = box.mem()

    restarts = []
    for _ in range(args.restarts):
        from_start, from_cmd = box.restart(count)
        cpu_note = box.cpu_s()
        restarts.append({"from_start_s": round(from_start, 3), "from_command_s": round(from_cmd, 3), "cpu_s": cpu_note})
        bk.note(
            f"{count} apps: restart → all active {from_start:.2f} s from exec, {from_cmd:.2f} s from the start command"
        )
    r["restarts"] = restarts
    r["restart_s"] = statistics.median(x["from_start_s"] for x in restarts)
    r["restart_cmd_s"] = statistics.median(x["from_command_s"] for x in restarts)
    time.sleep(0.5)
    r["mem_restarted"] = box.mem()

    return r


def park(box, names, back=False):
    """Move these apps' modules and releases aside (back=True: into place again): the server
    drops them (or loads them from its warm cache), so 10 and 1,000 apps alternate in one run."""
    side = box.root / "parked-by-bench"
    (side / "releases").mkdir(parents=True, exist_ok=True)
    for name in names:
        pairs = [
            (box.root / "wasm_modules" / f"{name}.wasm", side / f"{name}.wasm"),
            (box.root / "releases" / name, side / "releases" / name),
        ]
        for live, parked in pairs:
            src, dst = (parked, live) if back else (live, parked)
            os.rename(src, dst)


def alternate(box, counts, args, deploy_wasm, version):
    """Deploy, hot swap and `apps` at each count, in alternating rounds: {count: results}."""
    few_count, many_count, extra = counts
    out = {
        c: {"deploys": [], "swaps": [], "apps_runs": [], "apps_json_runs": [], "version_runs": []}
        for c in (few_count, many_count)
    }
    placed = True  # the many apps are in place
    for rnd in range(args.deploys):
        for count in (few_count, many_count) if rnd % 2 == 0 else (many_count, few_count):
            if placed != (count == many_count):
                placed = count == many_count
                park(box, extra, back=placed)
            box.wait_loaded(count)
            time.sleep(0.3)
            r = out[count]
            version[0] += 1
            body = f"probe v{version[0]}"
            deploy_wasm.write_bytes(text_module(body))
            cpu0 = box.cpu_s()
            proc, deploy_s = box.cli("deploy", deploy_wasm, "--host", "box", "--json")
            cli_cpu = box.last_cpu_s
            wait_body(box.host.hostname, "/probe", (body + "\n").encode())
            doc = json.loads(proc.stdout)
            host = doc["hosts"][0] if "hosts" in doc else doc
            r["deploys"].append(
                {
                    "cli_s": round(deploy_s, 3),
                    "cli_cpu_s": round(cli_cpu, 3),
                    "swap_ms": _find(host, "swap_ms"),
                    "server_cpu_s": round(box.cpu_s() - cpu0, 3),
                }
            )
            version[0] += 1
            cpu0 = box.cpu_s()
            s = box.swap("probe", version[0])
            r["swaps"].append({"s": round(s, 4), "server_cpu_s": round(box.cpu_s() - cpu0, 3)})
            for key, argv in (
                ("apps", ("apps", "--host", "box")),
                ("apps_json", ("apps", "--host", "box", "--json")),
                ("version", ("--version",)),
            ):
                proc, took = box.cli(*argv)
                r[key + "_runs"].append((round(took, 3), round(box.last_cpu_s, 3)))
                if key == "apps_json":
                    doc = json.loads(proc.stdout)
                    host = doc["hosts"][0] if "hosts" in doc else doc
                    r["apps_listed"] = len(host["apps"])
            bk.note(f"round {rnd} at {count} apps: deploy {deploy_s:.2f} s, swap {s * 1000:.0f} ms")
    for r in out.values():
        r["deploy_cli_s"] = statistics.median(d["cli_s"] for d in r["deploys"])
        r["deploy_cli_cpu_s"] = statistics.median(d["cli_cpu_s"] for d in r["deploys"])
        r["deploy_swap_ms"] = statistics.median(d["swap_ms"] for d in r["deploys"] if d["swap_ms"] is not None)
        r["deploy_server_cpu_s"] = statistics.median(d["server_cpu_s"] for d in r["deploys"])
        r["swap_s"] = statistics.median(x["s"] for x in r["swaps"])
        for key in ("apps", "apps_json", "version"):
            r[f"{key}_s"] = statistics.median(v[0] for v in r[key + "_runs"])
            r[f"{key}_cpu_s"] = statistics.median(v[1] for v in r[key + "_runs"])
    if not placed:
        park(box, extra, back=True)
    return out


def _find(obj, key):
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = _find(v, key)
            if found is not None:
                return found
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--apps", type=int, default=1000, help="the many apps (default 1000)")
    ap.add_argument("--few", type=int, default=10, help="the few apps to compare with (default 10)")
    ap.add_argument("--deploys", type=int, default=5, help="deploys and hot swaps at each count (medians)")
    ap.add_argument("--restarts", type=int, default=3, help="restarts at each count (median)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    ap.add_argument("--small-app", help="a prebuilt small app (.wasm) instead of building bench/guests/hello_libc.c")
    args = ap.parse_args(argv)

    import testhosts

    why = testhosts.missing_requirements("x86_64")
    if why:
        raise SystemExit(f"bench: {why}")
    work = Path(tempfile.mkdtemp(prefix="tiramisu-bench-thousand-"))
    env = {**os.environ, "TIRAMISU_HOME": str(work / "home"), "TIRAMISU_INVENTORY": str(work / "tiramisu.yaml")}
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{os.uname().machine}, {os.cpu_count()} cores",
        "command": "bench/thousand_apps_bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "load_before": os.getloadavg(),
    }
    host = None
    try:
        small = Path(args.small_app).read_bytes() if args.small_app else build_small_app(work)
        result["small_app_bytes"] = len(small)
        host = testhosts.start_host("x86_64", name="thousand")
        host.register(work / "tiramisu.yaml", "box")
        box = Box(host, env, work)
        bk.note("setup")
        box.cli("setup", "--host", "box", "--json")
        deploy_wasm = work / "probe.wasm"
        version = [0]
        deploy_wasm.write_bytes(text_module("probe v0"))
        box.cli("deploy", deploy_wasm, "--host", "box", "--json")

        names = [f"app{i:04d}" for i in range(args.apps)]
        few = {n: tagged(small, n) for n in names[: args.few - 1]}
        box.install(few)
        bk.note(f"{args.few} apps")
        result["few"] = measure(box, args.few, list(few), args, deploy_wasm, version)

        many = {n: tagged(small, n) for n in names[args.few - 1 : args.apps - 1]}
        cpu0 = box.cpu_s()
        t0 = time.clock_gettime(time.CLOCK_BOOTTIME)
        box.install(many)
        t_installed = time.clock_gettime(time.CLOCK_BOOTTIME)
        t_active = box.wait_loaded(args.apps, timeout=600)
        result["bulk"] = {
            "new_apps": len(many),
            "install_s": round(t_installed - t0, 3),
            "all_active_s": round(t_active - t0, 3),
            "server_cpu_s": round(box.cpu_s() - cpu0, 3),
        }
        bk.note(f"{len(many)} new apps (cold compiled cache) active in {t_active - t0:.1f} s")
        bk.note(f"{args.apps} apps")
        result["many"] = measure(box, args.apps, [*few, *many], args, deploy_wasm, version)
        bk.note(f"deploy, hot swap and apps at {args.few} and {args.apps} apps, alternating rounds")
        alt = alternate(box, (args.few, args.apps, list(many)), args, deploy_wasm, version)
        result["few"].update(alt[args.few])
        result["many"].update(alt[args.apps])
    finally:
        if host is not None:
            try:
                host.stop()
            except Exception as exc:  # noqa: BLE001 - report and go on
                bk.note(f"teardown: {exc}")
    result["load_after"] = os.getloadavg()
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def report(r):
    few, many = r["few"], r["many"]
    mib = lambda kib: f"{kib / 1024:.1f}"  # noqa: E731
    rows = [
        [
            "VmRSS after restart (MiB)",
            mib(few["mem_restarted"]["VmRSS_kib"]),
            mib(many["mem_restarted"]["VmRSS_kib"]),
            "≤ 150 MB",
        ],
        [
            "VmRSS all active (MiB)",
            mib(few["mem_loaded"]["VmRSS_kib"]),
            mib(many["mem_loaded"]["VmRSS_kib"]),
            "≤ 150 MB",
        ],
        [
            "VmRSS after 1 request each (MiB)",
            mib(few["mem_after_requests"]["VmRSS_kib"]),
            mib(many["mem_after_requests"]["VmRSS_kib"]),
            "≤ 150 MB",
        ],
        [
            "Pss after 1 request each (MiB)",
            mib(few["mem_after_requests"]["Pss_kib"]),
            mib(many["mem_after_requests"]["Pss_kib"]),
            "",
        ],
        [
            "RssAnon / RssFile after restart (MiB)",
            f"{mib(few['mem_restarted']['RssAnon_kib'])} / {mib(few['mem_restarted']['RssFile_kib'])}",
            f"{mib(many['mem_restarted']['RssAnon_kib'])} / {mib(many['mem_restarted']['RssFile_kib'])}",
            "",
        ],
        ["restart → all active, from exec (s, median)", f"{few['restart_s']:.2f}", f"{many['restart_s']:.2f}", "≤ 3 s"],
        [
            "restart → all active, from the start command (s)",
            f"{few['restart_cmd_s']:.2f}",
            f"{many['restart_cmd_s']:.2f}",
            "",
        ],
        [
            "tiramisu deploy of one app, CLI (s, median)",
            f"{few['deploy_cli_s']:.2f}",
            f"{many['deploy_cli_s']:.2f}",
            "no slower",
        ],
        [
            "  CLI CPU / server CPU of one deploy (s, median)",
            f"{few['deploy_cli_cpu_s']:.2f} / {few['deploy_server_cpu_s']:.2f}",
            f"{many['deploy_cli_cpu_s']:.2f} / {many['deploy_server_cpu_s']:.2f}",
            "",
        ],
        ["  its swap_ms (median)", f"{few['deploy_swap_ms']:.0f}", f"{many['deploy_swap_ms']:.0f}", "no slower"],
        [
            "hot swap, rename → nginx serves it (ms, median)",
            f"{few['swap_s'] * 1000:.0f}",
            f"{many['swap_s'] * 1000:.0f}",
            "no slower",
        ],
        ["tiramisu apps (s, median)", f"{few['apps_s']:.2f}", f"{many['apps_s']:.2f}", "≤ 1 s"],
        ["tiramisu apps --json (s, median)", f"{few['apps_json_s']:.2f}", f"{many['apps_json_s']:.2f}", "≤ 1 s"],
        [
            "  CLI CPU of apps / --json (s, median)",
            f"{few.get('apps_cpu_s', 0):.2f} / {few.get('apps_json_cpu_s', 0):.2f}",
            f"{many.get('apps_cpu_s', 0):.2f} / {many.get('apps_json_cpu_s', 0):.2f}",
            "",
        ],
        [
            "tiramisu --version, same rounds (s, median)",
            f"{few.get('version_s', 0):.2f}",
            f"{many.get('version_s', 0):.2f}",
            "(CLI start)",
        ],
        ["apps listed", few["apps_listed"], many["apps_listed"], ""],
    ]
    out = [
        f"{r['command']}  ({r['date']}, {r['machine']}, load {r['load_before'][0]:.1f} → {r['load_after'][0]:.1f})",
        f"small app: C hello with WASI libc, {r['small_app_bytes']} bytes + a custom section naming the app",
        bk.table(["", f"{few['apps']} apps", f"{many['apps']} apps", "goal"], rows),
        f"bulk: {r['bulk']['new_apps']} new apps (cold compiled cache) active in {r['bulk']['all_active_s']:.1f} s "
        f"(server CPU {r['bulk']['server_cpu_s']:.1f} s)",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_probe":
        sys.exit(probe_main(sys.argv[2:]))
    sys.exit(main())
