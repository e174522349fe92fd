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


def dir_exists(path):
    return join(["test", "-d", path])


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


def app_log_files(layout, app):
    """Prints the path of each log file of ``app`` (a validated app name), one per
    line: ``APP.log`` (a plain app) and ``APP.KEY.log`` (each module of an app
    with a manifest or module map). App names have no dots, so ``APP.*.log``
    matches no other app's files."""
    each = '[ -f "$f" ] && echo "$PWD/$f"'
    return f"cd {q(layout.app_logs)} 2>/dev/null && for f in {q(app)}.log {q(app)}.*.log; do {each}; done; true"


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


APP_MAP_MARK = "==tiramisu-app-map=="


def prepare_release(layout, app):
    """One round trip before an upload: make the app's folders, print CURRENT, a
    mark when the app has a map (a manifest app), and the routes."""
    return (
        f"{join(['mkdir', '-p', '-m', '700', layout.app_releases(app), layout.app_logs])} && "
        f"cat {q(_current_file(layout, app))} 2>/dev/null; "
        f"[ -f {q(posixpath.join(layout.modules, app + '.map'))} ] && echo {APP_MAP_MARK}; echo {PREP_MARK}; "
        f"cat {q(layout.routes_file)} 2>/dev/null; true"
    )


def parse_prepare(text):
    """(current release id or None, routes text) from :func:`prepare_release`'s output."""
    current, _, routes = (text or "").partition(PREP_MARK + "\n")
    current = "\n".join(line for line in current.splitlines() if line.strip() != APP_MAP_MARK)
    return (current.strip() or None), routes


def prepare_saw_app_map(text):
    """Whether :func:`prepare_release` found ``wasm_modules/APP.map``: the app was
    deployed from a manifest or module map (pure)."""
    head = (text or "").partition(PREP_MARK + "\n")[0]
    return any(line.strip() == APP_MAP_MARK for line in head.splitlines())


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
    # Already the same file (an upload that linked bytes the box had): nothing to
    # switch, and mv would refuse two links to one inode ("are the same file").
    return (
        f"{{ [ {q(src)} -ef {q(dst)} ] || {{ {{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && "
        f"mv -f {q(tmp)} {q(dst)}; }}; }} && printf '%s\\n' {q(rid)} > {q(current)}.new && "
        f"mv -f {q(current)}.new {q(current)}"
    )


def activate_release(layout, app, rid, keep=None):
    """Switch + rescan in one round trip (inotify normally sees the rename first;
    the SIGHUP only makes sure).

    ``keep`` is not used here any more: pruning waits until the deploy has
    succeeded and is planned by :func:`plans.plan_prune` (it never deletes the
    live, the previous good or a pinned release; see :func:`delete_releases`).
    """
    return f"{switch_release(layout, app, rid)} && {hup_server(layout)}"


def rollback_to(layout, app, rid):
    return f"{switch_release(layout, app, rid)} && {hup_server(layout)}"


def restore_release(layout, app, previous):
    """Undo a failed activation: the previous release back live (or no module at all)."""
    back = switch_release(layout, app, previous) if previous else remove_file(layout.app_module(app))
    return f"{back}; {hup_server(layout)}"


def unpublish_app(layout, app):
    """Stop serving ``app``: its module, and for manifest/module-map apps its map, their
    modules (``<app>.<module>.wasm``: Tiramisu app names have no dot) and static files' include."""
    m = layout.modules
    conf = posixpath.join(layout.conf, "apps", f"{app}.conf")
    from .services import nginx_reload_command

    return (
        f"{remove_file(layout.app_module(app))}; rm -f {q(m + '/' + app + '.map')} {q(m + '/' + app)}.*.wasm; "
        f"if [ -f {q(conf)} ]; then rm -f {q(conf)} && {nginx_reload_command(layout)}; fi; {hup_server(layout)}"
    )


