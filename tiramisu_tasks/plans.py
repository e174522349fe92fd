"""Plans as values: what a procedure will do to a box, computed purely from observed state.

Each procedure (:mod:`lifecycle`, :mod:`deploy`) observes the box, calls one
``plan_*`` function here (pure: no I/O, same inputs give the same plan), then
applies the plan in a separate step. A plan is a small frozen dataclass with
``text()`` (the human plan, printed on stderr; ``--dry`` stops after it) and
``as_dict()`` (the same under ``--json``).

Service actions: ``start``, ``restart``, ``reload`` or ``keep`` per service;
files whose change needs a restart or a reload are :data:`RESTART_ON` and
:data:`RELOAD_ON`.
"""

import json
import posixpath
import time
from dataclasses import asdict, dataclass, field
from typing import Optional, Tuple

from .errors import UsageError
from .services import SERVICES
from .transfer import human_bytes, plan_uploads

# Files whose change needs a process restart (a new config for nginx is a reload).
RESTART_ON = {"server": {"bin/custom_server", "lib/libwasmtime.so", "conf/server.conf"}, "nginx": {"bin/nginx"}}
RELOAD_ON = {"nginx": {"conf/nginx.conf"}}
PAST = {"start": "started", "restart": "restarted", "reload": "reloaded"}


def _plain(value):
    """as_dict() of a plan: its fields as JSON values (tuples become lists)."""
    return json.loads(json.dumps(asdict(value)))


# ----------------------------------------------------------- services ---


def service_actions(changed, states):
    """{service: action} after an install (see RESTART_ON/RELOAD_ON).

    ``changed``: env-relative paths uploaded; ``states``: {service: (pid, state)}.
    """
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
    """Ports the box has taken by something that is not our running service."""
    listening = set(report.get("listening_ports", []) or [])
    problems = []
    for svc, port in (("nginx", int(http_port)), ("server", int(server_port))):
        ours = states.get(svc, (None, "stopped"))[1] == "running" and installed_ports.get(svc) == port
        if port in listening and not ours:
            problems.append(port)
    return problems


@dataclass(frozen=True)
class ServicePlan:
    """What to do with the running services of one box.

    In order: ``stop`` (service names, graceful then forced after
    ``stop_timeout``), stop the orphans in ``reap`` ((service, pid to spare)),
    carry out ``actions`` ((service, action), server first), SIGHUP
    ``hup_server_pid``, then the health check through nginx when ``check_health``.
    """

    host: str
    stop: Tuple[str, ...] = ()
    stop_timeout: int = 10
    reap: Tuple[Tuple[str, Optional[int]], ...] = ()
    actions: Tuple[Tuple[str, str], ...] = ()
    hup_server_pid: Optional[int] = None
    check_health: bool = False

    def text(self):
        lines = [f"plan for {self.host}:"]
        lines += [f"  stop    {name}" for name in self.stop]
        lines += [f"  reap    {name} orphans" for name, _ in self.reap]
        lines += [f"  {action:7} {name}" for name, action in self.actions if action != "keep"]
        if self.hup_server_pid:
            lines.append(f"  rescan  server (SIGHUP {self.hup_server_pid})")
        if self.check_health:
            lines.append("  check   health through nginx")
        return "\n".join(lines)

    def as_dict(self):
        return {
            "host": self.host,
            "stop": list(self.stop),
            "reap": [n for n, _ in self.reap],
            "actions": dict(self.actions),
            "hup_server": bool(self.hup_server_pid),
            "check_health": self.check_health,
        }


def reap_beside_running(views):
    """(service, pid) for each running service with orphans beside it (nginx workers of a -9'd master)."""
    return tuple((name, view["pid"]) for name, view in views.items() if view["orphans"] and view["state"] == "running")


def plan_start(host, views):
    """webserv.start: stop orphans beside running services, start the others, check health."""
    actions = tuple((n, "keep" if views[n]["state"] == "running" else "start") for n in SERVICES)
    return ServicePlan(host, reap=reap_beside_running(views), actions=actions, check_health=True)


