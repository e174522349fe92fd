"""Deploy of an app described by ``tiramisu.toml`` or a WAGI ``modules.toml``.

A release is a bundle, immutable once uploaded::

    releases/<app>/<id>.d/modules/<module>.wasm   every module of the app
    releases/<app>/<id>.d/ro/<name>/...            read-only volumes
    releases/<app>/<id>.d/www/<static route>/...   static files (nginx serves them)
    releases/<app>/<id>.d/app.map                  the app map (routes, env, folders, secrets file)
    releases/<app>/<id>.d/app.json                 what was deployed (secret names only)
    releases/<app>/static-live -> <id>.d           the live release's static files (nginx's root)

beside it, never inside it::

    secrets/<app>/<id>.env     0600, KEY=VALUE, resolved on this machine at deploy time;
                               one per release, named by that release's map
    data/<app>/<name>/         writable volumes: seeded on the first deploy only, never
                               overwritten or deleted by deploy

The gate (issue 13 for these apps): modules and map go into the server's
preview folder (``wasm_modules/.preview/<app>.<module>.wasm``, ``<app>.map``)
and the health check runs on ``/_tiramisu/preview/<app><path>`` before
anything switches. Going live: each module is renamed into
``wasm_modules/<app>.<module>.wasm`` (the server promotes the preview's
compiled module), then the map into ``wasm_modules/<app>.map`` (the server
re-reads it with the secrets file it names: modules' environment and secrets
switch together; a map it cannot parse is refused and the previous one keeps
serving), then the ``static-live`` symlink. Deploy then checks through nginx
and restores the previous bundle on failure.

Secrets: values are read here (environment or a ``.env`` file outside the
app), uploaded in the same verified batch as the release, and never printed,
logged, returned in --json/--dry (``***``), kept in the release or written
to the history.
"""

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Dict

from . import commands as cmd
from .apps.appspec import AppSpec
from .errors import RemoteError, TiramisuError, UsageError
from .plans import release_id
from .transfer import Upload

REDACTED = "***"


# ------------------------------------------------------------------ pure ---


def parse_env_text(text: str, where: str) -> Dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, ``export``, matching quotes) as a dict (pure).

    UsageError names the file and line, never a value.
    """
    out = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, eq, value = line.partition("=")
        key = key.strip()
        if not eq or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"{where}:{n}: expected NAME=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key] = value
    return out


def resolve_secrets(spec: AppSpec, environ=None, read_text=None) -> Dict[str, str]:
    """{name: value} for every secret of ``spec``, read on this machine.

    UsageError names the missing variable or file (exit 2); values never
    appear in a message. A value may not hold a newline or NUL.
    """
    environ = os.environ if environ is None else environ
    read_text = read_text or (lambda p: Path(p).read_text())
    files: Dict[str, Dict[str, str]] = {}
    out = {}
    for s in spec.secrets:
        if s.env is not None:
            if s.env not in environ:
                raise UsageError(f"secret {s.name}: the environment variable {s.env} is not set on this machine")
            value = environ[s.env]
        else:
            key = str(s.env_file)
            if key not in files:
                try:
                    files[key] = parse_env_text(read_text(s.env_file), key)
                except OSError as exc:
                    raise UsageError(f"secret {s.name}: cannot read {s.env_file}: {exc.strerror or exc}") from None
            if s.key not in files[key]:
                raise UsageError(f"secret {s.name}: {s.env_file} has no {s.key}")
            value = files[key][s.key]
        if "\n" in value or "\x00" in value:
            raise UsageError(f"secret {s.name}: the value must be one line")
        out[s.name] = value
    return out


def module_names(spec: AppSpec) -> Dict[str, str]:
    """{module key: server module name}: ``<app>.<key>`` (a dot: never a Tiramisu app name)."""
    return {key: f"{spec.name}.{key}" for key in spec.modules}


def app_map_text(spec: AppSpec, names: Dict[str, str], release_dir: str, data_dir: str, secrets_file) -> str:
    """The server's app map for ``spec`` (format: cserver/ts_appmap.h), with absolute box paths (pure)."""
    lines = ["tiramisu-appmap 1", f"# {spec.name}: written by tiramisu deploy from {spec.source_file.name}"]
    for k, v in spec.environment.items():
        lines.append(f"env\t{k}\t{v}")
    if secrets_file:
        lines.append(f"envfile\t{secrets_file}")

    def dir_line(v):
        host = f"{data_dir}/{v.name}" if v.writable else f"{release_dir}/ro/{v.name}"
        return f"dir\t{v.guest}\t{host}\t{'rw' if v.writable else 'ro'}"

    for v in spec.volumes:
        lines.append(dir_line(v))
    lim = spec.limits
    if lim.timeout_ms:
        lines.append(f"limit\ttimeout-ms\t{lim.timeout_ms}")
    if lim.memory_bytes:
        lines.append(f"limit\tmemory-mb\t{max(1, lim.memory_bytes >> 20)}")
    if lim.body_bytes:
        lines.append(f"limit\tmax-body\t{lim.body_bytes}")
    for r in spec.routes:
        fields = ["route", r.pattern.text, names[r.module], r.entrypoint] + ([r.argv] if r.argv else [])
        lines.append("\t".join(fields))
        for k, v in r.environment.items():
            lines.append(f"env\t{k}\t{v}")
        for v in r.volumes:
            lines.append(dir_line(v))
    for line in lines:
        if any(c in line for c in "\n\r\x00") or line.count("\t") > 4:
            raise UsageError(f"{spec.source_file}: a value holds a tab or newline: {line.split(chr(9))[1][:40]!r}")
    return "\n".join(lines) + "\n"


