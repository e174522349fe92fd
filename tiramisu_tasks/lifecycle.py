"""Box lifecycle procedures: setup, webserv.*, teardown, status, logs, boot.

Each procedure takes a :class:`box.Box` (its three effects: run, upload,
http), observes, computes a plan value with a pure function of
:mod:`plans`, prints it, and applies it in a separate step; ``dry`` stops
after the plan. Tasks (``tasks/lifecycle.py``) only parse flags, call one of
these per host and print the result. Commands come from :mod:`commands`.
"""

import os
import tempfile
import time
from pathlib import Path

from . import __version__, tls
from . import commands as cmd
from .errors import RemoteError, TiramisuError, UnsupportedTarget, UsageError
from .plans import (
    PAST,
    ServicePlan,
    plan_reload,
    plan_restart,
    plan_setup,
    plan_start,
    plan_stop,
    plan_teardown,
    port_conflicts,
    reap_beside_running,
    version_text,
)
from .polling import poll_until
from .render import config_values, render_nginx_conf, render_server_conf
from .services import (
    SERVICES,
    nginx_reload_command,
    observe_command,
    parse_observed,
    parse_reaped,
    reap_command,
    service,
    start_command,
    stop_all_command,
    tail_out_command,
)
from .transfer import Upload, plan_uploads

HEALTH_PATH = "/.well-known/tiramisu/health"  # public, through nginx
ADMIN_HEALTH = "/_tiramisu/health"  # server's loopback listener


# ------------------------------------------------------------- states ---


def observe_services(box):
    """{service: {pid, state, orphans}} in one round trip: pid files *and* /proc.

    ``state`` is running, stale, stopped, or ``orphaned`` (the pid file names
    nothing alive but processes of this service run from this env).
    """
    return parse_observed(box.run(observe_command(box.layout)).stdout)


def service_states(box):
    """{service: (pid or None, state)} (see :func:`observe_services`)."""
    return {name: (view["pid"], view["state"]) for name, view in observe_services(box).items()}


def reap_orphans(box, name, keep=None):
    """Stop the service's processes in this env other than ``keep`` and its children; returns their pids."""
    reaped = parse_reaped(box.run(reap_command(box.layout, name, keep), timeout=30).stdout)
    if reaped:
        box.note(f"{name}: stopped orphaned processes {' '.join(map(str, reaped))}")
    return reaped


def require_installed(box):
    if not box.report["installed"]:
        raise UsageError(f"Tiramisu is not installed on {box.name} ({box.layout.root}): run setup first")


# ------------------------------------------------------- start / stop ---


def start_service(box, name, timeout=None):
    """Start one service and wait until it answers; returns its pid.

    Raises RemoteError with the service's own last words when it exits, or
    when it does not answer within ``timeout`` seconds.
    """
    timeout = timeout or (60.0 if box.target and box.report.get("machine") != os.uname().machine else 20.0)
    pid_line = box.run(start_command(box.layout, name)).stdout.strip().splitlines()
    pid = pid_line[-1] if pid_line else "?"
    port = int(box.settings["server_port"] if name == "server" else box.settings["http_port"])
    path = ADMIN_HEALTH if name == "server" else HEALTH_PATH

    def answered():
        if box.run(cmd.process_alive(pid), warn=True).stdout.strip() != "yes":
            last = box.run(tail_out_command(box.layout, name, 8), warn=True).stdout.strip().splitlines()
            raise RemoteError(f"{service(name).comm} exited right after start: {pick_failure_line(last)}")
        try:
            if box.http(port, path, timeout=5).status == 200:
                return True
        except TiramisuError:
            pass
        return None

    poll_until(
        answered,
        timeout,
        on_timeout=lambda: RemoteError(
            f"{service(name).comm} started (pid {pid}) but 127.0.0.1:{port}{path} "
            f"did not answer within {timeout:.0f}s; see webserv.logs"
        ),
    )
    return int(pid) if pid.isdigit() else None


def pick_failure_line(lines):
    """The most telling line of a service's last words: a bind error names the port."""
    for line in reversed(lines):
        if "Address already in use" in line or "address in use" in line.lower():
            return line.strip()
    return lines[-1].strip() if lines else "no output"