def plan_stop(host, timeout=10):
    """webserv.stop: nginx, then the server (in-flight requests drain), orphans included."""
    return ServicePlan(host, stop=tuple(reversed(SERVICES)), stop_timeout=int(timeout))


def plan_restart(host):
    return ServicePlan(
        host, stop=tuple(reversed(SERVICES)), actions=tuple((n, "start") for n in SERVICES), check_health=True
    )


def plan_reload(host, states):
    """webserv.reload: nginx -t + reload, SIGHUP the server when it runs; nginx must run."""
    if states.get("nginx", (None, ""))[1] != "running":
        raise UsageError(f"nginx is not running on {host}: use webserv.start")
    server = states.get("server", (None, ""))
    return ServicePlan(
        host, actions=(("nginx", "reload"),), hup_server_pid=int(server[0]) if server[1] == "running" else None
    )


# -------------------------------------------------------------- setup ---


@dataclass(frozen=True)
class SetupPlan:
    """setup / webserv.install for one box.

    ``uploads``: the :class:`transfer.Upload` whose remote copy is missing or
    differs (one batch); ``keep``: env-relative files already right;
    ``actions``: (service, action); ``version``: the VERSION file's lines,
    written last; ``nginx_test``: ``nginx -t`` runs on the staged config.
    """

    host: str
    target: str
    env_dir: str
    url: str
    http_port: int
    creates_layout: bool
    uploads: Tuple[object, ...]
    keep: Tuple[str, ...]
    actions: Tuple[Tuple[str, str], ...]
    start: bool
    version: Tuple[Tuple[str, str], ...] = ()
    total_bytes: int = 0

    def rel(self, upload):
        return posixpath.relpath(upload.remote, self.env_dir)

    @property
    def uploaded(self):
        return [self.rel(u) for u in self.uploads]

    @property
    def upload_bytes(self):
        return sum(u.size for u in self.uploads)

    @property
    def nginx_test(self):
        return "conf/nginx.conf" in self.uploaded

    def text(self):
        lines = [f"plan for {self.host} ({self.target}, {self.env_dir}):"]
        if self.creates_layout:
            lines.append(f"  create  {self.env_dir} and its folders (mode 0700)")
        lines += [f"  upload  {self.rel(u)} ({human_bytes(u.size)})" for u in self.uploads]
        lines += [f"  keep    {rel} (unchanged)" for rel in self.keep]
        if self.nginx_test:
            lines.append("  test    nginx -t on the new config before it goes live")
        lines += [f"  {action:7} {name}" for name, action in self.actions if action != "keep"]
        lines.append(f"  check   health through nginx on port {self.http_port}")
        return "\n".join(lines)

    def as_dict(self):
        return {
            "host": self.host,
            "target": self.target,
            "env_dir": self.env_dir,
            "creates_layout": self.creates_layout,
            "upload": self.uploaded,
            "upload_bytes": self.upload_bytes,
            "keep": list(self.keep),
            "nginx_test": self.nginx_test,
            "actions": dict(self.actions),
            "check_health": self.start,
        }


def version_entries(tiramisu_version, describe, settings, hashes):
    """The VERSION file's (key, value) lines: versions, ports, then each file's sha256."""
    entries = {
        "tiramisu": tiramisu_version,
        **describe,
        "http_port": settings["http_port"],
        "server_port": settings["server_port"],
    }
    entries.update(sorted(hashes.items()))
    return tuple((k, str(v)) for k, v in entries.items())


def version_text(entries):
    return "".join(f"{k}={v}\n" for k, v in entries)


