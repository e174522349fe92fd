"""Deploying apps to a set-up box: upload a release, switch it live, verify.

Box layout per app (see layout.py)::

    releases/<app>/<id>.wasm     every deployed version (last N kept)
    releases/<app>/CURRENT       the id that is live
    wasm_modules/<app>.wasm      what the server serves (watched by inotify)
    conf/routes.conf             extra prefixes: "PREFIX APP" lines

Switching is a rename into wasm_modules/ (atomic); the server compiles the new
module off the request path and swaps it in, finishing in-flight requests on
the old one. If the server reports an error for the new sha256, the previous
release is renamed back so the file on disk matches what is serving.
"""

import posixpath
import re
import time

from .errors import RemoteError, TiramisuError, UsageError
from .remote import join, q, run
from .sshhttp import request

APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


def validate_app_name(name):
    if not APP_NAME_RE.match(name or ""):
        raise UsageError(f"invalid app name {name!r}: use a-z, 0-9, '_' or '-' (start with a letter or digit)")
    return name


def validate_route(route):
    if route is None:
        return None
    if not ROUTE_RE.match(route) or "//" in route or "/../" in route + "/" or route.startswith("/_tiramisu"):
        raise UsageError(f"invalid route {route!r}: a path prefix like / or /api (not under /_tiramisu)")
    return route.rstrip("/") or "/"


def release_id(sha256, now=None):
    """Sortable, unique enough: UTC time to the second + content prefix (pure)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{sha256[:10]}"


def prepare_command(layout, app):
    """One round trip before an upload: make the app's folders, print CURRENT and the routes (pure)."""
    current = posixpath.join(layout.app_releases(app), "CURRENT")
    return (f"{join(['mkdir', '-p', '-m', '700', layout.app_releases(app), layout.app_logs])} && "
            f"cat {q(current)} 2>/dev/null; echo {PREP_MARK}; cat {q(layout.routes_file)} 2>/dev/null; true")


PREP_MARK = "---tiramisu-routes---"


def parse_prepare(text):
    """(current release id or None, routes text) from prepare_command's output (pure)."""
    current, _, routes = (text or "").partition(PREP_MARK + "\n")
    return (current.strip() or None), routes


def hup_server_command(layout):
    """SIGHUP the server if its pid file names a live custom_server (pure; never fails)."""
    from .services import is_ours

    pidfile = q(layout.pid_file("server"))
    return (f'p=$(cat {pidfile} 2>/dev/null); if [ -n "$p" ] && {is_ours("$p", "custom_server")}; '
            f'then kill -HUP "$p"; fi; true')


def switch_command(layout, app, rid):
    """Make release rid live: hard link (or copy) beside the target, then rename (pure)."""
    src = layout.release(app, rid)
    tmp = posixpath.join(layout.modules, f".{app}.wasm.tiramisu-new")
    dst = layout.app_module(app)
    current = posixpath.join(layout.app_releases(app), "CURRENT")
    return (f"{{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && "
            f"mv -f {q(tmp)} {q(dst)} && printf '%s\\n' {q(rid)} > {q(current)}.new && mv -f {q(current)}.new {q(current)}")


def prune_command(layout, app, keep, protect):
    """Delete all but the newest ``keep`` releases, never ``protect`` (pure)."""
    d = layout.app_releases(app)
    return (f"cd {q(d)} 2>/dev/null && ls -1 | grep -E '^[0-9TZ]+-[0-9a-f]+\\.wasm$' | sort -r | "
            f"tail -n +{int(keep) + 1} | grep -vxF {q(protect + '.wasm')} | xargs -r rm -f --; true")


def routes_update(text, app, route):
    """New routes file text with ``route`` pointing at ``app`` (pure).

    A prefix maps to exactly one app; any older line for that prefix goes.
    """
    lines = []
    for line in (text or "").splitlines():
        parts = line.split()
        if parts and not line.lstrip().startswith("#") and len(parts) >= 2 and parts[0] == route:
            continue
        lines.append(line)
    lines.append(f"{route} {app}")
    return "\n".join(lines).rstrip("\n") + "\n"


def routes_without_app(text, app):
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if parts and not line.lstrip().startswith("#") and len(parts) >= 2 and parts[1] == app:
            continue
        out.append(line)
    return "\n".join(out).rstrip("\n") + "\n" if out else ""


def routes_for(text, app):
    return [p[0] for p in (l.split() for l in (text or "").splitlines() if not l.lstrip().startswith("#"))
            if len(p) >= 2 and p[1] == app]


# ------------------------------------------------------------- remote ---

def server_apps(box):
    """The server's view: {name: {...}} from /_tiramisu/apps."""
    resp = request(box.conn, box.settings["server_port"], "/_tiramisu/apps", timeout=10)
    if resp.status != 200:
        raise RemoteError(f"server admin API answered HTTP {resp.status}")
    data = resp.json()
    apps = data.get("apps", data) if isinstance(data, dict) else data
    return {a["name"]: a for a in apps}


def wait_for_app(box, app, sha256, timeout):
    """Until the server serves sha256 for app (returns its record) or reports an error for it."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = server_apps(box).get(app)
        except TiramisuError:
            last = None
        if last and last.get("sha256") == sha256:
            if last.get("state") == "active":
                return last
            if last.get("error"):
                raise RemoteError(f"the server rejected the new {app} module: {last['error']}")
        if last and last.get("error") and last.get("failed_sha256") == sha256:
            raise RemoteError(f"the server rejected the new {app} module: {last['error']}")
        if time.monotonic() > deadline:
            state = f"{last.get('state')} {str(last.get('sha256'))[:12]}" if last else "not listed"
            raise RemoteError(f"the server did not activate {app} {sha256[:12]} within {timeout:.0f}s (now: {state})")
        time.sleep(0.05)


def read_text(conn, path):
    res = run(conn, f"cat {q(path)} 2>/dev/null; true")
    return res.stdout


def current_release(conn, layout, app):
    return read_text(conn, posixpath.join(layout.app_releases(app), "CURRENT")).strip() or None


def current_releases(conn, layout):
    """{app: live release id} for every app, in one round trip."""
    out = run(conn, f"cd {q(layout.releases)} 2>/dev/null && for d in */; do "
                    f"[ -f \"$d/CURRENT\" ] && echo \"${{d%/}} $(cat \"$d/CURRENT\")\"; done; true").stdout
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split()) == 2)


def list_releases(conn, layout, app):
    out = run(conn, f"ls -1 {q(layout.app_releases(app))} 2>/dev/null; true").stdout.split()
    return sorted((n[:-5] for n in out if n.endswith(".wasm")), reverse=True)


def write_routes(box, text):
    """Replace routes.conf atomically and ask the server to re-read it (SIGHUP)."""
    from .transfer import Upload, upload_batch
    import tempfile, os

    fd, path = tempfile.mkstemp(prefix="tiramisu-routes-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        upload_batch(box.conn, box.layout.root, [Upload.of(path, box.layout.routes_file, "600")])
    finally:
        os.unlink(path)
    signal_server(box)


def signal_server(box):
    """Ask the server to rescan modules and routes (inotify usually beat us to it)."""
    run(box.conn, hup_server_command(box.layout))