def stop_service(box, name, timeout=10):
    """Stop the pid-file process and every other process of the service in this env.

    Returns the stop word (stopped, killed, not-running, stale), with the
    orphans stopped too when there were any.
    """
    out = box.run(stop_all_command(box.layout, name, timeout), timeout=timeout + 30).stdout
    word = next((ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("reaped")), "?")
    reaped = parse_reaped(out)
    return f"{word} (+{len(reaped)} orphaned)" if reaped else word


def reload_nginx(box):
    """``nginx -t``, then ``nginx -s reload``; RemoteError (config not reloaded) if the test fails."""
    test = box.run(cmd.nginx_test(box.layout), warn=True)
    if not test.ok:
        raise RemoteError(f"nginx -t failed, config not reloaded: {test.stdout.strip().splitlines()[-1:]}")
    box.run(nginx_reload_command(box.layout))


def check_health(box, timeout=10):
    """GET the public health path through nginx until it answers 200; returns the response.

    Raises ConnectError when it does not within ``timeout`` seconds.
    """
    from .errors import ConnectError

    port = box.settings["http_port"]
    last = {"error": None}

    def healthy():
        try:
            resp = box.http(port, HEALTH_PATH, timeout=min(5.0, timeout))
        except ConnectError as exc:
            last["error"] = exc.message
            return None
        last["error"] = f"HTTP {resp.status}"
        return resp if resp.status == 200 else None

    return poll_until(
        healthy,
        timeout,
        on_timeout=lambda: ConnectError(
            f"127.0.0.1:{port}{HEALTH_PATH} on the box not ready after {timeout:.0f}s: {last['error']}", code=1
        ),
    )


def apply_service_plan(box, plan: ServicePlan, timings=None):
    """Carry out a :class:`plans.ServicePlan`; returns {stopped, reaped, done, health}.

    Order: stops, orphans beside running services, actions (server before
    nginx), the server's SIGHUP, the health check. ``timings``: a
    :class:`PhaseTimer` that gets one phase per action and the health check.
    """
    timings = timings or PhaseTimer()
    result = {"stopped": {}, "reaped": {}, "done": {}, "health": None}
    for name in plan.stop:
        result["stopped"][name] = stop_service(box, name, plan.stop_timeout)
    for name, keep in plan.reap:
        result["reaped"][name] = reap_orphans(box, name, keep=keep)
    for name, action in plan.actions:
        if action == "keep":
            continue
        if action == "restart":
            stop_service(box, name)
            start_service(box, name)
        elif action == "start":
            # Nothing of this service may serve beside the new one (an orphan
            # nginx worker shares the port through reuseport).
            reap_orphans(box, name)
            start_service(box, name)
        elif action == "reload":
            reload_nginx(box)
        timings.mark(f"{name}_{action}")
        result["done"][name] = action
        box.note(f"{name}: {PAST[action]}")
    if plan.hup_server_pid:
        box.run(cmd.signal_pid("HUP", plan.hup_server_pid))
    if plan.check_health:
        result["health"] = check_health(box)
        timings.mark("health")
    return result


def start(box):
    """webserv.start; returns {reaped, done}."""
    require_installed(box)
    result = apply_service_plan(box, plan_start(box.name, observe_services(box)))
    return {"reaped": {k: v for k, v in result["reaped"].items()}, "done": result["done"]}


def stop(box, timeout=10):
    """webserv.stop; returns {service: stop word}."""
    return apply_service_plan(box, plan_stop(box.name, timeout))["stopped"]


def restart(box):
    require_installed(box)
    return apply_service_plan(box, plan_restart(box.name))


def reload(box):
    """webserv.reload; returns whether the server was asked to rescan."""
    require_installed(box)
    plan = plan_reload(box.name, service_states(box))
    apply_service_plan(box, plan)
    return plan.hup_server_pid is not None


# --------------------------------------------------------------- setup ---


class PhaseTimer:
    """Wall seconds per named phase of one procedure run (setup's ``phases``).

    :meth:`mark` closes the phase that began at the previous mark (or at
    creation) under ``name``; a name marked twice adds up.
    """

    def __init__(self):
        self.last = time.monotonic()
        self.seconds = {}

    def mark(self, name):
        now = time.monotonic()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self.last, 3)
        self.last = now


