"""``tiramisu.toml``, the app manifest, read into an :class:`~.appspec.AppSpec`.

Every table and key (all optional but ``[app] name`` is recommended)::

    [app]
    name = "guestbook"                 # default: the folder's name

    [build]
    language = "c"                     # default: detected from the sources
    source = "."                       # folder holding the sources, inside the app
    module = "dist/app.wasm"           # a prebuilt .wasm/.wat instead of building

    [[route]]                          # default: one route "/<name>/..." running _start
    path = "/guestbook/..."            # exact "/a", wildcard "/a/...", root "/"
    entrypoint = "_start"              # the export called for this route
    argv = "${SCRIPT_NAME} ${ARGS}"    # default: WAGI's (request path, then query items)
    environment = { MODE = "admin" }   # added to the app's [environment] for this route

    [environment]                      # plain values, visible in --dry and history
    GREETING = "Hello"

    [secrets]                          # values read on this machine at deploy time
    ADMIN_TOKEN = "GUESTBOOK_TOKEN"    # from the local environment variable
    DB_KEY = { env_file = "~/.config/gb.env", key = "DB_KEY" }   # from a KEY=VALUE file outside the app

    [[volume]]
    source = "templates"               # shipped with each release, read-only
    guest = "/templates"
    [[volume]]
    guest = "/data"                    # data/<app>/data on the box, kept across deploys
    writable = true
    source = "seed"                    # optional: copied in on the first deploy only

    [static]
    folder = "static"                  # served by nginx, no guest runs
    route = "/guestbook/static"        # default "/<name>/static"
    spa_fallback = "index.html"        # served for paths with no file (default: none)
    not_found = "404.html"             # served with status 404 (default: nginx's)
    cache_control = "public, max-age=300"

    [health]
    path = "/guestbook/"               # what deploy checks (default: the first route)
    status = 200
    body = "Guestbook"                 # a substring the answer must contain

    [limits]
    timeout = "10s"                    # per request (seconds or "500ms"/"10s"/"2m")
    memory = "64M"                     # per instance (bytes or "64M")
    body = "1M"                        # request body

Unknown tables and keys are refused with ``FILE:LINE: table.key: ...`` (exit
2), as are routes under ``/_tiramisu``, paths leading outside the app folder,
shipped folders holding symlinks that lead outside, an ``env_file`` inside the
app folder (it would be shipped or committed) and secrets that share a name
with the environment.
"""

from pathlib import Path
from typing import Optional

from ..appnames import is_app_name, sanitize_app_name, validate_app_name
from .appspec import (
    ENV_NAME_RE,
    AppSpec,
    Health,
    Limits,
    RouteSpec,
    Secret,
    Static,
    Volume,
    box_name,
    check_environment,
    check_guest_path,
    inside_folder,
    no_symlinks_outside,
    parse_duration_ms,
    parse_size,
    unknown_keys,
)
from .tomlsource import TomlSource, load_toml, tomllib
from .wagiroutes import RouteError, check_argv_template, check_entrypoint, check_route

MANIFEST_FILE = "tiramisu.toml"
TOP_KEYS = {"app", "build", "route", "environment", "secrets", "volume", "static", "health", "limits"}
# The stub `tiramisu init` writes has these two at the top: the same as [app] name and [build] language.
STUB_KEYS = {"name", "language"}
APP_KEYS = {"name", "description"}
BUILD_KEYS = {"language", "source", "module"}
ROUTE_KEYS = {"path", "entrypoint", "argv", "environment"}
VOLUME_KEYS = {"source", "guest", "writable"}
STATIC_KEYS = {"folder", "route", "spa_fallback", "not_found", "cache_control"}
HEALTH_KEYS = {"path", "status", "body"}
LIMIT_KEYS = {"timeout", "memory", "body"}
SECRET_KEYS = {"env", "env_file", "key"}


