"""A WAGI ``modules.toml`` read as it is into an :class:`~.appspec.AppSpec` (pure but for reading files).

The format (deislabs/wagi ``docs/configuring_and_running.md``): a list of
``[[module]]`` tables with

* ``route`` (required): exact ``/a``, wildcard ``/a/...``, root ``/``;
* ``module`` (required): a ``.wasm`` or ``.wat`` file as a path (relative paths
  resolved against the map's folder) or a ``file:`` URL; ``bindle:`` and
  ``oci:`` references are refused (no registry is reachable from deploy);
* ``entrypoint`` (default ``_start``), ``argv`` (a ``${SCRIPT_NAME} ${ARGS}``
  template, as Spin's WAGI executor takes), ``environment`` (a table);
* ``volumes`` = { "/guest" = "host folder" }: each becomes a writable data
  folder of the app on the box, seeded from the local folder on the first
  deploy only (WAGI volumes were live host folders); the local folder must be
  inside the map's folder;
* ``allowed_hosts``: refused unless empty (WASI preview 1 modules here get no
  sockets, and the server offers no outbound HTTP);
* ``repository``, ``bindle_server`` and ``http_max_concurrency`` are accepted
  and have no effect (reserved or outbound-HTTP only in WAGI); so is the
  top-level ``default_host``.

A relative module path is looked up beside the map first, then (as WAGI did)
in the current directory.

Anything else is refused with ``FILE:LINE: module[N].key: ...`` (exit 2).
"""

from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

from ..appnames import sanitize_app_name
from ..errors import UsageError
from .appspec import (
    AppSpec,
    RouteSpec,
    Volume,
    box_name,
    check_environment,
    check_guest_path,
    inside_folder,
    no_symlinks_outside,
    unknown_keys,
)
from .tomlsource import TomlSource, load_toml
from .wagiroutes import RouteError, check_argv_template, check_entrypoint, check_route

MAP_FILE = "modules.toml"
MODULE_KEYS = frozenset(
    {
        "route",
        "module",
        "entrypoint",
        "argv",
        "environment",
        "volumes",
        "allowed_hosts",
        "repository",
        "bindle_server",
        "http_max_concurrency",
    }
)
MODULE_SUFFIXES = (".wasm", ".wat")
# default_host: WAGI's host name for requests without one; accepted, no effect
# here (the box's nginx passes the client's Host).
TOP_KEYS = frozenset({"module", "default_host"})


def module_path(src: TomlSource, index: int, ref, folder: Path) -> Path:
    """The local file a ``module`` reference names; UsageError when unusable."""
    table = ("module",)
    if not isinstance(ref, str) or not ref:
        raise src.error(table, "module", "must be a path or file: URL of a .wasm or .wat file", index)
    if ref.startswith("file:"):
        u = urlparse(ref)
        if u.netloc not in ("", "localhost"):
            raise src.error(table, "module", f"{ref!r}: a file: URL names a local file (file:///path)", index)
        raw = unquote(u.path or "")
        p = Path(raw)
    elif ":" in ref.split("/", 1)[0] and not Path(ref).exists():
        scheme = ref.split(":", 1)[0]
        raise src.error(
            table,
            "module",
            f"{ref!r}: {scheme}: references are not supported; build or fetch the module into a file",
            index,
        )
    else:
        p = Path(ref)
    if not p.is_absolute():
        # WAGI resolves relative paths against its working directory; maps
        # written for that (WAGI's own examples/modules.toml names
        # "examples/hello.wat") still deploy unchanged from where they ran.
        beside, from_cwd = folder / p, Path.cwd() / p
        p = from_cwd if not beside.is_file() and from_cwd.is_file() else beside
    if p.suffix.lower() not in MODULE_SUFFIXES:
        raise src.error(table, "module", f"{ref!r} is not a .wasm or .wat file", index)
    if not p.is_file():
        raise src.error(table, "module", f"{ref!r}: no such file ({p})", index)
    return p.resolve()


def parse_module_map(path, name: Optional[str] = None) -> AppSpec:
    """``path`` (a modules.toml) as an AppSpec named ``name`` (default: the folder's name).

    Raises UsageError (exit 2) naming file, line and key for any problem.
    """
    src = load_toml(path)
    folder = Path(path).resolve().parent
    data = src.data
    unknown_keys(src, (), data, TOP_KEYS)
    entries = data.get("module")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UsageError(f"{src.path}: no [[module]] entries (a WAGI module map lists [[module]] tables)")
    app = name or sanitize_app_name(folder.name) or "app"
    routes, modules, seen = [], {}, {}
    for i, e in enumerate(entries):
        t = ("module",)
        unknown_keys(src, t, e, MODULE_KEYS, i)
        for req in ("route", "module"):
            if req not in e:
                raise src.error(t, None, f"module[{i}] has no '{req}'", i)
        try:
            pat = check_route(e["route"])
        except RouteError as exc:
            raise src.error(t, "route", str(exc), i) from None
        if pat.text in seen:
            raise src.error(t, "route", f"{pat.text} is already the route of module[{seen[pat.text]}]", i)
        seen[pat.text] = i
        mod = module_path(src, i, e["module"], folder)
        key = next((k for k, p in modules.items() if p == mod), None)
        if key is None:
            # the key names files on the box (APP.KEY.wasm, logs/apps/APP.KEY.log):
            # app-name characters only, whatever the module's file is called
            stem = sanitize_app_name(mod.stem) or "module"
            key = stem if stem not in modules else f"{stem}-{i}"
            modules[key] = mod
        ep = e.get("entrypoint", "_start")
        try:
            ep = check_entrypoint(ep)
        except RouteError as exc:
            raise src.error(t, "entrypoint", str(exc), i) from None
        argv = e.get("argv")
        if argv is not None:
            try:
                check_argv_template(argv)
            except RouteError as exc:
                raise src.error(t, "argv", str(exc), i) from None
        env = check_environment(src, t, e.get("environment", {}), i, key="environment")
        hosts = e.get("allowed_hosts")
        if hosts not in (None, []):
            raise src.error(
                t,
                "allowed_hosts",
                "outbound HTTP is not available: WASI preview 1 modules here have no sockets; remove allowed_hosts",
                i,
            )
        vols = []
        raw_vols = e.get("volumes", {})
        if not isinstance(raw_vols, dict):
            raise src.error(t, "volumes", 'must be a table {"/guest/path" = "folder"}', i)
        for guest, host in raw_vols.items():
            g = check_guest_path(src, t, "volumes", guest, i)
            hp = inside_folder(src, t, "volumes", folder, host, i)
            if not hp.is_dir():
                raise src.error(t, "volumes", f"{host!r} is not a folder", i)
            no_symlinks_outside(src, t, "volumes", hp, i)
            vols.append(Volume(g, hp, True, box_name(str(hp.relative_to(folder))) if hp != folder else "root"))
        routes.append(RouteSpec(pat, key, ep, argv, env, vols, src.line_of(t, "route", i)))
    return AppSpec(app, "modulemap", folder, src.path, routes, modules)
