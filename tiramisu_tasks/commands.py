"""Every command Tiramisu runs on a box, built as data (pure, no I/O).

In the spirit of Kamal's ``commands/*``: each function returns one ``sh``
command string; values are quoted by :func:`q` / :func:`join` only (argument
lists through ``shlex.join``), never pasted in with ``str.format``. Nothing
here talks to a box: the procedures (:mod:`lifecycle`, :mod:`deploy`) run the
strings through a box context's ``run`` effect, and tests check the strings
by table or by running them under a local ``sh``.

Process control of the two services (start, stop, observe, orphans) is a room
of its own, :mod:`services`; its builders are re-exported here so procedures
import commands from one place.
"""

import posixpath
import shlex


def q(value):
    """One value quoted for ``sh`` (the only quoting helper besides :func:`join`)."""
    return shlex.quote(str(value))


def join(argv):
    """An argument list as one ``sh`` command, every word quoted."""
    return shlex.join([str(a) for a in argv])


# ----------------------------------------------------------- generic ---


def mkdir_cmd(paths, mode="700"):
    return join(["mkdir", "-p", "-m", mode, *paths])


def sha256_cmd(paths):
    """sha256 of each existing path; missing files simply print nothing."""
    inner = "; ".join(f"[ -f {q(p)} ] && sha256sum {q(p)}" for p in paths)
    return f"{{ {inner}; }} 2>/dev/null; true"


