"""Setup and service control for one box: observe, plan, act, check again.

Task modules call these per host (through :func:`hostrun.run_on_hosts`). The
decisions are pure functions (:func:`service_actions`, :func:`plan_text`), so
tests can pin them with tables; everything that talks to the box is here too,
kept short and in the order it happens.
"""

import os
import posixpath
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from . import __version__
from .config import resolve_settings as resolve_host_settings
from .errors import RemoteError, TiramisuError, UnsupportedTarget, UsageError
from .layout import RemoteLayout
from .probe import probe, unsupported_message
from .remote import mkdir_cmd, q, remote_sha256, run
from .render import config_values, render_nginx_conf, render_server_conf
from .services import (SERVICES, nginx_reload_command, nginx_test_command, observe_command, parse_observed,
                       parse_reaped, reap_command, service, start_command, stop_all_command, tail_out_command)
from .sshhttp import request, wait_for
from .targets import get_target
from .transfer import Upload, cleanup_command, human_bytes, plan_uploads, upload_batch

HEALTH_PATH = "/.well-known/tiramisu/health"  # public, through nginx
ADMIN_HEALTH = "/_tiramisu/health"  # server's loopback listener

SETTING_NAMES = ("env_dir", "http_port", "server_port", "toolchain", "nginx_provider", "workers",
                 "request_timeout_ms", "memory_limit_mb", "keep_releases", "max_response_header", "server_name")

# Files whose change needs a process restart (a new config for nginx is a reload).
RESTART_ON = {"server": {"bin/custom_server", "lib/libwasmtime.so", "conf/server.conf"},
              "nginx": {"bin/nginx"}}
RELOAD_ON = {"nginx": {"conf/nginx.conf"}}


@dataclass
class Box:
    """What one task run knows about one box."""

    conn: object
    spec: object
    rep: object
    settings: Dict[str, object]
    report: Dict[str, object]
    layout: RemoteLayout
    target: object = None
    log: List[str] = field(default_factory=list)

    @property
    def name(self):
        return self.spec.name

    @property
    def address(self):
        """How this machine reaches the box (inventory hostname or the --host address)."""
        return self.spec.hostname if self.spec.entry is None else self.spec.entry.hostname

    def url(self, path="/"):
        return f"http://{self.address}:{self.settings['http_port']}{path}"

    def note(self, *parts):
        self.rep.note(*parts)


def resolve_settings(c, spec, flags):
    return resolve_host_settings(c, host=spec.entry, flags=flags)  # all settings, inventory defaults included


def open_box(c, conn, spec, rep, flags=None, need_supported=True, installed_wins=True):
    """Probe the box (one round trip) and resolve settings and layout.

    ``installed_wins``: ports recorded in the box's VERSION file beat config
    (what runs there is the truth for status/deploy); setup passes False so a
    changed setting is applied.
    """
    flags = flags or {}
    settings = resolve_settings(c, spec, flags)
    report = probe(conn, settings["env_dir"], settings["http_port"], settings["server_port"])
    installed = report.get("version") or {}
    if installed_wins:
        for key in ("http_port", "server_port"):
            if flags.get(key) is None and str(installed.get(key, "")).isdigit():
                settings[key] = int(installed[key])
    _check_ports_differ(settings)
    box = Box(conn, spec, rep, settings, report, RemoteLayout(report["env_dir"]))
    if report["supported"]:
        box.target = get_target(report["arch"], report["libc"],
                                report["libc_version"] if report["libc"] == "glibc" else None)
    elif need_supported:
        raise UnsupportedTarget(f"{unsupported_message(report)}; nothing was uploaded")
    return box


def _check_ports_differ(settings):
    for key in ("http_port", "server_port"):
        port = int(settings[key])
        if not 1 <= port <= 65535:
            raise UsageError(f"{key} {port} is not a valid TCP port")
    if int(settings["http_port"]) == int(settings["server_port"]):
        raise UsageError(f"http_port and server_port are both {settings['http_port']}: they must differ")


# ------------------------------------------------------------- states ---