def connection_facts(box):
    """{connect_s, channels} of a box's SSH connection, or {} (a fake box): the first
    open's seconds (TCP, key exchange, auth: :func:`remote.ensure_open`) and the
    channels opened so far (each remote command, upload and HTTP request is one)."""
    conn = getattr(box.effects, "conn", None)
    transport = getattr(conn, "transport", None) if conn is not None else None
    if transport is None:
        return {}
    facts = {}
    connect_s = getattr(transport, "_tiramisu_connect_s", None)
    if isinstance(connect_s, float):
        facts["connect_s"] = round(connect_s, 3)
    channels = getattr(transport, "_channel_counter", None)
    if isinstance(channels, int):
        facts["channels"] = channels
    return facts


def local_shipment(c):
    """``ship(target, toolchain, nginx_provider, note)`` building the real artifacts here (cached).

    One ``ship`` serves every host of a run: the first host of a target
    builds (or finds in the cache) and inspects the artifacts, the others
    of that target wait for it and reuse the :class:`shipment.Shipment`
    (the same files, the same digests: see :func:`transfer.Upload.of`).
    """
    import threading

    from .shipment import build_shipment
    from .toolchains import settings_from_config

    lock = threading.Lock()
    made = {}  # (target, toolchain, provider) -> [lock, Shipment or None]

    def ship(target, toolchain, nginx_provider, note):
        key = (target.name, toolchain, nginx_provider)
        with lock:
            entry = made.setdefault(key, [threading.Lock(), None])
        with entry[0]:
            if entry[1] is None:
                entry[1] = build_shipment(
                    target, toolchain, nginx_provider, note=note, toolchain_settings=settings_from_config(c)
                )
            return entry[1]

    return ship


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def setup(box, ship, dry=False, start=True):
    """The whole setup of one box (observed by :func:`box.open_box` with installed_wins=False).

    ``ship(target, toolchain, nginx_provider, note)`` returns a
    :class:`shipment.Shipment`. Returns the summary dict (``plan`` in it
    under ``dry``). Raises UsageError for a port in use by someone else,
    UnsupportedTarget for a too old glibc, TiramisuError for too little disk,
    RemoteError when the env dir cannot be made or a service fails.
    """
    started = time.monotonic()
    timer = PhaseTimer()
    layout = box.layout
    states = {n: (s["pid"], s["state"]) for n, s in box.report["services"].items()}
    previous = dict(box.report.get("version") or {})
    installed_ports = {"nginx": _int(previous.get("http_port")), "server": _int(previous.get("server_port"))}
    conflicts = port_conflicts(
        box.report, states, box.settings["http_port"], box.settings["server_port"], installed_ports
    )
    if conflicts:
        raise UsageError(
            f"port {conflicts[0]} on {box.name} is already in use by another program; "
            f"pick another with --http-port/--server-port or host.add --set http_port=N"
        )

    # HTTPS (tls.py): the pair is checked or made here before anything is
    # built or uploaded, and shipped beside the live one before the new config.
    tls_plan = tls.plan(box)
    timer.mark("tls_plan")
    shipment = ship(box.target, box.settings["toolchain"], box.settings["nginx_provider"], box.note)
    timer.mark("shipment")
    refuse_old_glibc(box, shipment.glibc_needed, shipment.describe["toolchain"])
    # The rendered configs (and VERSION) are staged in a directory removed on
    # the way out, dry run or not.
    with tempfile.TemporaryDirectory(prefix="tiramisu-conf-") as tmp:
        staging = Path(tmp)
        values = config_values(
            layout, box.name, box.settings, address=box.address, box_ids=box.report, tls_paths=tls_plan.paths
        )
        (staging / "nginx.conf").write_text(render_nginx_conf(values))
        (staging / "server.conf").write_text(render_server_conf(values))
        local = dict(
            shipment.files, **{"conf/nginx.conf": staging / "nginx.conf", "conf/server.conf": staging / "server.conf"}
        )
        modes = dict(shipment.modes, **{"conf/nginx.conf": "600", "conf/server.conf": "600"})
        files = {rel: Upload.of(path, f"{layout.root}/{rel}", modes.get(rel, "600")) for rel, path in local.items()}
        timer.mark("render_hash")
        env_exists = bool(box.report["env_exists"])
        remote_hashes = box.remote_sha256([u.remote for u in files.values()]) if env_exists else {}
        timer.mark("remote_hashes")
        plan = plan_setup(
            box.name,
            box.target.name,
            layout.root,
            box.url("/"),
            box.settings,
            env_exists,
            files,
            remote_hashes,
            states,
            start,
            __version__,
            shipment.describe,
        )

        box.show_plan(plan.text(), dry)
        for line in tls_plan.notes:
            box.note(f"{box.name}: {line}")
        summary = {
            "host": box.name,
            "target": box.target.name,
            "env_dir": layout.root,
            "url": box.url("/"),
            "uploaded": plan.uploaded,
            "uploaded_bytes": plan.upload_bytes,
            "sent_bytes": 0,  # set after the uploads (a dry run sends nothing)
            "actions": dict(plan.actions),
            "dry": dry,
        }
        if tls_plan.mode != "off":
            summary["tls"] = tls_plan.as_dict()
            summary["https_url"] = tls_url(box)
        if dry:
            summary["plan"] = plan.as_dict()
            return summary
        tls.ship(box, tls_plan)
        # A reload only signals nginx: with HTTPS, wait until the old workers (old certificate) are gone.
        workers = tls.worker_pids(box) if tls_plan.mode != "off" and box.report["env_exists"] else set()
        timer.mark("plan")
        done, health = apply_setup(box, plan, staging, timer)
        if done.get("nginx") == "reload":
            tls.wait_workers_replaced(box, workers)
        # tls=acme: the first certificate (or a due renewal) once nginx serves the challenge folder.
        issued = tls.after_setup(box, tls_plan, started=start)
        if issued:
            summary["tls"]["obtained"] = issued
        timer.mark("tls_after")
        summary.update(
            done=done,
            health=health,
            phases=dict(timer.seconds, probe=box.report.get("probe_seconds")),
            **connection_facts(box),
            seconds=round(time.monotonic() - started, 2),
            total_bytes=plan.total_bytes,
            sent_bytes=box.sent_bytes,  # what went over SSH: compressed, and only what the box lacked
        )
        return summary