def plan_setup(
    host, target, env_dir, url, settings, env_exists, files, remote_hashes, states, start, tiramisu_version, describe
):
    """The setup plan from what is on the box and what would be shipped.

    ``files``: {env-relative path: Upload}; ``remote_hashes``: {remote path:
    sha256} of what the box has; ``states``: {service: (pid, state)};
    ``describe``: the shipment's VERSION facts.
    """
    everything = [files[rel] for rel in sorted(files)]
    uploads = tuple(plan_uploads(everything, {} if not env_exists else remote_hashes))
    changed = {posixpath.relpath(u.remote, env_dir) for u in uploads}
    actions = service_actions(changed, states) if start else {n: "keep" for n in SERVICES}
    version = version_entries(tiramisu_version, describe, settings, {rel: files[rel].sha256 for rel in sorted(files)})
    return SetupPlan(
        host,
        target,
        env_dir,
        url,
        int(settings["http_port"]),
        not env_exists,
        uploads,
        tuple(sorted(set(files) - changed)),
        tuple(actions.items()),
        start,
        version,
        sum(u.size for u in everything),
    )


# ------------------------------------------------------------- deploy ---


@dataclass(frozen=True)
class DeployPlan:
    """deploy of one built module to one box.

    ``changed`` False: the same bytes are live and active and no route
    changes (nothing to do). ``routes`` is the new routes file text when the
    route changes, else None.
    """

    host: str
    app: str
    sha256: str
    size: int
    release: Optional[str]
    previous: Optional[str]
    live_sha256: Optional[str]
    route: Optional[str]
    routes: Optional[str]
    path: str
    keep: int
    changed: bool

    def text(self):
        if not self.changed:
            return f"{self.host}: {self.app} {self.sha256[:12]} is already live; nothing to do"
        return (
            f"plan for {self.host}: upload release {self.app}/{self.release}.wasm ({self.size} bytes), "
            f"switch it live"
            + (f", route {self.route} -> {self.app}" if self.routes is not None else "")
            + f", keep {self.keep} releases"
        )

    def as_dict(self):
        return _plain(self)