def observe_services(box):
    """{service: {pid, state, orphans}} in one round trip: pid files *and* /proc.

    ``state`` is running, stale, stopped, or ``orphaned`` (the pid file names
    nothing alive but processes of this service run from this env).
    """
    return parse_observed(run(box.conn, observe_command(box.layout)).stdout)


def service_states(box):
    """{service: (pid or None, state)} (see :func:`observe_services`)."""
    return {name: (view["pid"], view["state"]) for name, view in observe_services(box).items()}


def reap_orphans(box, name, keep=None):
    """Stop the service's processes in this env other than ``keep`` and its children; returns their pids."""
    reaped = parse_reaped(run(box.conn, reap_command(box.layout, name, keep), timeout=30).stdout)
    if reaped:
        box.note(f"{name}: stopped orphaned processes {' '.join(map(str, reaped))}")
    return reaped


def reap_beside_running(box, views):
    """Orphans beside a running service (e.g. workers of an nginx killed with -9): stop them."""
    return {name: reap_orphans(box, name, keep=view["pid"]) for name, view in views.items()
            if view["orphans"] and view["state"] == "running"}


def service_actions(changed, states):
    """What to do with each service after an install (pure; see RESTART_ON/RELOAD_ON)."""
    actions = {}
    for name in SERVICES:
        state = states.get(name, (None, "stopped"))[1]
        if state != "running":
            actions[name] = "start"
        elif changed & RESTART_ON.get(name, set()):
            actions[name] = "restart"
        elif changed & RELOAD_ON.get(name, set()):
            actions[name] = "reload"
        else:
            actions[name] = "keep"
    return actions


def port_conflicts(report, states, http_port, server_port, installed_ports):
    """Ports the box has taken by something that is not our running service (pure)."""
    listening = set(report.get("listening_ports", []) or [])
    problems = []
    for svc, port in (("nginx", int(http_port)), ("server", int(server_port))):
        ours = states.get(svc, (None, "stopped"))[1] == "running" and installed_ports.get(svc) == port
        if port in listening and not ours:
            problems.append(port)
    return problems


# ------------------------------------------------------- start / stop ---

def start_service(box, name, timeout=None):
    """Start one service and wait until it answers; raise with its own last words if not."""
    timeout = timeout or (60.0 if box.target and box.report.get("machine") != os.uname().machine else 20.0)
    pid_line = run(box.conn, start_command(box.layout, name)).stdout.strip().splitlines()
    pid = pid_line[-1] if pid_line else "?"
    port = int(box.settings["server_port"] if name == "server" else box.settings["http_port"])
    path = ADMIN_HEALTH if name == "server" else HEALTH_PATH
    deadline = time.monotonic() + timeout
    while True:
        alive = run(box.conn, f"kill -0 {q(pid)} 2>/dev/null && echo yes || echo no", warn=True).stdout.strip()
        if alive != "yes":
            last = run(box.conn, tail_out_command(box.layout, name, 8), warn=True).stdout.strip().splitlines()
            why = pick_failure_line(last)
            raise RemoteError(f"{service(name).comm} exited right after start: {why}")
        try:
            resp = request(box.conn, port, path, timeout=5)
            if resp.status == 200:
                return int(pid) if pid.isdigit() else None
        except TiramisuError:
            pass
        if time.monotonic() > deadline:
            raise RemoteError(f"{service(name).comm} started (pid {pid}) but 127.0.0.1:{port}{path} "
                              f"did not answer within {timeout:.0f}s; see webserv.logs")
        time.sleep(0.1)


def pick_failure_line(lines):
    """The most telling line of a service's last words (pure): a bind error names the port."""
    for line in reversed(lines):
        if "Address already in use" in line or "address in use" in line.lower():
            return line.strip()
    return lines[-1].strip() if lines else "no output"


def stop_service(box, name, timeout=10):
    """Stop the pid-file process and every other process of the service in this env.

    Returns the stop word (stopped, killed, not-running, stale), with the
    orphans stopped too when there were any.
    """
    out = run(box.conn, stop_all_command(box.layout, name, timeout), timeout=timeout + 30).stdout
    word = next((ln.strip() for ln in out.splitlines() if ln.strip() and not ln.startswith("reaped")), "?")
    reaped = parse_reaped(out)
    return f"{word} (+{len(reaped)} orphaned)" if reaped else word