def tls_url(box, path="/"):
    """The box's HTTPS address (the first domain, else the address; ``tls_public_port``, else ``https_port``)."""
    from .tlsfiles import parse_domains

    domains = parse_domains(box.settings.get("domains"))
    port = int(box.settings.get("tls_public_port") or box.settings.get("https_port") or 8443)
    host = domains[0] if domains else box.address
    return f"https://{host}{'' if port == 443 else f':{port}'}{path}"


def apply_setup(box, plan, staging, timer=None):
    """Carry out a :class:`plans.SetupPlan`; returns (done actions, health dict or None).

    ``timer``: a :class:`PhaseTimer` marked after each step.
    """
    timer = timer or PhaseTimer()
    layout = box.layout
    need = plan.upload_bytes + 16 * 1024 * 1024
    free = box.report.get("disk_free_mb")
    if free is not None and free * 1024 * 1024 < need:
        raise TiramisuError(
            f"not enough free disk on {box.name} at {box.report['disk_path']}: "
            f"need {need // (1024 * 1024)} MB, have {free} MB"
        )
    made = box.run(cmd.layout_init(layout), warn=True)
    if not made.ok:
        why = (made.stderr or made.stdout).strip().splitlines()
        raise RemoteError(f"cannot create {layout.root} on {box.name}: {why[-1] if why else 'mkdir failed'}")
    timer.mark("layout_init")
    check = cmd.staged_nginx_test(layout, plan.uploaded) if plan.nginx_test else None
    if plan.uploads:
        box.upload(list(plan.uploads), check=check)
    timer.mark("upload")

    done, health = {}, None
    if plan.start:
        # The probe read pid files only: stop orphans beside services setup keeps.
        services = ServicePlan(
            box.name, reap=reap_beside_running(observe_services(box)), actions=plan.actions, check_health=True
        )
        timer.mark("observe_services")
        result = apply_service_plan(box, services, timer)
        done, resp = result["done"], result["health"]
        health = {"status": resp.status, "ms": round(resp.seconds * 1000, 1)}

    vfile = staging / "VERSION"
    vfile.write_text(version_text(plan.version))
    version_upload = Upload.of(vfile, layout.version_file, "600")
    if plan_uploads([version_upload], box.remote_sha256([layout.version_file])):
        box.upload([version_upload])
    timer.mark("version")
    return done, health


def refuse_old_glibc(box, needed, toolchain):
    """Stop before uploading when the box's glibc is older than the build needs (UnsupportedTarget)."""
    from .targets import version_at_least

    have = box.report.get("libc_version")
    if box.target.libc != "glibc" or not needed or not have:
        return
    if not version_at_least(have, needed):
        hint = " (the zig toolchain targets glibc 2.17: try --toolchain zig)" if toolchain != "zig" else ""
        raise UnsupportedTarget(
            f"{box.name} has glibc {have} but the server built with {toolchain} needs "
            f"glibc >= {needed}{hint}; nothing was uploaded"
        )