def app_data_paths(layout, app):
    """The app's data folder, its per-release secrets folder and the older
    single secrets file (what ``remove --purge-data`` deletes)."""
    return (f"{layout.root}/data/{app}", f"{layout.root}/secrets/{app}", f"{layout.root}/secrets/{app}.env")


def purge_app_data(layout, app):
    """Delete the app's data folders and its secrets file (``remove --purge-data``)."""
    return join(["rm", "-rf", *app_data_paths(layout, app)])


def release_sha256(path):
    return f"sha256sum {q(path)} | cut -c1-64"


def current_releases(layout):
    """Prints ``APP ID`` for every app with a CURRENT file.

    Two processes whatever the number of apps (one grep over every CURRENT, one
    sed), not a ``cat`` per app: a thousand forks took seconds on a busy box.
    /dev/null as a first file makes grep prefix every line with its file name
    even when there is only one app."""
    return (
        f"cd {q(layout.releases)} 2>/dev/null && grep '' /dev/null */CURRENT 2>/dev/null | sed 's|/CURRENT:| |'; true"
    )


def list_releases(layout, app):
    return f"ls -1 {q(layout.app_releases(app))} 2>/dev/null; true"


def check_module(layout):
    """The upload receiver's check: the box's own engine loads the staged module."""
    return f'{q(layout.server_bin)} --config {q(layout.server_conf)} --check-module "$T/0"'


# ------------------------------------------- release markers / pruning ---


def then_always(command, final):
    """``command`` (in a subshell: even its ``exit`` cannot skip ``final``), then
    ``final`` whatever happened; the exit status is ``command``'s."""
    return f"( {command} ); rc=$?; {final}; exit $rc"


def chain(*commands):
    """Several commands as one round trip, each only after the previous succeeded (``a && b``)."""
    return " && ".join(f"{{ {c}; }}" for c in commands if c)


RELEASE_MARKS = ("failed", "keep")  # <id>.failed: a failed attempt; <id>.keep: pinned


def mark_release(layout, app, rid, mark):
    """Create the marker file ``<id>.<mark>`` beside the release (``mark``: failed or keep)."""
    if mark not in RELEASE_MARKS:
        raise ValueError(f"unknown release mark {mark!r}")
    path = q(posixpath.join(layout.app_releases(app), f"{rid}.{mark}"))
    return f"[ -e {path} ] || : > {path}"  # keeps a reason the health gate wrote into it


def delete_releases(layout, app, rids):
    """Delete releases (their .wasm and markers); ``rids`` comes from :func:`plans.plan_prune`."""
    names = [f"{rid}.{ext}" for rid in rids for ext in ("wasm",) + RELEASE_MARKS]
    if not names:
        return "true"
    return f"cd {q(layout.app_releases(app))} && {join(['rm', '-f', '--', *names])}"


def parse_release_listing(text):
    """``ls -1`` of an app's releases folder -> (ids newest first, failed ids, pinned ids)."""
    names = set((text or "").split())
    ids = sorted((n[:-5] for n in names if n.endswith(".wasm")), reverse=True)
    failed = tuple(r for r in ids if f"{r}.failed" in names)
    pinned = tuple(r for r in ids if f"{r}.keep" in names)
    return tuple(ids), failed, pinned


# ----------------------------------------------------------- box lock ---

LOCK_ACQUIRED, LOCK_HELD, LOCK_FREE, LOCK_NO_ENV = "acquired", "held", "free", "no-env"


def _lock_info_path(layout):
    return posixpath.join(layout.lock_dir, "info")


def _heartbeat_age(layout):
    """sh: prints ``age=SECONDS`` since the lock's info file (or dir) was last touched, by the box's clock."""
    info, lock = q(_lock_info_path(layout)), q(layout.lock_dir)
    return (
        f"m=$(stat -c %Y {info} 2>/dev/null || stat -c %Y {lock} 2>/dev/null || date +%s); "
        f'echo "age=$(( $(date +%s) - m ))"'
    )