def reload_nginx(box):
    test = run(box.conn, nginx_test_command(box.layout) + " 2>&1", warn=True)
    if not test.ok:
        raise RemoteError(f"nginx -t failed, config not reloaded: {test.stdout.strip().splitlines()[-1:]}")
    run(box.conn, nginx_reload_command(box.layout))


PAST = {"start": "started", "restart": "restarted", "reload": "reloaded"}


def apply_actions(box, actions):
    """Carry out service_actions() in a safe order: server before nginx."""
    done = {}
    for name in SERVICES:
        action = actions[name]
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
        done[name] = action
        box.note(f"{name}: {PAST[action]}")
    return done


def check_health(box, timeout=10):
    """GET the public health path through nginx; returns the response."""
    resp = wait_for(box.conn, box.settings["http_port"], HEALTH_PATH, timeout=timeout)
    return resp


# --------------------------------------------------------------- setup ---

def installed_version(box):
    """The VERSION file as a dict ({} when absent)."""
    return dict(box.report.get("version") or {})


def version_text(entries):
    return "".join(f"{k}={v}\n" for k, v in entries.items())


def plan_text(box, uploads, keep, actions, creates_layout):
    """The human plan for setup (pure given its inputs)."""
    lines = [f"plan for {box.name} ({box.target.name if box.target else '?'}, {box.layout.root}):"]
    if creates_layout:
        lines.append(f"  create  {box.layout.root} and its folders (mode 0700)")
    for u in uploads:
        lines.append(f"  upload  {posixpath.relpath(u.remote, box.layout.root)} ({human_bytes(u.size)})")
    for rel in keep:
        lines.append(f"  keep    {rel} (unchanged)")
    if any(posixpath.relpath(u.remote, box.layout.root) == "conf/nginx.conf" for u in uploads):
        lines.append("  test    nginx -t on the new config before it goes live")
    for name in SERVICES:
        if actions.get(name, "keep") != "keep":
            lines.append(f"  {actions[name]:7} {name}")
    lines.append(f"  check   health through nginx on port {box.settings['http_port']}")
    return "\n".join(lines)