# ------------------------------------------------------------ teardown ---


def teardown(box, dry=False):
    """Stop both services, remove the @reboot line, delete the env dir.

    Returns {host, removed, env_dir[, stopped][, plan]}; UsageError for an
    env dir that is / or the home dir.
    """
    root = box.layout.root
    plan = plan_teardown(box.name, box.report, root)
    if not plan.exists:
        return {"host": box.name, "removed": False, "env_dir": root}
    if dry:
        box.show_plan(plan.text(), dry)
        return {"host": box.name, "removed": False, "env_dir": root, "dry": True, "plan": plan.as_dict()}
    stopped = {name: stop_service(box, name) for name in plan.stop}
    if plan.remove_boot_line:
        box.run(cmd.crontab_remove(root), warn=True)
    box.run(cmd.remove_tree(root))
    return {"host": box.name, "removed": True, "env_dir": root, "stopped": stopped}


# -------------------------------------------------------------- status ---


def status(box):
    """Processes (pid files and orphans), health and versions: the webserv.status report."""
    report = {
        "host": box.name,
        "env_dir": box.layout.root,
        "installed": box.report["installed"],
        "version": box.report.get("version") or {},
        "services": {},
        "url": box.url("/"),
    }
    views = observe_services(box) if box.report["env_exists"] else {}
    for name in SERVICES:
        view = views.get(name, {"pid": None, "state": "stopped", "orphans": []})
        port = box.settings["server_port"] if name == "server" else box.settings["http_port"]
        path = ADMIN_HEALTH if name == "server" else HEALTH_PATH
        health = None
        if view["state"] in ("running", "orphaned"):
            try:
                resp = box.http(port, path, timeout=5)
                health = "ok" if resp.status == 200 else f"HTTP {resp.status}"
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                health = f"down ({getattr(exc, 'message', exc)})"
        report["services"][name] = {
            "pid": view["pid"],
            "state": view["state"],
            "port": int(port),
            "health": health,
            "orphans": view["orphans"],
        }
    # Orphans make a box unhealthy even when they answer: they are not what
    # the pid files (and stop/restart/reload) control.
    report["healthy"] = all(
        s["state"] == "running" and s["health"] == "ok" and not s["orphans"] for s in report["services"].values()
    )
    return report


# ---------------------------------------------------------------- logs ---

LOG_FILES = {"nginx": ["nginx-error.log", "nginx-access.log"], "server": ["server.log", "access.log", "server.out"]}


def log_paths(layout, which):
    """The log files ``--which`` names (nginx, server, all, app:NAME); UsageError otherwise."""
    if which.startswith("app:"):
        return [layout.app_log(which[4:])]
    if which in LOG_FILES:
        return [layout.log_file(f) for f in LOG_FILES[which]]
    if which == "all":
        return [layout.log_file(f) for group in LOG_FILES.values() for f in group]
    raise UsageError(f"--which takes nginx, server, all or app:NAME, not {which!r}")


def app_log_paths(box, app):
    """The log files of ``app`` on the box: its own, and one per module of a
    manifest or module-map app (``logs/apps/APP.KEY.log``)."""
    return [line for line in box.run(cmd.app_log_files(box.layout, app), warn=True).stdout.splitlines() if line]


def tail_logs(box, paths, lines, follow):
    """Print the tail of the existing ``paths`` to the terminal; returns the ones that exist."""
    existing = [p for p in paths if box.run(cmd.file_exists(p), warn=True).ok]
    if existing:
        box.run(cmd.tail(existing, lines, follow), echo=True)
    return existing


# ---------------------------------------------------------------- boot ---


def enable_boot(box):
    require_installed(box)
    if not box.report.get("crontab"):
        raise UsageError(
            f"{box.name} has no crontab command: start Tiramisu at boot another way "
            f"(e.g. a systemd --user unit running {box.layout.root}/bin/...)"
        )
    box.run(cmd.crontab_add(box.layout))


def disable_boot(box):
    if not box.report.get("crontab"):
        raise UsageError(f"{box.name} has no crontab command")
    box.run(cmd.crontab_remove(box.layout.root))