def lock_acquire(layout, info_lines, create_env=False):
    """One attempt at the box's lock: ``mkdir`` is atomic on every POSIX file system.

    Prints ``acquired`` (the info file written: temp + rename) or ``held``
    followed by the holder's info lines and ``age=SECONDS`` (heartbeat age);
    then ``client=ADDRESS`` (where the box sees us come from, $SSH_CLIENT).
    Without ``create_env`` a missing env dir prints ``no-env`` (a lock
    must not bring back an env that teardown removed). Fails only when the
    state folder cannot be made.
    """
    info = q(_lock_info_path(layout))
    lines = " ".join(q(line) for line in info_lines)
    need = "" if create_env else f"if [ ! -d {q(layout.root)} ]; then echo {LOCK_NO_ENV}; exit 0; fi; "
    return (
        f"{need}mkdir -p -m 700 {q(layout.state)} && {{ "
        f"if mkdir -m 700 {q(layout.lock_dir)} 2>/dev/null; then "
        f"printf '%s\\n' {lines} > {info}.tmp && mv -f {info}.tmp {info} && echo {LOCK_ACQUIRED}; "
        f"else echo {LOCK_HELD}; cat {info} 2>/dev/null; {_heartbeat_age(layout)}; fi; "
        f'echo "client=${{SSH_CLIENT%% *}}"; }}'
    )


def lock_heartbeat(layout, token):
    """Touch the info file while it is still ours; prints ``ok`` or ``lost`` (never fails)."""
    info = q(_lock_info_path(layout))
    return (
        f"if grep -qxF {q('token=' + token)} {info} 2>/dev/null; then touch {info} && echo ok; else echo lost; fi; true"
    )


def lock_release(layout, token, tidy=False):
    """Remove the lock if it is still ours (rename away, then delete); prints ``released`` or ``lost``.

    ``tidy``: then remove the state folder and the env dir if they are empty
    (a setup that created the env for its lock and failed leaves nothing).
    """
    lock, info = q(layout.lock_dir), q(_lock_info_path(layout))
    gone = q(layout.lock_dir + ".released-" + token)
    tidy_up = f"rmdir {q(layout.state)} {q(layout.root)} 2>/dev/null; " if tidy else ""
    return (
        f"if grep -qxF {q('token=' + token)} {info} 2>/dev/null && mv {lock} {gone}; "
        f"then rm -rf {gone}; {tidy_up}echo released; else echo lost; fi; true"
    )


def lock_status(layout):
    """Prints ``free``, or ``held`` + the holder's info lines + ``age=SECONDS``."""
    lock, info = q(layout.lock_dir), q(_lock_info_path(layout))
    return (
        f"if [ -d {lock} ]; then echo {LOCK_HELD}; cat {info} 2>/dev/null; {_heartbeat_age(layout)}; "
        f"else echo {LOCK_FREE}; fi"
    )


def lock_break(layout, token):
    """Break the lock only if it is still the one inspected (``token``; '' = a lock with no info file).

    Prints ``broken``, ``free`` (nobody holds it) or ``changed`` (another
    holder now: nothing done).
    """
    lock, info = q(layout.lock_dir), q(_lock_info_path(layout))
    gone = q(layout.lock_dir + ".broken")
    same = f"grep -qxF {q('token=' + token)} {info} 2>/dev/null" if token else f"[ ! -f {info} ]"
    return (
        f"if [ ! -d {lock} ]; then echo {LOCK_FREE}; "
        f"elif {same} && rm -rf {gone} && mv {lock} {gone}; then rm -rf {gone}; echo broken; "
        f"else echo changed; fi"
    )


# ------------------------------------------------------------ history ---

HISTORY_MAX_LINES = 10000