def _table(src: TomlSource, key: str, known) -> dict:
    value = src.data.get(key, {})
    if not isinstance(value, dict):
        raise src.error((), key, f"must be a table [{key}]")
    unknown_keys(src, (key,), value, known)
    return value


def _array(src: TomlSource, key: str) -> list:
    value = src.data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise src.error((), key, f"must be written as [[{key}]] tables")
    return value


def _string(src, table, key, value, index=0) -> str:
    if not isinstance(value, str) or not value:
        raise src.error(table, key, f"must be a non-empty string, not {value!r}", index)
    return value


def _checked(src, table, key, index, check, value):
    try:
        return check(value)
    except RouteError as exc:
        raise src.error(table, key, str(exc), index) from None


def _secrets(src: TomlSource, folder: Path, env: dict):
    table = _table(src, "secrets", set(src.data.get("secrets", {}) or {}))
    out = []
    for name, ref in table.items():
        t = ("secrets",)
        if not ENV_NAME_RE.match(name):
            raise src.error(t, name, f"{name!r} is not an environment variable name")
        if name in env:
            raise src.error(t, name, f"{name} is also in [environment]; a name is either plain or secret")
        if isinstance(ref, str):
            if not ENV_NAME_RE.match(ref):
                raise src.error(t, name, f"{ref!r} is not the name of a local environment variable")
            out.append(Secret(name, env=ref))
            continue
        if not isinstance(ref, dict):
            raise src.error(t, name, 'must be "LOCAL_VAR" or { env = "VAR" } or { env_file = "path", key = "K" }')
        unknown_keys(src, t, ref, SECRET_KEYS)
        if ("env" in ref) == ("env_file" in ref):
            raise src.error(t, name, 'give exactly one of env = "VAR" or env_file = "path"')
        if "env" in ref:
            if not isinstance(ref["env"], str) or not ENV_NAME_RE.match(ref["env"]):
                raise src.error(t, name, f"env: {ref['env']!r} is not a variable name")
            out.append(Secret(name, env=ref["env"]))
            continue
        raw = _string(src, t, name, ref["env_file"])
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = folder / p
        p = p.resolve()
        root = folder.resolve()
        if p == root or root in p.parents:
            raise src.error(t, name, f"env_file {raw!r} is inside the app folder; keep secrets outside the repository")
        key = ref.get("key", name)
        if not isinstance(key, str) or not ENV_NAME_RE.match(key):
            raise src.error(t, name, f"key: {key!r} is not a variable name")
        out.append(Secret(name, env_file=p, key=key))
    return out


