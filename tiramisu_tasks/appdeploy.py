"""Deploy of an app described by ``tiramisu.toml`` or a WAGI ``modules.toml``.

A release is a bundle, immutable once uploaded::

    releases/<app>/<id>.d/modules/<module>.wasm   every module of the app
    releases/<app>/<id>.d/ro/<name>/...            read-only volumes
    releases/<app>/<id>.d/www/<static route>/...   static files (nginx serves them)
    releases/<app>/<id>.d/app.map                  the app map (routes, env, folders)
    releases/<app>/<id>.d/app.json                 what was deployed (secret names only)

beside it, never inside it::

    secrets/<app>.env          0600, KEY=VALUE, resolved on this machine at deploy time
    data/<app>/<name>/         writable volumes: seeded on the first deploy only, never
                               overwritten or deleted by deploy

Going live: each module is renamed into ``wasm_modules/<app>.<module>.wasm``
(the server compiles it off the request path and reads its ``_routes``), then
the map into ``wasm_modules/<app>.map`` (the server re-reads it; a map it
cannot parse is refused and the previous one keeps serving). Deploy then
checks the manifest's health path through nginx.

Secrets: values are read here (environment or a ``.env`` file outside the
app), uploaded in the same verified batch as the release, and never printed,
logged, returned in --json/--dry (``***``) or kept in the release.
"""

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
    lines = [
        f"# {spec.name}: static files, written by tiramisu deploy (release {posixpath_basename(release_dir)})",
        f"location = {prefix} {{ return 301 {prefix}/; }}",
        f"location ^~ {prefix}/ {{",
        f"    root {release_dir}/www;",
        # Open files and stat results (try_files' too) are cached by path: safe only because the
        # root above names the release folder itself, which never changes once unpacked, and
        # deploy/rollback point this include at another folder and reload nginx (new workers,
        # empty caches). A root through a link switched without a reload must drop this line,
        # or nginx serves the previous release's files for up to a minute. Without it a 1 KiB
        # file cost more CPU than a plain `location / { root ...; }` (bench/static_bench.py).
        "    open_file_cache max=1000 inactive=60s;",
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
        f"    try_files $uri {fallback}=404;",
    ]
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
        validate_file(path)
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