def history_append(layout, line, max_lines=HISTORY_MAX_LINES):
    """Append one JSON line to the box's history: the last ``max_lines`` lines are
    rewritten to a temp file that is renamed over the old one (atomic)."""
    hist = q(layout.history_file)
    return (
        f"mkdir -p -m 700 {q(layout.state)} && "
        f"{{ tail -n {int(max_lines) - 1} {hist} 2>/dev/null; printf '%s\\n' {q(line)}; }} > {hist}.tmp && "
        f"chmod 600 {hist}.tmp && mv -f {hist}.tmp {hist}"
    )


# ------------------------------------------------ app manifests and maps ---
# (tiramisu_tasks/appdeploy.py: releases/<app>/<id>.d bundles, data/<app>/, secrets/<app>.env)

MAP_DUMP_MARK = "==tiramisu-map=="
SECRETS_MARK = "==tiramisu-secrets=="


PLAIN_DUMP_MARK = "==tiramisu-plain=="


def dump_app_maps(layout):
    """Prints ``==tiramisu-plain== APP`` for every plain app's module (``APP.wasm``:
    no dot in the name, unlike a map's ``APP.KEY.wasm``), then
    ``==tiramisu-map== APP`` and the map, for every wasm_modules/*.map."""
    return (
        f"cd {q(layout.modules)} 2>/dev/null && "
        f'for m in *.wasm; do case "$m" in *.*.wasm) ;; *) [ -f "$m" ] && echo "{PLAIN_DUMP_MARK} ${{m%.wasm}}";; '
        "esac; done; "
        f'for f in *.map; do [ -f "$f" ] || continue; '
        f'echo "{MAP_DUMP_MARK} ${{f%.map}}"; cat "$f"; echo; done; true'
    )


def prepare_app_dirs(layout, app):
    """The app's release folder, the data and secrets folders (0700)."""
    root = layout.root
    return join(
        ["mkdir", "-p", "-m", "700", layout.app_releases(app), f"{root}/data", f"{root}/data/{app}", f"{root}/secrets"]
    )


def unpack_app_release(release_dir, data_dir, seeds, secrets_file=None):
    """Unpack ``<release_dir>.tar`` into ``release_dir`` (kept if it exists: releases are immutable),
    create each missing data folder ``data_dir/<seed>`` from the release's ``seed/<seed>`` (or
    empty) and never touch an existing one, then put the uploaded secrets file in place."""
    d, t, tar = q(release_dir), q(release_dir + ".tmp"), q(release_dir + ".tar")
    parts = [
        f"rm -rf {t} && mkdir -m 700 {t} && tar -xf {tar} -C {t} && rm -f {tar}",
        f"if [ -e {d} ]; then rm -rf {t}; else mv {t} {d}; fi",
    ]
    for name in seeds:
        dst, src = q(f"{data_dir}/{name}"), q(f"{release_dir}/seed/{name}")
        tmp = q(f"{data_dir}/.{name}.seeding")
        parts.append(
            f"if [ ! -e {dst} ]; then rm -rf {tmp}; if [ -d {src} ]; then cp -R {src} {tmp}; "
            f"else mkdir -m 700 {tmp}; fi && mv {tmp} {dst}; fi"
        )
    if secrets_file:
        parts.append(
            f"if [ -f {q(secrets_file + '.new')} ]; then mv -f {q(secrets_file + '.new')} {q(secrets_file)}; fi"
        )
    return " && ".join(parts)


def install_beside(src, dst):
    """Put ``src`` at ``dst`` atomically: hard link (or copy) beside it, then rename."""
    tmp = posixpath.join(posixpath.dirname(dst), f".{posixpath.basename(dst)}.tiramisu-new")
    # the same file already (one inode, two links): nothing to do, and mv would refuse it
    return (
        f"[ {q(src)} -ef {q(dst)} ] || "
        f"{{ {{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && mv -f {q(tmp)} {q(dst)}; }}"
    )