def parse_manifest(path, name: Optional[str] = None) -> AppSpec:
    """``path`` (a tiramisu.toml) as an AppSpec; ``name`` overrides ``[app] name`` for one run.

    Raises UsageError (exit 2) naming file, line and key for any problem.
    Reads the file system only to check that named paths exist and stay inside
    the app folder.
    """
    src = load_toml(path)
    folder = Path(path).resolve().parent
    unknown_keys(src, (), src.data, TOP_KEYS | STUB_KEYS)
    app = dict(_table(src, "app", APP_KEYS))
    for stub, table, key in (("name", app, "name"), ("language", None, "language")):
        if stub in src.data:
            if not isinstance(src.data[stub], str):
                raise src.error((), stub, "must be a string")
            if table is not None:
                if table.get(key, src.data[stub]) != src.data[stub]:
                    raise src.error((), stub, f"differs from [app] {key}")
                table[key] = src.data[stub]
    if name is None:
        name = app.get("name")
        if name is not None and (not isinstance(name, str) or not is_app_name(name)):
            raise src.error(("app",), "name", f"invalid app name {name!r}: use a-z, 0-9, '_' or '-'")
        name = name or sanitize_app_name(folder.name) or "app"

    build = dict(_table(src, "build", BUILD_KEYS))
    if "language" in src.data:
        if build.get("language", src.data["language"]) != src.data["language"]:
            raise src.error((), "language", "differs from [build] language")
        build["language"] = src.data["language"]
    build_out = {}
    modules = {}
    for k in ("language", "source"):
        if k in build:
            build_out[k] = _string(src, ("build",), k, build[k])
    if "source" in build:
        inside_folder(src, ("build",), "source", folder, build["source"])
    if "module" in build:
        mod = inside_folder(src, ("build",), "module", folder, _string(src, ("build",), "module", build["module"]))
        if mod.suffix.lower() not in (".wasm", ".wat") or not mod.is_file():
            raise src.error(("build",), "module", f"{build['module']!r} is not a .wasm or .wat file")
        modules[name] = mod
    else:
        modules[name] = None  # built from the sources at deploy time

    environment = check_environment(src, ("environment",), src.data.get("environment", {}))
    secrets = _secrets(src, folder, environment)

    routes, seen = [], {}
    raw_routes = _array(src, "route") or [{"path": f"/{name}/..."}]
    for i, r in enumerate(raw_routes):
        t = ("route",)
        unknown_keys(src, t, r, ROUTE_KEYS, i)
        if "path" not in r:
            raise src.error(t, None, f"route[{i}] has no 'path'", i)
        pat = _checked(src, t, "path", i, check_route, r["path"])
        ep = _checked(src, t, "entrypoint", i, check_entrypoint, r.get("entrypoint", "_start"))
        if r.get("argv") is not None:
            _checked(src, t, "argv", i, check_argv_template, r["argv"])
        if pat.text in seen:
            raise src.error(t, "path", f"{pat.text} is already route[{seen[pat.text]}]", i)
        seen[pat.text] = i
        env = check_environment(src, t, r.get("environment", {}), i, key="environment")
        clash = sorted(set(env) & {s.name for s in secrets})
        if clash:
            raise src.error(t, "environment", f"{clash[0]} is a secret of this app", i)
        routes.append(RouteSpec(pat, name, ep, r.get("argv"), env, [], src.line_of(t, "path", i)))

    volumes, guests = [], set()
    for i, v in enumerate(_array(src, "volume")):
        t = ("volume",)
        unknown_keys(src, t, v, VOLUME_KEYS, i)
        if "guest" not in v:
            raise src.error(t, None, f"volume[{i}] has no 'guest' path", i)
        guest = check_guest_path(src, t, "guest", v["guest"], i)
        if guest in guests:
            raise src.error(t, "guest", f"{guest} is already the guest path of another volume", i)
        guests.add(guest)
        writable = v.get("writable", False)
        if not isinstance(writable, bool):
            raise src.error(t, "writable", "must be true or false", i)
        source = None
        if "source" in v:
            source = inside_folder(src, t, "source", folder, v["source"], i)
            if not source.is_dir():
                raise src.error(t, "source", f"{v['source']!r} is not a folder", i)
            if source == folder.resolve():
                raise src.error(t, "source", "cannot be the app folder itself", i)
            no_symlinks_outside(src, t, "source", source, i)
        elif not writable:
            raise src.error(t, "source", f"volume[{i}] is read-only and needs a source folder", i)
        volumes.append(Volume(guest, source, writable, box_name(guest)))

    static = None
    st = _table(src, "static", STATIC_KEYS)
    if st:
        t = ("static",)
        if "folder" not in st:
            raise src.error(t, None, '[static] needs folder = "..."')
        sf = inside_folder(src, t, "folder", folder, st["folder"])
        if not sf.is_dir():
            raise src.error(t, "folder", f"{st['folder']!r} is not a folder")
        no_symlinks_outside(src, t, "folder", sf)
        route = st.get("route", f"/{name}/static")
        try:
            sp = check_route(route)
        except RouteError as exc:
            raise src.error(t, "route", str(exc)) from None
        if sp.wildcard or sp.base == "/":
            raise src.error(t, "route", "a static route is a URL prefix like \"/app/static\" (no '/...', not '/')")
        for r in routes:
            if not r.pattern.wildcard and (r.pattern.base == sp.base or r.pattern.base.startswith(sp.base + "/")):
                raise src.error(t, "route", f"{sp.base} would hide the exact route {r.pattern.text}")
        files = {}
        for k in ("spa_fallback", "not_found"):
            if k in st:
                f = _string(src, t, k, st[k])
                p = inside_folder(src, t, k, sf, f)
                if not p.is_file():
                    raise src.error(t, k, f"{f!r} is not a file of {st['folder']}")
                files[k] = str(p.relative_to(sf))
        cc = st.get("cache_control", "public, max-age=300")
        if not isinstance(cc, str) or any(c in cc for c in "\n\r;{}\"'\\"):
            raise src.error(t, "cache_control", 'must be a Cache-Control value such as "public, max-age=300"')
        static = Static(sf, sp.base, files.get("spa_fallback"), files.get("not_found"), cc)

    hl = _table(src, "health", HEALTH_KEYS)
    health = None
    if hl or routes:
        t = ("health",)
        first = routes[0].pattern
        default = first.base + "/" if first.wildcard and first.base else (first.base or "/")
        path_ = hl.get("path", default)
        if not isinstance(path_, str) or not path_.startswith("/") or any(c in path_ for c in " \n\r\t#"):
            raise src.error(t, "path", f"{path_!r} is not a request path")
        status = hl.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise src.error(t, "status", f"{status!r} is not an HTTP status")
        body = hl.get("body")
        if body is not None and not isinstance(body, str):
            raise src.error(t, "body", "must be a string the answer contains")
        health = Health(path_, status, body)

    lm = _table(src, "limits", LIMIT_KEYS)
    t = ("limits",)
    limits = Limits(
        parse_duration_ms(src, t, "timeout", lm["timeout"], 1, 3600 * 1000) if "timeout" in lm else None,
        parse_size(src, t, "memory", lm["memory"], 1 << 20, 4 << 30) if "memory" in lm else None,
        parse_size(src, t, "body", lm["body"], 0, 1 << 30) if "body" in lm else None,
    )
    spec = AppSpec(
        name, "manifest", folder, src.path, routes, modules, environment, secrets, volumes, static, health, limits
    )
    spec.build = build_out
    spec.routes_declared = bool(src.data.get("route"))
    return spec