def deploy_app(box, spec: AppSpec, dry=False, build=None, environ=None, keep=None):
    """Deploy ``spec`` to one served box; returns the summary (secrets as ``***``).

    Order: resolve secrets and build here (nothing on the box changes if
    either fails), refuse exact routes another app claims, upload the bundle
    and secrets in one verified batch, seed missing data folders, switch the
    modules then the map, check the health path. RemoteError when the server
    rejects a module or the health check fails (the new map is not installed
    when a module fails; data is never touched).
    """
    from .deploy import require_served, wait_timeout

    started = time.monotonic()
    secrets = resolve_secrets(spec, environ)
    require_served(box)
    layout = box.layout
    names = module_names(spec)
    others = parse_maps_dump(box.run(cmd.dump_app_maps(layout)).stdout)
    clash = route_conflicts(spec, others)
    if clash:
        route, other = clash[0]
        raise UsageError(f"route {route} is already served by app {other}; remove it there first")
    workdir = Path(tempfile.mkdtemp(prefix="tiramisu-app-"))
    try:
        modules = collect_modules(spec, workdir, build)
        rid = release_id(bundle_digest(spec, modules))
        release_dir = f"{layout.app_releases(spec.name)}/{rid}.d"
        data_dir = f"{layout.root}/data/{spec.name}"
        secrets_file = f"{layout.root}/secrets/{spec.name}.env" if spec.secrets else None
        map_text = app_map_text(spec, names, release_dir, data_dir, secrets_file)
        summary = {
            "host": box.name,
            "app": spec.name,
            "kind": spec.kind,
            "release": rid,
            "routes": [r.pattern.text for r in spec.routes],
            "secrets": {k: REDACTED for k in secrets},
            "dry": dry,
            "url": box.url(spec.health.path if spec.health else spec.routes[0].pattern.script_name),
        }
        box.show_plan(f"{spec.name}: release {rid}, {len(modules)} module(s), {len(spec.routes)} route(s)", dry)
        if dry:
            summary["plan"] = spec.redacted()
            return summary
        tar_path = workdir / "bundle.tar"
        write_bundle(spec, modules, names, map_text, tar_path, release_dir)
        uploads = [Upload.of(tar_path, f"{release_dir}.tar", "600")]
        if secrets_file:
            sec = workdir / "secrets.env"
            fd = os.open(sec, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write("".join(f"{k}={v}\n" for k, v in secrets.items()))
            uploads.append(Upload.of(sec, f"{secrets_file}.new", "600"))
        box.run(cmd.prepare_app_dirs(layout, spec.name))
        box.upload(uploads)
        seeds = [v.name for v in spec.all_volumes() if v.writable]
        box.run(cmd.unpack_app_release(release_dir, data_dir, seeds, secrets_file))
        shas = {names[key]: __import__("hashlib").sha256(p.read_bytes()).hexdigest() for key, p in modules.items()}
        # every module live in one command (as rollback does), not one SSH round trip per module
        box.run(cmd.switch_bundle_modules(layout, release_dir))
        _wait_for_modules(box, shas, wait_timeout(box))
        box.run(cmd.install_beside(f"{release_dir}/app.map", f"{layout.modules}/{spec.name}.map"))
        box.run(cmd.hup_server(layout))
        if spec.static or others.get(spec.name) is not None:
            src = f"{release_dir}/nginx.conf" if spec.static else None
            res = box.run(cmd.apply_app_nginx_conf(layout, spec.name, src), warn=True)
            if not res.ok:
                raise RemoteError(f"nginx refused the static files' config of {spec.name}: {res.stdout.strip()[-300:]}")
            if spec.static:
                _wait_static(box, spec)
        box.run(cmd.set_current_release(layout, spec.name, rid))
        health = spec.health
        status, text = None, ""
        if health is not None:
            deadline = time.monotonic() + 15
            while True:
                resp = box.http(box.settings["http_port"], health.path, timeout=30)
                status, text = resp.status, resp.text
                ok = status == health.status and (health.body is None or health.body in text)
                if ok or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if not ok:
                raise RemoteError(
                    f"{spec.name} is live but its health check {health.path} answered HTTP {status}"
                    + (f" without {health.body!r}" if health.body and status == health.status else "")
                )
        keep = int(keep or box.settings.get("keep_releases") or 5)
        box.run(cmd.prune_app_bundles(layout, spec.name, keep, rid))
        summary.update(changed=True, status=status, seconds=round(time.monotonic() - started, 2))
        return summary
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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


def _wait_for_modules(box, shas, timeout):
    """Until the server serves every ``{module: sha256}``: one ``/_tiramisu/apps`` request for all of
    them, then :func:`deploy.wait_for_app` (its polling and errors) for each one not active yet.
    (A warm deploy of a module map mostly changes no module or one: one request instead of one per module.)
    """
    from .deploy import server_apps, wait_for_app

    try:
        apps = server_apps(box)
    except TiramisuError:
        apps = {}
    for module, sha in shas.items():
        seen = apps.get(module) or {}
        if seen.get("sha256") != sha or seen.get("state") != "active":
            wait_for_app(box, module, sha, timeout)


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


def app_bundles(box, app):
    """Release ids of the app's bundles, newest first ([] for a plain module app)."""
    out = box.run(cmd.list_app_bundles(box.layout, app)).stdout.split()
    return sorted((n[:-2] for n in out if n.endswith(".d")), reverse=True)


def rollback_app(box, app, bundles, to=None, dry=False):
    """Switch a manifest/module-map app back to an earlier bundle: its modules, then its map, then
    its static files' include (data and secrets stay as they are). Returns {host, app, from, to}."""
    from .deploy import current_release, wait_for_app, wait_timeout
    from .plans import plan_rollback

    layout = box.layout
    plan = plan_rollback(box.name, app, bundles, current_release(box, app), to)
    box.show_plan(plan.text(), dry)
    result = {"host": box.name, "app": app, "from": plan.current, "to": plan.target}
    if dry:
        return {**result, "dry": True, "plan": plan.as_dict()}
    release_dir = f"{layout.app_releases(app)}/{plan.target}.d"
    out = box.run(cmd.switch_bundle_modules(layout, release_dir)).stdout
    for line in out.splitlines():
        sha, _, name = line.partition("  ")
        if name.endswith(".wasm"):
            wait_for_app(box, name[:-5], sha, wait_timeout(box))
    box.run(cmd.install_beside(f"{release_dir}/app.map", f"{layout.modules}/{app}.map"))
    box.run(cmd.hup_server(layout))
    has_static = box.run(cmd.file_exists(f"{release_dir}/nginx.conf"), warn=True).ok
    live_conf = box.run(cmd.file_exists(f"{layout.conf}/apps/{app}.conf"), warn=True).ok
    if has_static or live_conf:
        src = f"{release_dir}/nginx.conf" if has_static else None
        res = box.run(cmd.apply_app_nginx_conf(layout, app, src), warn=True)
        if not res.ok:
            raise RemoteError(f"nginx refused the static files' config of {app}: {res.stdout.strip()[-300:]}")
    box.run(cmd.set_current_release(layout, app, plan.target))
    return result