def release_id(sha256, now=None):
    """Sortable, unique enough: UTC time to the second + content prefix."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{sha256[:10]}"


def plan_deploy(host, app, sha256, size, live, previous, routes_text, route, keep, now=None):
    """The deploy plan from the server's record of the app (``live``, or None) and the box's files."""
    from .routes import routes_for, routes_update

    route_change = route is not None and route not in routes_for(routes_text, app)
    path = "/" if route == "/" else (route or f"/{app}/")
    live_sha = live.get("sha256") if live else None
    if live_sha == sha256 and live.get("state") == "active" and not route_change:
        return DeployPlan(host, app, sha256, size, None, previous, live_sha, route, None, path, keep, False)
    return DeployPlan(
        host,
        app,
        sha256,
        size,
        release_id(sha256, now),
        previous,
        live_sha,
        route,
        routes_update(routes_text, app, route) if route_change else None,
        path,
        keep,
        True,
    )


# ----------------------------------------------------- rollback/remove ---


@dataclass(frozen=True)
class RollbackPlan:
    host: str
    app: str
    current: Optional[str]
    target: str

    def text(self):
        return f"plan for {self.host}: switch {self.app} {self.current} -> {self.target}"

    def as_dict(self):
        return _plain(self)


def plan_rollback(host, app, releases, current, to=None, failed=()):
    """Which release to go back to: ``to``, or the newest older than ``current``
    that is not marked failed (``failed``: ids); UsageError if none."""
    if not releases:
        raise UsageError(f"no releases of {app!r} on {host}")
    if to:
        if to not in releases:
            raise UsageError(f"release {to!r} of {app} not found on {host} (have: {', '.join(releases)})")
        return RollbackPlan(host, app, current, to)
    older = [r for r in releases if (current is None or r < current) and r not in failed]
    if not older:
        why = " that is not marked failed" if any(r in failed for r in releases) else ""
        raise UsageError(f"{app} on {host} has no release older than {current}{why}")
    return RollbackPlan(host, app, current, older[0])


@dataclass(frozen=True)
class RemovePlan:
    host: str
    app: str
    routes: Optional[str]  # the new routes file text when the app had routes
    releases_dir: str
    purge: Tuple[str, ...] = ()  # --purge-data: the data folder and secrets file deleted too

    def text(self):
        return (
            f"plan for {self.host}: stop serving {self.app}"
            + (", drop its routes" if self.routes is not None else "")
            + f", delete {self.releases_dir}"
            + "".join(f", delete {p}" for p in self.purge)
        )

    def as_dict(self):
        return _plain(self)


def plan_remove(host, app, routes_text, releases_dir, purge=()):
    """What ``remove`` does (pure); ``purge``: the paths ``--purge-data`` deletes."""
    from .routes import routes_for, routes_without_app

    routes = routes_without_app(routes_text, app) if routes_for(routes_text, app) else None
    return RemovePlan(host, app, routes, releases_dir, tuple(purge))


# ----------------------------------------------------------- teardown ---


@dataclass(frozen=True)
class TeardownPlan:
    host: str
    env_dir: str
    exists: bool
    stop: Tuple[str, ...] = field(default=())
    remove_boot_line: bool = False

    def text(self):
        if not self.exists:
            return f"plan for {self.host}: nothing to remove ({self.env_dir} does not exist)"
        return (
            f"plan for {self.host}: stop {', '.join(self.stop)}"
            + (", remove the @reboot line" if self.remove_boot_line else "")
            + f", delete {self.env_dir}"
        )

    def as_dict(self):
        return _plain(self)


def plan_teardown(host, report, env_dir):
    """Stop both services, drop the @reboot line, delete the env dir; refuses / and $HOME."""
    if not report["env_exists"]:
        return TeardownPlan(host, env_dir, False)
    if env_dir in ("/", report.get("home")) or posixpath.dirname(env_dir) == env_dir:
        raise UsageError(f"refusing to delete {env_dir}")
    return TeardownPlan(host, env_dir, True, tuple(reversed(SERVICES)), bool(report.get("crontab")))


# ------------------------------------------------------------ pruning ---


@dataclass(frozen=True)
class PrunePlan:
    """Which releases of one app to delete after a successful deploy (``keep N``).

    ``protected``: never deleted whatever ``keep`` says — the live release,
    the previous good one, and pinned ones. ``delete``: in deletion order,
    failed releases first, then the oldest good ones.
    """

    app: str
    keep: int
    live: Optional[str]
    previous_good: Optional[str]
    protected: Tuple[str, ...]
    delete: Tuple[str, ...]

    def text(self):
        if not self.delete:
            return f"prune {self.app}: nothing to delete (keep {self.keep})"
        kept = ", ".join(self.protected)
        return f"prune {self.app}: delete {', '.join(self.delete)} (keep {self.keep}; protected {kept})"

    def as_dict(self):
        return _plain(self)


def previous_good_release(releases, live, previous=None, failed=()):
    """The release to fall back to: ``previous`` (what was live before) when it
    is kept and not failed, else the newest non-failed release older than ``live``."""
    if previous and previous in releases and previous != live and previous not in failed:
        return previous
    older = sorted((r for r in releases if r != live and r not in failed and (live is None or r < live)), reverse=True)
    return older[0] if older else None


def plan_prune(app, releases, live, keep, previous=None, pinned=(), failed=()):
    """The :class:`PrunePlan` for ``releases`` (ids; sortable by time) so that at
    most ``keep`` remain, counting protected ones; it may keep more when more
    are protected. Failed ones go first, then the oldest good ones (pure).
    """
    keep = max(1, int(keep))
    releases = sorted(set(releases))
    good = previous_good_release(releases, live, previous, failed)
    protected = tuple(sorted({r for r in (live, good, *pinned) if r and r in releases}))
    candidates = [r for r in releases if r not in protected]
    order = [r for r in candidates if r in failed] + [r for r in candidates if r not in failed]
    excess = max(0, len(releases) - keep)
    return PrunePlan(app, keep, live, good, protected, tuple(order[:excess]))