def parse_sha256_output(text):
    """``sha256sum`` lines -> {path: digest}."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def remove_tree(path):
    return join(["rm", "-rf", "--", path])


def remove_file(path):
    return join(["rm", "-f", path])


def file_exists(path):
    return join(["test", "-f", path])


def read_file(path):
    """Print a file; a missing one prints nothing and succeeds."""
    return f"{join(['cat', path])} 2>/dev/null; true"


def tail(paths, lines, follow=False):
    """``tail -n LINES PATHS``; ``follow``: ``tail -F`` that ends when our side of
    the session does. sshd leaves a command without a terminal running when the
    connection closes (Ctrl-C here), so the tail runs in the background and is
    killed once stdin reaches end of file, which closing the connection causes
    (the caller must leave the command's stdin open: no input is sent)."""
    command = join(["tail", "-n", str(int(lines))] + (["-F"] if follow else []) + list(paths))
    if not follow:
        return command
    return f"{command} & t=$!; cat >/dev/null; kill $t 2>/dev/null; wait $t 2>/dev/null; true"


def process_alive(pid):
    """Prints ``yes`` when the pid is alive, else ``no`` (never fails)."""
    return f"kill -0 {q(pid)} 2>/dev/null && echo yes || echo no"


def signal_pid(signal, pid):
    return join(["kill", f"-{signal}", int(pid)])


# ------------------------------------------------------------- setup ---

ROUTES_HEADER = "# PREFIX APP (longest prefix wins)"


def layout_init(layout):
    """Create the env's folders (0700), an empty routes file the first time, and
    sweep staging dirs a killed upload receiver left behind."""
    from .transfer import cleanup_command

    routes = q(layout.routes_file)
    return (
        f"{mkdir_cmd(layout.directories())} && {join(['chmod', '700', layout.root])}"
        f" && {{ [ -f {routes} ] || printf '%s\\n' {q(ROUTES_HEADER)} > {routes}; }}"
        f" && {cleanup_command(layout.root)}"
    )


def nginx_test(layout):
    """``nginx -t`` on the live config, stderr folded into stdout (for the message)."""
    from .services import nginx_test_command

    return nginx_test_command(layout) + " 2>&1"


def staged_nginx_test(layout, staged):
    """The upload receiver's check for a new nginx.conf, before it goes live.

    ``staged``: env-relative paths in batch order (member ``i`` is ``$T/i``);
    a new ``bin/nginx`` of the same batch tests its own config.
    """
    nginx = f'"$T/{staged.index("bin/nginx")}"' if "bin/nginx" in staged else q(layout.nginx_bin)
    return (
        f'{nginx} -t -q -p {q(layout.root)} -c "$T/{staged.index("conf/nginx.conf")}" '
        f"-e {q(layout.log_file('nginx-error.log'))}"
    )


def crontab_remove(root):
    """Drop the ``@reboot`` line of this env from the user's crontab (no crontab: nothing)."""
    marker = f"# tiramisu:{root}"
    return f"if crontab -l >/dev/null 2>&1; then crontab -l | grep -vF -- {q(marker)} | crontab -; fi"


def crontab_add(layout):
    from .services import boot_line

    return (
        crontab_remove(layout.root) + f" && (crontab -l 2>/dev/null; printf '%s\\n' {q(boot_line(layout))}) | crontab -"
    )


# ---------------------------------------------------------- releases ---

PREP_MARK = "---tiramisu-routes---"


def _current_file(layout, app):
    return posixpath.join(layout.app_releases(app), "CURRENT")


def prepare_release(layout, app):
    """One round trip before an upload: make the app's folders, print CURRENT and the routes."""
    return (
        f"{join(['mkdir', '-p', '-m', '700', layout.app_releases(app), layout.app_logs])} && "
        f"cat {q(_current_file(layout, app))} 2>/dev/null; echo {PREP_MARK}; "
        f"cat {q(layout.routes_file)} 2>/dev/null; true"
    )


def parse_prepare(text):
    """(current release id or None, routes text) from :func:`prepare_release`'s output."""
    current, _, routes = (text or "").partition(PREP_MARK + "\n")
    return (current.strip() or None), routes


def hup_server(layout):
    """SIGHUP the server if its pid file names a live custom_server (never fails)."""
    from .services import is_ours

    pidfile = q(layout.pid_file("server"))
    return (
        f'p=$(cat {pidfile} 2>/dev/null); if [ -n "$p" ] && {is_ours("$p", "custom_server")}; '
        f'then kill -HUP "$p"; fi; true'
    )


def switch_release(layout, app, rid):
    """Make release rid live: hard link (or copy) beside the target, then rename."""
    src = layout.release(app, rid)
    tmp = posixpath.join(layout.modules, f".{app}.wasm.tiramisu-new")
    dst = layout.app_module(app)
    current = _current_file(layout, app)
    return (
        f"{{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && "
        f"mv -f {q(tmp)} {q(dst)} && printf '%s\\n' {q(rid)} > {q(current)}.new && "
        f"mv -f {q(current)}.new {q(current)}"
    )


def prune_releases(layout, app, keep, protect):
    """Delete all but the newest ``keep`` releases, never ``protect``."""
    d = layout.app_releases(app)
    return (
        f"cd {q(d)} 2>/dev/null && ls -1 | grep -E '^[0-9TZ]+-[0-9a-f]+\\.wasm$' | sort -r | "
        f"tail -n +{int(keep) + 1} | grep -vxF {q(protect + '.wasm')} | xargs -r rm -f --; true"
    )


def activate_release(layout, app, rid, keep):
    """Switch + rescan + prune in one round trip (inotify normally sees the rename
    first; the SIGHUP only makes sure)."""
    return f"{switch_release(layout, app, rid)} && {hup_server(layout)} && {prune_releases(layout, app, keep, rid)}"


def rollback_to(layout, app, rid):
    return f"{switch_release(layout, app, rid)} && {hup_server(layout)}"


def restore_release(layout, app, previous):
    """Undo a failed activation: the previous release back live (or no module at all)."""
    back = switch_release(layout, app, previous) if previous else remove_file(layout.app_module(app))
    return f"{back}; {hup_server(layout)}"


def unpublish_app(layout, app):
    return f"{remove_file(layout.app_module(app))}; {hup_server(layout)}"


def release_sha256(path):
    return f"sha256sum {q(path)} | cut -c1-64"


def current_releases(layout):
    """Prints ``APP ID`` for every app with a CURRENT file."""
    return (
        f"cd {q(layout.releases)} 2>/dev/null && for d in */; do "
        f'[ -f "$d/CURRENT" ] && echo "${{d%/}} $(cat "$d/CURRENT")"; done; true'
    )


def list_releases(layout, app):
    return f"ls -1 {q(layout.app_releases(app))} 2>/dev/null; true"


def check_module(layout):
    """The upload receiver's check: the box's own engine loads the staged module."""
    return f'{q(layout.server_bin)} --config {q(layout.server_conf)} --check-module "$T/0"'


# ------------------------------------------------------- health gate ---

GATE_MARK = "---tiramisu-gate---"


def preview_dir(layout):
    """The server's preview slot folder (custom_server watches it beside wasm_modules/)."""
    return posixpath.join(layout.modules, ".preview")


def preview_routes_upload(layout, app, rid):
    """Where deploy uploads the routes file a preview should route with (moved into the slot)."""
    return posixpath.join(layout.app_releases(app), f"{rid}.routes")


def failed_marker(layout, app, rid):
    """``releases/<app>/<id>.failed``: the release failed its health check (pruned first)."""
    return posixpath.join(layout.app_releases(app), f"{rid}.failed")


def _log_size(path):
    return f"$(wc -c < {q(path)} 2>/dev/null || echo 0)"


def place_preview(layout, app, rid, with_routes):
    """Put release ``rid`` in the app's preview slot (routes file first, then the module, each by
    rename) and print ``GATE_MARK <app log bytes> <server log bytes>`` (where the check's log lines start)."""
    pdir = preview_dir(layout)
    src = layout.release(app, rid)
    tmp = posixpath.join(pdir, f".{app}.wasm.tiramisu-new")
    routes = posixpath.join(pdir, f"{app}.routes")
    routes_step = (
        join(["mv", "-f", preview_routes_upload(layout, app, rid), routes]) if with_routes else remove_file(routes)
    )
    return (
        f"mkdir -p -m 700 {q(pdir)} && "
        f"{{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && {routes_step} && "
        f"mv -f {q(tmp)} {q(posixpath.join(pdir, f'{app}.wasm'))} && "
        f"echo {GATE_MARK} {_log_size(layout.app_log(app))} {_log_size(layout.log_file('server.log'))}"
    )


def parse_log_offsets(text):
    """(app log bytes, server log bytes) from :func:`place_preview`'s output; (0, 0) when absent."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == GATE_MARK and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2])
    return 0, 0


def remove_preview(layout, app):
    """Empty the app's preview slot (never fails)."""
    pdir = preview_dir(layout)
    return f"{join(['rm', '-f', posixpath.join(pdir, f'{app}.wasm'), posixpath.join(pdir, f'{app}.routes')])}; true"


def _log_since(path, offset, lines):
    # A log rotated since the offset was taken is shown from its start.
    return (
        f's={_log_size(path)}; o={int(offset)}; [ "$s" -lt "$o" ] && o=0; '
        f"tail -c +$((o + 1)) {q(path)} 2>/dev/null | tail -n {int(lines)}"
    )


def gate_evidence(layout, app, app_offset, server_offset, lines=40):
    """The app log (guest stderr) and the server log written since the offsets, the server's
    lines about ``app`` only; parts separated by ``GATE_MARK`` lines (never fails)."""
    server = layout.log_file("server.log")
    return (
        f"{_log_since(layout.app_log(app), app_offset, lines)}; echo {GATE_MARK}; "
        f"{_log_since(server, server_offset, 400)} | grep -F -e {q(f'app {app}:')} -e {q(f'app preview:{app}:')} "
        f"| tail -n {int(lines)}; true"
    )


def parse_gate_evidence(text):
    """(guest stderr text, server log text) from :func:`gate_evidence`'s output."""
    guest, _, server = (text or "").partition(GATE_MARK + "\n")
    return guest, server


def mark_failed(layout, app, rid, reason):
    """Write ``<id>.failed`` (one line: the reason) and empty the preview slot."""
    marker = failed_marker(layout, app, rid)
    line = " ".join(str(reason).split())[:500]
    return f"printf '%s\\n' {q(line)} > {q(marker)}; {remove_preview(layout, app)}"


def activate_previewed(layout, app, rid, keep):
    """:func:`activate_release`, then the preview slot emptied (the server has promoted its module by then
    or compiles it from its cache)."""
    return f"{activate_release(layout, app, rid, keep)} && {remove_preview(layout, app)}"


# ---------------------------------------------------------------- tls ---


def tls_prune(tls_dir, keep):
    """Delete the certificate pairs in ``tls_dir`` (``*.crt``, ``*.key``) other than ``keep`` (paths)."""
    names = [posixpath.basename(p) for p in keep]
    keep_args = " ".join(f"! -name {q(n)}" for n in names)
    pairs = "\\( -name '*.crt' -o -name '*.key' \\)"
    return f"find {q(tls_dir)} -maxdepth 1 -type f {pairs} {keep_args} -exec rm -f -- {{}} +"


def nginx_workers(layout):
    """The pids of nginx's workers (children of the master in run/nginx.pid), one line; nothing if not running."""
    pid = q(layout.pid_file("nginx"))
    return f'p=$(cat {pid} 2>/dev/null) && [ -n "$p" ] && cat /proc/"$p"/task/*/children 2>/dev/null; true'