def app_env_sources(layout, app):
    """The app's live map, a mark, then only the NAMES of its secrets (values never leave the box)."""
    live_map = q(layout.modules + "/" + app + ".map")
    # the secrets file the live map names (per release: secrets/<app>/<id>.env)
    secrets = f'"$(awk -F "\\t" \'$1 == "envfile" {{ print $2; exit }}\' {live_map} 2>/dev/null)"'
    return (
        f"cat {live_map} 2>/dev/null; echo {SECRETS_MARK}; "
        f"sed -n 's/^\\([A-Za-z_][A-Za-z0-9_]*\\)=.*/\\1/p' {secrets} 2>/dev/null; true"
    )


def apply_app_nginx_conf(layout, app, src):
    """Put the app's static-files include live (``conf/apps/<app>.conf``; ``src`` None removes it),
    check nginx's whole config, reload; on a failed check the previous file comes back."""
    from .services import nginx_reload_command, nginx_test_command

    d = posixpath.join(layout.conf, "apps")
    dst, old = posixpath.join(d, f"{app}.conf"), posixpath.join(d, f".{app}.conf.previous")
    put = install_beside(src, dst) if src else remove_file(dst)
    restore = f"if [ -f {q(old)} ]; then mv -f {q(old)} {q(dst)}; else rm -f {q(dst)}; fi"
    text = (
        f"mkdir -p -m 700 {q(d)} && rm -f {q(old)} && {{ [ ! -f {q(dst)} ] || cp -p {q(dst)} {q(old)}; }} && {put} && "
        f"{{ {nginx_test_command(layout)} 2>&1 || {{ {restore}; exit 1; }}; }} && {nginx_reload_command(layout)}"
    )
    # nothing to remove: no nginx -t and no reload (a warm deploy of an app without static files)
    return text if src else f"if [ -f {q(dst)} ]; then {text}; fi"


def set_current_release(layout, app, rid):
    """releases/<app>/CURRENT = rid (atomically)."""
    cur = _current_file(layout, app)
    return f"printf '%s\\n' {q(rid)} > {q(cur)}.new && mv -f {q(cur)}.new {q(cur)}"


def switch_bundle_modules(layout, release_dir):
    """Put every module of a bundle live (each renamed into wasm_modules/); prints ``SHA  NAME.wasm`` lines."""
    d = q(release_dir + "/modules")
    m = q(layout.modules)
    return (
        f'cd {d} && for f in *.wasm; do [ "$f" -ef {m}/"$f" ] && continue; '
        f'{{ ln -f "$f" {m}/".$f.tiramisu-new" 2>/dev/null || '
        f'cp -f "$f" {m}/".$f.tiramisu-new"; }} && mv -f {m}/".$f.tiramisu-new" {m}/"$f" || exit 1; done && '
        "sha256sum *.wasm"
    )


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


# -------------------------------- app maps: preview, bundles, secrets ---
#
# A manifest/module-map release (appdeploy.py) goes through the same gate as a
# plain one: its modules and map are placed in the server's preview folder,
# checked over loopback, then switched. Its secrets live per release in
# ``secrets/<app>/<id>.env``, named by the release's map, so the map's rename is
# what switches modules and secrets together (and a rollback restores both).


def app_secrets_dir(layout, app):
    """``secrets/<app>``: one 0600 ``<id>.env`` per release (0700 folder)."""
    return posixpath.join(layout.root, "secrets", app)


def app_secrets_file(layout, app, rid):
    return posixpath.join(app_secrets_dir(layout, app), f"{rid}.env")


def prepare_app_secrets_dir(layout, app):
    return join(["mkdir", "-p", "-m", "700", posixpath.join(layout.root, "secrets"), app_secrets_dir(layout, app)])