# nginx.conf has no mime.types include: the static location names the usual ones itself.
STATIC_TYPES = (
    "text/html html htm; text/css css; text/plain txt; text/xml xml; application/javascript js mjs; "
    "application/json json map; application/wasm wasm; image/svg+xml svg; image/png png; image/jpeg jpg jpeg; "
    "image/gif gif; image/webp webp; image/avif avif; image/x-icon ico; font/woff woff; font/woff2 woff2; "
    "application/pdf pdf;"
)


def static_nginx_conf(spec: AppSpec, release_dir: str) -> str:
    """The nginx include serving ``spec``'s static files from the release (pure).

    ETag and Last-Modified are nginx's defaults for files; Cache-Control as
    the manifest says; gzip for text types; unknown paths get the SPA fallback
    file (if any), else the custom 404 page (if any) with status 404.
    """
    st = spec.static
    prefix = st.route.rstrip("/")
    fallback = f"{prefix}/{st.spa_fallback} " if st.spa_fallback else ""
    # the files of the live release through a symlink (releases/<app>/static-live -> <id>.d) that the
    # switch renames: the same text for every release with the same settings, so no nginx reload
    live = f"{release_dir.rstrip('/').rsplit('/', 1)[0]}/{cmd.STATIC_LINK}"
    lines = [
        f"# {spec.name}: static files, written by tiramisu deploy",
        f"location = {prefix} {{ return 301 {prefix}/; }}",
        f"location ^~ {prefix}/ {{",
        f"    root {live}/www;",
        f"    types {{ {STATIC_TYPES} }}",
        "    default_type application/octet-stream;",
        # The kernel copies file bodies to the socket, in full packets (30 KiB: 1/3 of the CPU).
        "    sendfile on;",
        "    tcp_nopush on;",
        f'    add_header Cache-Control "{st.cache_control}" always;',
        # An add_header here drops every inherited one: the server's public-face headers again
        # (their values for a response without the app's own: nginx.conf.j2's maps).
        "    add_header X-Content-Type-Options nosniff always;",
        "    add_header X-Frame-Options SAMEORIGIN always;",
        "    add_header Referrer-Policy strict-origin-when-cross-origin always;",
        "    gzip on;",
        "    gzip_vary on;",
        "    gzip_min_length 256;",
        "    gzip_types text/plain text/css text/xml application/javascript application/json image/svg+xml;",
    ]
    if st.spa_fallback:
        # try_files is a stat per request more (1 KiB: 16.6 -> 15.5 CPU us/req, bench/static_bench.py):
        # only for the SPA fallback; without it nginx answers a missing file 404 all the same
        # (a directory: its index.html, a 301 to "dir/", or 403)
        lines.append(f"    try_files $uri {fallback}=404;")
    if st.not_found:
        lines.append(f"    error_page 404 {prefix}/{st.not_found};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def posixpath_basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def route_conflicts(spec: AppSpec, other_maps: Dict[str, str]):
    """Exact routes of ``spec`` another app's map already claims: [(route, app)] (pure)."""
    mine = {r.pattern.text for r in spec.routes}
    out = []
    for app, text in other_maps.items():
        if app == spec.name:
            continue
        for line in text.splitlines():
            f = line.split("\t")
            if len(f) >= 4 and f[0] == "route" and f[1] in mine:
                out.append((f[1], app))
    return out


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def static_conflicts(spec: AppSpec, other_maps: Dict[str, str], plain_apps=()):
    """Other apps' routes the static files' prefix would take over: [(route, app)] (pure).

    nginx serves ``location ^~ PREFIX/`` before any proxied path, so every route
    of another app at or below the prefix (and a plain app's ``/APP``) would
    stop reaching its app.
    """
    if spec.static is None:
        return []
    prefix = spec.static.route.rstrip("/") or "/"
    out = [(f"/{app}", app) for app in sorted(plain_apps) if app != spec.name and _under(f"/{app}", prefix)]
    for app, text in other_maps.items():
        if app == spec.name:
            continue
        for line in text.splitlines():
            f = line.split("\t")
            if len(f) >= 4 and f[0] == "route" and _under(f[1].removesuffix("/..."), prefix):
                out.append((f[1], app))
    return out


def parse_plain_dump(text: str) -> set:
    """Names of the plain (single-module) apps in :func:`commands.dump_app_maps` output (pure)."""
    mark = cmd.PLAIN_DUMP_MARK + " "
    return {line[len(mark) :].strip() for line in text.splitlines() if line.startswith(mark)}


def parse_maps_dump(text: str) -> Dict[str, str]:
    """{app: map text} from :func:`commands.dump_app_maps` output (pure)."""
    out, cur = {}, None
    for line in text.splitlines():
        if line.startswith("==tiramisu-map== "):
            cur = line.split(" ", 1)[1]
            out[cur] = ""
        elif cur is not None:
            out[cur] += line + "\n"
    return out


def env_listing(map_text: str, secret_names) -> list:
    """[(name, value or '***', where)] for ``tiramisu env`` (pure): plain values as written, secrets redacted."""
    rows, route = [], "*"
    for line in map_text.splitlines():
        f = line.split("\t")
        if f[0] == "route" and len(f) >= 4:
            route = f[1]
        elif f[0] == "env" and len(f) == 3:
            rows.append((f[1], f[2], route))
    rows += [(n, REDACTED, "secret") for n in secret_names]
    return rows


# ---------------------------------------------------------------- local ---


def collect_modules(spec: AppSpec, workdir: Path, build=None) -> Dict[str, Path]:
    """{key: local .wasm} for every module: .wat assembled, a missing one built (``build(spec)``)."""
    import wasmtime

    from .apps.validate import validate_file

    out = {}
    for key, path in spec.modules.items():
        if path is None:
            if build is None:
                raise UsageError(f"{spec.name}: no module to deploy and no builder")
            path = Path(build(spec))
        if path.suffix.lower() == ".wat":
            dst = workdir / f"{key}.wasm"
            try:
                dst.write_bytes(wasmtime.wat2wasm(path.read_text()))
            except Exception as exc:  # wasmtime raises its own error types
                raise UsageError(f"{path}: invalid WAT: {str(exc).splitlines()[0]}") from None
            path = dst
        try:
            validate_file(path)
        except TiramisuError as exc:  # name the user's .wat, not the assembled copy in the work folder
            source = spec.modules[key]
            raise type(exc)(str(exc).replace(str(path), str(source)), code=exc.code) from None
        out[key] = path
    return out


def bundle_digest(spec: AppSpec, modules: Dict[str, Path]) -> str:
    """sha256 over everything a release holds (modules, shipped folders, the manifest's values)."""
    import hashlib

    h = hashlib.sha256()
    for key in sorted(modules):
        h.update(key.encode() + b"\0" + modules[key].read_bytes())
    folders = [v.source for v in spec.all_volumes() if v.source] + ([spec.static.folder] if spec.static else [])
    for folder in folders:
        for p in sorted(Path(folder).rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes())
    h.update(json.dumps(spec.redacted(), sort_keys=True).encode())
    if spec.static:
        h.update(repr(spec.static).encode())
    h.update(repr((spec.health, spec.limits)).encode())
    return h.hexdigest()


def write_bundle(spec: AppSpec, modules: Dict[str, Path], names, map_text: str, tar_path: Path, release_dir: str):
    """The release tarball: modules/, ro/, seed/, www/<static route>/, app.map, app.json (no secret
    values) and nginx.conf (the static files' include)."""
    summary = spec.redacted()
    with tarfile.open(tar_path, "w") as tar:
        for key, p in modules.items():
            tar.add(str(p), arcname=f"modules/{names[key]}.wasm")
        for v in spec.all_volumes():
            if v.source is None:
                continue
            tar.add(str(v.source), arcname=f"{'seed' if v.writable else 'ro'}/{v.name}")
        files = [("app.map", map_text), ("app.json", json.dumps(summary, indent=1) + "\n")]
        if spec.static:
            tar.add(str(spec.static.folder), arcname="www" + spec.static.route.rstrip("/"))
            files.append(("nginx.conf", static_nginx_conf(spec, release_dir)))
        for name, text in files:
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size = len(data)
            info.mode = 0o600
            info.mtime = int(time.time())
            import io

            tar.addfile(info, io.BytesIO(data))


# ------------------------------------------------------------------ box ---


def app_check(box, spec: AppSpec, health=None):
    """The :class:`healthgate.HealthCheck` of an app: a flag beats the manifest's [health] table,
    which beats the box's health_* settings; default: the first route answers below 500."""
    from . import healthgate as hg

    health, h = health or {}, spec.health
    manifest = {"path": h.path, "status": str(h.status), "body": h.body} if h else {}

    def pick(key):
        for value in (health.get(key), manifest.get(key), box.settings.get(f"health_{key}")):
            if value not in (None, ""):
                return value
        return None

    default = spec.routes[0].pattern.script_name or "/"
    return hg.make_check(default, pick("path"), pick("status"), pick("body"), pick("timeout"))


def bundle_listing(box, app):
    """(bundle ids newest first, failed ids, pinned ids) of ``app``, in one round trip."""
    return cmd.parse_bundle_listing(box.run(cmd.list_releases(box.layout, app)).stdout)


def deploy_app(box, spec: AppSpec, dry=False, build=None, environ=None, keep=None, health=None, progress=None):
    """Deploy ``spec`` to one served box; returns the summary (secrets as ``***``).

    ``health``: {path, status, body, timeout, rollback} from flags (None: the
    manifest's [health], then the box's health_* settings; see :func:`app_check`).

    Order: resolve secrets and build here (nothing on the box changes if
    either fails), refuse exact routes another app claims, upload the bundle
    and its secrets file (``secrets/<app>/<id>.env``, named by the bundle's
    map) in one verified batch, seed missing data folders, place modules and
    map in the server's preview folder and run the health check there (a
    failure: RemoteError, nothing switched, the release marked failed), switch
    the modules, then the map (modules' environment and secrets together),
    then the static files, then check through nginx (a failure: the previous
    release back, unless ``health["rollback"]`` is False). Data is never touched.
    ``progress`` (a dict, optional) receives ``release`` and ``sha256`` once
    known and ``uploaded`` once the bundle is on the box (for the history).
    """
    from . import healthgate as hg
    from .deploy import current_release, require_served

    started = time.monotonic()
    secrets = resolve_secrets(spec, environ)
    check = app_check(box, spec, health)
    rollback = (health or {}).get("rollback")
    rollback = True if rollback is None else bool(rollback)
    require_served(box)
    layout = box.layout
    names = module_names(spec)
    dump = box.run(cmd.dump_app_maps(layout)).stdout
    others, plain = parse_maps_dump(dump), parse_plain_dump(dump)
    if spec.name in plain:
        raise UsageError(
            f"{spec.name} on {box.name} is a single-module app: remove it first "
            f"(tiramisu remove {spec.name} --host {box.name}; its data stays) to deploy it from {spec.source_file.name}"
        )
    clash = route_conflicts(spec, others) + static_conflicts(spec, others, plain)
    if clash:
        route, other = clash[0]
        raise UsageError(f"route {route} is already served by app {other}; remove it there first")
    previous = current_release(box, spec.name)
    workdir = Path(tempfile.mkdtemp(prefix="tiramisu-app-"))
    try:
        modules = collect_modules(spec, workdir, build)
        digest = bundle_digest(spec, modules)
        rid = release_id(digest)
        release_dir = f"{layout.app_releases(spec.name)}/{rid}.d"
        data_dir = f"{layout.root}/data/{spec.name}"
        secrets_file = cmd.app_secrets_file(layout, spec.name, rid) if spec.secrets else None
        map_text = app_map_text(spec, names, release_dir, data_dir, secrets_file)
        gate = hg.plan_gate(spec.name, rid, check, previous, rollback)
        if progress is not None:
            progress.update(release=rid, sha256=digest, previous=previous)
        summary = {
            "host": box.name,
            "app": spec.name,
            "kind": spec.kind,
            "release": rid,
            "sha256": digest,
            "previous": previous,
            "routes": [r.pattern.text for r in spec.routes],
            "secrets": {k: REDACTED for k in secrets},
            "dry": dry,
            "url": box.url(check.path),
        }
        box.show_plan(f"{spec.name}: release {rid}, {len(modules)} module(s), {len(spec.routes)} route(s)", dry)
        box.show_plan(gate.text(), dry)
        if dry:
            summary.update(plan=spec.redacted(), gate=gate.as_dict())
            return summary
        tar_path = workdir / "bundle.tar"
        write_bundle(spec, modules, names, map_text, tar_path, release_dir)
        uploads = [Upload.of(tar_path, f"{release_dir}.tar", "600")]
        if secrets_file:
            sec = workdir / "secrets.env"
            fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("".join(f"{k}={v}\n" for k, v in secrets.items()))
            uploads.append(Upload.of(sec, secrets_file, "600"))
        box.run(cmd.chain(cmd.prepare_app_dirs(layout, spec.name), cmd.prepare_app_secrets_dir(layout, spec.name)))
        box.upload(uploads)
        if progress is not None:
            progress["uploaded"] = True
        seeds = [v.name for v in spec.all_volumes() if v.writable]
        box.run(cmd.unpack_app_release(release_dir, data_dir, seeds))
        shas = {names[key]: hashlib.sha256(p.read_bytes()).hexdigest() for key, p in modules.items()}
        map_sha = hashlib.sha256(map_text.encode()).hexdigest()
        t_gate = time.monotonic()
        offsets, preview = _preview_check(box, spec.name, rid, release_dir, shas, map_sha, gate, previous)
        gate_s = time.monotonic() - t_gate
        _switch_bundle(box, spec.name, release_dir, map_sha, bool(spec.static) or spec.name in others)
        box.run(cmd.chain(cmd.set_current_release(layout, spec.name, rid), cmd.remove_app_preview(layout, spec.name)))
        if spec.static:
            _wait_static(box, spec)
        from .deploy import run_check

        live = run_check(box, box.settings["http_port"], gate.live, check)
        summary.update(
            changed=True,
            status=live.status,
            gate_ms=round(gate_s * 1000, 1),
            health={"preview": preview.as_dict(), "live": live.as_dict(), "check": check.as_dict()},
            seconds=round(time.monotonic() - started, 2),
        )
        if not live.ok:
            _live_check_failed(box, spec.name, rid, gate, live, offsets)
        summary["seconds"] = round(time.monotonic() - started, 2)
        return summary
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _serving(previous):
    return f"release {previous} keeps serving" if previous else "nothing was switched live"


def wait_for_map(box, app, sha256, timeout, preview=False):
    """Until the server has loaded the map whose text has ``sha256`` (live, or ``preview``);
    RemoteError when it rejects it (its error), or has no such list (an older server), or times out."""
    from .polling import poll_until

    key = "preview_maps" if preview else "maps"
    seen = {"last": None}

    def loaded():
        resp = box.http(box.settings["server_port"], "/_tiramisu/apps", timeout=10)
        data = resp.json() if resp.status == 200 else {}
        if not isinstance(data, dict) or key not in data:
            raise RemoteError(
                f"the server on {box.name} cannot {'preview' if preview else 'report'} app maps (older than "
                f"the manifest health gate): run setup --host {box.name} to update it"
            )
        rec = seen["last"] = next((m for m in data[key] if m.get("app") == app), None)
        if rec and rec.get("file_sha256") == sha256:
            if rec.get("state") == "failed":
                raise RemoteError(f"the server rejected the map of {app}: {rec.get('error')}")
            return rec
        return None

    def too_late():
        return RemoteError(
            f"the server did not load the {'preview ' if preview else ''}map of {app} within {timeout:.0f}s"
        )

    return poll_until(loaded, timeout, interval=0.02, on_timeout=too_late)


def _preview_check(box, app, rid, release_dir, shas, map_sha, gate, previous):
    """Modules and map in the preview folder, the server's answer over loopback judged by the gate.
    Returns ((app log offset, server log offset), verdict); on failure marks the release failed,
    empties the preview and raises RemoteError (nothing was switched)."""
    from .deploy import run_check, show_evidence, wait_for_preview, wait_timeout

    layout = box.layout
    out = box.run(cmd.place_app_preview(layout, app, release_dir, list(shas))).stdout
    offsets = cmd.parse_log_offsets(out)
    try:
        for module, sha in shas.items():
            wait_for_preview(box, module, sha, wait_timeout(box))
        wait_for_map(box, app, map_sha, wait_timeout(box), preview=True)
    except RemoteError as exc:
        box.run(cmd.mark_app_failed(layout, app, rid, exc.message), warn=True)
        raise RemoteError(f"{exc.message}; {_serving(previous)}") from None
    verdict = run_check(box, box.settings["server_port"], gate.preview, gate.check)
    if verdict.ok:
        return offsets, verdict
    show_evidence(box, app, verdict, offsets)
    message = (
        f"{app} {rid} failed its health check before going live: GET {gate.check.path} -> {verdict.reason}; "
        + _serving(previous)
    )
    box.run(cmd.mark_app_failed(layout, app, rid, message), warn=True)
    raise RemoteError(message)


def _switch_bundle(box, app, release_dir, map_sha, nginx):
    """Switch a bundle live: its modules (waiting until the server serves each), then its map (its
    secrets file with it), then its static files' include when ``nginx`` (this bundle has one, or the
    live one had). RemoteError when the server rejects a module or the map, or nginx the include."""
    from .deploy import wait_for_app, wait_timeout

    layout = box.layout
    out = box.run(cmd.switch_bundle_modules(layout, release_dir)).stdout
    for line in out.splitlines():
        sha, _, name = line.partition("  ")
        if name.endswith(".wasm"):
            wait_for_app(box, name[:-5], sha, wait_timeout(box))
    box.run(
        cmd.chain(cmd.install_beside(f"{release_dir}/app.map", f"{layout.modules}/{app}.map"), cmd.hup_server(layout))
    )
    if map_sha:
        wait_for_map(box, app, map_sha, wait_timeout(box))
    has_static = box.run(cmd.file_exists(f"{release_dir}/nginx.conf"), warn=True).ok
    if has_static:
        box.run(cmd.switch_static_link(layout, app, release_dir))
    if has_static or nginx:
        src = f"{release_dir}/nginx.conf" if has_static else None
        res = box.run(cmd.apply_app_nginx_conf_if_changed(layout, app, src), warn=True)
        if not res.ok:
            raise RemoteError(f"nginx refused the static files' config of {app}: {res.stdout.strip()[-300:]}")


def _live_check_failed(box, app, rid, gate, verdict, offsets):
    """The check through nginx failed after the switch: the previous bundle back (or nothing served
    when there was none) unless --no-rollback, the release marked failed; raises RemoteError."""
    from . import healthgate as hg
    from .deploy import show_evidence

    layout = box.layout
    show_evidence(box, app, verdict, offsets)
    restored = False
    if gate.rollback:
        if gate.previous:
            switch_to_bundle(box, app, gate.previous)
        else:
            box.run(cmd.unpublish_app_map(layout, app))
        restored = True
    message = hg.live_failure_message(app, rid, gate.check, verdict, restored, gate.previous)
    box.run(cmd.mark_app_failed(layout, app, rid, message), warn=True)
    raise RemoteError(message)


def env_of(box, app):
    """``tiramisu env``: [{name, value, route}] of a deployed app; secret values are ``***``."""
    from .deploy import require_served

    require_served(box)
    out = box.run(cmd.app_env_sources(box.layout, app)).stdout
    map_text, _, secret_names = out.partition("==tiramisu-secrets==\n")
    if not map_text.strip():
        raise UsageError(f"{app} on {box.name} has no app map (deployed without tiramisu.toml or modules.toml)")
    rows = env_listing(map_text, [n for n in secret_names.split() if n])
    return {"host": box.name, "app": app, "env": [{"name": n, "value": v, "route": r} for n, v, r in rows]}


def _wait_static(box, spec, timeout=10.0):
    """After ``nginx -s reload`` (asynchronous), until nginx's new workers serve a static file."""
    files = sorted(p for p in spec.static.folder.rglob("*") if p.is_file())
    if not files:
        return
    path = spec.static.route.rstrip("/") + "/" + str(files[0].relative_to(spec.static.folder))
    deadline = time.monotonic() + timeout
    while box.http(box.settings["http_port"], path, timeout=10).status != 200:
        if time.monotonic() > deadline:
            raise RemoteError(f"nginx does not serve {path} of {spec.name} after its reload")
        time.sleep(0.1)


def switch_to_bundle(box, app, rid):
    """Put bundle ``rid`` live again: modules, map (and with it the secrets file it names), static
    files' include, CURRENT (see :func:`_switch_bundle`)."""
    layout = box.layout
    release_dir = f"{layout.app_releases(app)}/{rid}.d"
    map_text = box.run(cmd.read_file(f"{release_dir}/app.map")).stdout
    live_conf = box.run(cmd.file_exists(f"{layout.conf}/apps/{app}.conf"), warn=True).ok
    _switch_bundle(box, app, release_dir, hashlib.sha256(map_text.encode()).hexdigest(), live_conf)
    box.run(cmd.set_current_release(layout, app, rid))


def rollback_app(box, app, bundles, to=None, dry=False, failed=()):
    """Switch a manifest/module-map app back to an earlier bundle (``to``, else the newest older one
    not marked failed): its modules, its map with the secrets file that release was deployed with,
    its static files' include; data stays as it is. Returns {host, app, from, to}."""
    from .deploy import current_release
    from .plans import plan_rollback

    plan = plan_rollback(box.name, app, bundles, current_release(box, app), to, failed)
    box.show_plan(plan.text(), dry)
    result = {"host": box.name, "app": app, "from": plan.current, "to": plan.target}
    if dry:
        return {**result, "dry": True, "plan": plan.as_dict()}
    switch_to_bundle(box, app, plan.target)
    return result


# ------------------------------------------- under the box's lock (issue 13) ---


def deploy_app_held(box, lock, spec, keep=None, pin=False, environ=None, health=None):
    """:func:`deploy_app` while ``lock`` (boxlock.Held) is held, like :func:`deploy.deploy_held`:
    one history record whatever the outcome (no secret values: :mod:`history` keeps fixed fields),
    a failed attempt's bundle marked ``<id>.failed``, pruning by :func:`plans.plan_prune` (never the
    live, the previous good or a pinned bundle; their secrets files go with them), ``pin``
    (``--keep-release``) writes ``<id>.keep``. Same return value and errors as :func:`deploy_app`."""
    from . import history
    from .deploy import _history_record, _record_failure
    from .plans import plan_prune

    started, progress = time.monotonic(), {}
    app, layout = spec.name, box.layout
    try:
        summary = deploy_app(box, spec, keep=keep, environ=environ, health=health, progress=progress)
    except Exception as exc:
        rid = progress.get("release")
        if rid and progress.get("uploaded"):
            box.run(cmd.mark_release(layout, app, rid, "failed"), warn=True)
        _record_failure(
            box,
            lock,
            "deploy",
            app,
            started,
            exc,
            release=rid if progress.get("uploaded") else None,
            sha256=progress.get("sha256"),
            previous=progress.get("previous"),
        )
        raise
    rid = summary["release"]
    ids, failed, pinned = bundle_listing(box, app)
    steps = []
    if pin:
        steps.append(cmd.mark_release(layout, app, rid, "keep"))
        pinned = tuple(sorted(set(pinned) | {rid}))
    keep = int(keep or box.settings.get("keep_releases") or 5)
    plan = plan_prune(app, ids, rid, keep, previous=summary.get("previous"), pinned=pinned, failed=failed)
    summary.update(pinned=bool(pin), pruned=list(plan.delete))
    if plan.delete:
        box.note(plan.text())
        steps.append(cmd.delete_app_bundles(layout, app, plan.delete))
    record = _history_record(
        lock, "deploy", app, "ok", started, release=rid, sha256=summary.get("sha256"), previous=summary.get("previous")
    )
    lock.run_and_release(cmd.chain(*steps, history.append_command(layout, record)))
    return summary


def locked_deploy_app(box, spec, dry=False, keep=None, pin=False, wait=None, environ=None, health=None):
    """:func:`deploy_app_held` under the box's lock (``dry`` only observes: no lock, no history).
    Raises boxlock.LockBusy when another change holds the lock longer than ``wait`` seconds."""
    from . import boxlock

    if dry:
        return deploy_app(box, spec, dry=True, keep=keep, environ=environ, health=health)
    with boxlock.held(box, "deploy", spec.name, None, wait) as lock:
        return deploy_app_held(box, lock, spec, keep=keep, pin=pin, environ=environ, health=health)