def setup_box(c, conn, spec, rep, flags, dry=False, start=True):
    """The whole setup of one box; returns a summary dict."""
    from .shipment import build_shipment

    started = time.monotonic()
    box = open_box(c, conn, spec, rep, flags, installed_wins=False)
    layout = box.layout
    states = {n: (s["pid"], s["state"]) for n, s in box.report["services"].items()}
    previous = installed_version(box)
    installed_ports = {"nginx": _int(previous.get("http_port")), "server": _int(previous.get("server_port"))}
    conflicts = port_conflicts(box.report, states, box.settings["http_port"], box.settings["server_port"],
                               installed_ports)
    if conflicts:
        raise UsageError(
            f"port {conflicts[0]} on {box.name} is already in use by another program; "
            f"pick another with --http-port/--server-port or host.add --set http_port=N"
        )

    from .toolchains import settings_from_config

    shipment = build_shipment(box.target, box.settings["toolchain"], box.settings["nginx_provider"], note=rep.note,
                              toolchain_settings=settings_from_config(c))
    refuse_old_glibc(box, shipment.glibc_needed, shipment.describe["toolchain"])
    staging = Path(tempfile.mkdtemp(prefix="tiramisu-conf-"))
    values = config_values(layout, box.name, box.settings, address=box.address, box_ids=box.report)
    (staging / "nginx.conf").write_text(render_nginx_conf(values))
    (staging / "server.conf").write_text(render_server_conf(values))
    files = dict(shipment.files)
    files["conf/nginx.conf"] = staging / "nginx.conf"
    files["conf/server.conf"] = staging / "server.conf"
    modes = dict(shipment.modes, **{"conf/nginx.conf": "600", "conf/server.conf": "600"})
    uploads_all = [Upload.of(local, posixpath.join(layout.root, rel), modes.get(rel, "600"))
                   for rel, local in sorted(files.items())]
    total = sum(u.size for u in uploads_all)

    creates_layout = not box.report["env_exists"]
    remote_hashes = {} if creates_layout else remote_sha256(conn, [u.remote for u in uploads_all])
    uploads = plan_uploads(uploads_all, remote_hashes)
    changed = {posixpath.relpath(u.remote, layout.root) for u in uploads}
    keep = sorted(set(files) - changed)
    actions = service_actions(changed, states) if start else {n: "keep" for n in SERVICES}

    rep.note(plan_text(box, uploads, keep, actions, creates_layout))
    summary = {"host": box.name, "target": box.target.name, "env_dir": layout.root, "url": box.url("/"),
               "uploaded": [posixpath.relpath(u.remote, layout.root) for u in uploads],
               "uploaded_bytes": sum(u.size for u in uploads), "actions": actions, "dry": dry}
    if dry:
        return summary

    need = sum(u.size for u in uploads) + 16 * 1024 * 1024
    free = box.report.get("disk_free_mb")
    if free is not None and free * 1024 * 1024 < need:
        raise TiramisuError(f"not enough free disk on {box.name} at {box.report['disk_path']}: "
                            f"need {need // (1024 * 1024)} MB, have {free} MB")
    # Layout (0700) and an empty routes file the first time; also sweep any
    # staging dir a killed receiver left behind.
    mk = run(conn, mkdir_cmd(layout.directories()) + f" && chmod 700 {q(layout.root)}"
             f" && {{ [ -f {q(layout.routes_file)} ] || printf '# PREFIX APP (longest prefix wins)\\n' > {q(layout.routes_file)}; }}"
             f" && {cleanup_command(layout.root)}", warn=True)
    if not mk.ok:
        why = (mk.stderr or mk.stdout).strip().splitlines()
        raise RemoteError(f"cannot create {layout.root} on {box.name}: {why[-1] if why else 'mkdir failed'}")

    check = None
    if "conf/nginx.conf" in changed:
        index = [posixpath.relpath(u.remote, layout.root) for u in uploads].index("conf/nginx.conf")
        nginx_bin = f'"$T/{[posixpath.relpath(u.remote, layout.root) for u in uploads].index("bin/nginx")}"' \
            if "bin/nginx" in changed else q(layout.nginx_bin)
        check = (f"{nginx_bin} -t -q -p {q(layout.root)} -c \"$T/{index}\" "
                 f"-e {q(layout.log_file('nginx-error.log'))}")
    upload_batch(conn, layout.root, uploads, note=rep.note, check=check)

    if start:
        # The probe read pid files only: stop orphans beside services setup keeps.
        reap_beside_running(box, observe_services(box))
    done = apply_actions(box, actions) if start else {}
    health = None
    if start:
        resp = check_health(box)
        health = {"status": resp.status, "ms": round(resp.seconds * 1000, 1)}

    hashes = {u.remote: u.sha256 for u in uploads_all}
    entries = {"tiramisu": __version__, **shipment.describe,
               "http_port": box.settings["http_port"], "server_port": box.settings["server_port"]}
    for rel in sorted(files):
        entries[rel] = hashes[posixpath.join(layout.root, rel)]
    vfile = staging / "VERSION"
    vfile.write_text(version_text(entries))
    version_upload = Upload.of(vfile, layout.version_file, "600")
    if plan_uploads([version_upload], remote_sha256(conn, [layout.version_file])):
        upload_batch(conn, layout.root, [version_upload])
    summary.update(done=done, health=health, seconds=round(time.monotonic() - started, 2),
                   total_bytes=total)
    return summary


def refuse_old_glibc(box, needed, toolchain):
    """Stop before uploading when the box's glibc is older than the build needs."""
    from .targets import version_at_least

    have = box.report.get("libc_version")
    if box.target.libc != "glibc" or not needed or not have:
        return
    if not version_at_least(have, needed):
        hint = " (the zig toolchain targets glibc 2.17: try --toolchain zig)" if toolchain != "zig" else ""
        raise UnsupportedTarget(f"{box.name} has glibc {have} but the server built with {toolchain} needs "
                                f"glibc >= {needed}{hint}; nothing was uploaded")


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