def place_app_preview(layout, app, release_dir, modules):
    """Put a bundle in the preview folder: each module (``modules``: server names) then the map, each
    by rename; prints ``GATE_MARK <app log bytes> <server log bytes>`` like :func:`place_preview`."""
    pdir = preview_dir(layout)
    steps = [f"mkdir -p -m 700 {q(pdir)}"]
    for name in list(modules) + [None]:
        src = f"{release_dir}/modules/{name}.wasm" if name else f"{release_dir}/app.map"
        file = f"{name}.wasm" if name else f"{app}.map"
        tmp = posixpath.join(pdir, f".{file}.tiramisu-new")
        steps.append(
            f"{{ ln -f {q(src)} {q(tmp)} 2>/dev/null || cp -f {q(src)} {q(tmp)}; }} && "
            f"mv -f {q(tmp)} {q(posixpath.join(pdir, file))}"
        )
    steps.append(f"echo {GATE_MARK} {_log_size(layout.app_log(app))} {_log_size(layout.log_file('server.log'))}")
    return " && ".join(steps)


def remove_app_preview(layout, app):
    """Empty an app map's preview: its map first (its routes stop answering), then its modules (never fails)."""
    pdir = preview_dir(layout)
    return f"rm -f {q(posixpath.join(pdir, app + '.map'))}; rm -f {q(pdir)}/{q(app)}.*.wasm; true"


def mark_app_failed(layout, app, rid, reason):
    """``<id>.failed`` beside the bundle (one line: the reason), and the app's preview emptied."""
    marker = failed_marker(layout, app, rid)
    line = " ".join(str(reason).split())[:500]
    return f"printf '%s\\n' {q(line)} > {q(marker)}; {remove_app_preview(layout, app)}"


def parse_bundle_listing(text):
    """``ls -1`` of an app's releases folder -> (bundle ids newest first, failed ids, pinned ids)."""
    names = set((text or "").split())
    ids = sorted((n[:-2] for n in names if n.endswith(".d")), reverse=True)
    failed = tuple(r for r in ids if f"{r}.failed" in names)
    pinned = tuple(r for r in ids if f"{r}.keep" in names)
    return tuple(ids), failed, pinned


def delete_app_bundles(layout, app, rids):
    """Delete bundles (``<id>.d``), their markers and their secrets files; ``rids`` from :func:`plans.plan_prune`."""
    if not rids:
        return "true"
    names = [f"{rid}{ext}" for rid in rids for ext in (".d", ".d.tar", ".failed", ".keep")]
    secrets = [app_secrets_file(layout, app, rid) for rid in rids]
    return f"cd {q(layout.app_releases(app))} && {join(['rm', '-rf', '--', *names, *secrets])}"


def unpublish_app_map(layout, app):
    """A failed first deploy of an app map: nothing of it served any more, CURRENT gone."""
    return f"{unpublish_app(layout, app)}; rm -f {q(_current_file(layout, app))}; {remove_app_preview(layout, app)}"


STATIC_LINK = "static-live"  # releases/<app>/static-live -> <id>.d: the static files nginx serves


def switch_static_link(layout, app, release_dir):
    """Point ``releases/<app>/static-live`` at ``release_dir`` by renaming a new symlink over it
    (``mv -T``: atomic; busybox without ``-T``: remove, then rename)."""
    d = layout.app_releases(app)
    new, link = posixpath.join(d, f".{STATIC_LINK}.new"), posixpath.join(d, STATIC_LINK)
    target = posixpath.basename(release_dir.rstrip("/"))
    return (
        f"ln -sfn {q(target)} {q(new)} && "
        f"{{ mv -Tf {q(new)} {q(link)} 2>/dev/null || {{ rm -f {q(link)} && mv -f {q(new)} {q(link)}; }}; }}"
    )


def apply_app_nginx_conf_if_changed(layout, app, src):
    """:func:`apply_app_nginx_conf` unless the live include already has ``src``'s text (no reload then)."""
    dst = posixpath.join(layout.conf, "apps", f"{app}.conf")
    same = f"cmp -s {q(src)} {q(dst)}" if src else f"[ ! -e {q(dst)} ]"
    return f"if {same}; then true; else {apply_app_nginx_conf(layout, app, src)}; fi"