def find_app_file(folder) -> Optional[Path]:
    """The manifest or module map a source folder holds (tiramisu.toml first), or None."""
    folder = Path(folder)
    if folder.is_file():
        # any other .toml given as the source is a WAGI module map under another
        # name (WAGI's `-c FILE`, e.g. hello-wagi's example-wagi.toml)
        return folder if folder.suffix.lower() == ".toml" else None
    for name in (MANIFEST_FILE, "modules.toml"):
        if (folder / name).is_file():
            return folder / name
    return None


def needs_app_deploy(folder) -> bool:
    """Whether deploying ``folder`` takes the manifest/module-map path (appdeploy):
    a WAGI modules.toml, or a tiramisu.toml with more than the `tiramisu init`
    stub's keys. A stub-only manifest (name, language) deploys like any project
    folder, with the health gate, history and every deploy flag."""
    f = find_app_file(folder)
    if f is None:
        return False
    if f.name != MANIFEST_FILE:
        return True
    try:
        data = tomllib.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True  # the app path reports it with file and line
    return not set(data) <= STUB_KEYS


def read_app(folder, name: Optional[str] = None) -> Optional[AppSpec]:
    """The AppSpec a folder describes, or None when it has neither file. UsageError on a bad one."""
    from .modulemap import parse_module_map

    f = find_app_file(folder)
    if f is None:
        return None
    if name is not None:
        validate_app_name(name)  # --name reaches paths on the box: checked before anything else
    if f.name == MANIFEST_FILE:
        return parse_manifest(f, name)
    return parse_module_map(f, name)
