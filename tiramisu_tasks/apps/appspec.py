"""What an app is made of, whichever file described it (pure data + shared checks).

Both ``tiramisu.toml`` (:mod:`.manifest`) and a WAGI ``modules.toml``
(:mod:`.modulemap`) are read into an :class:`AppSpec`: the routes with what each
runs, the modules, plain environment, secret references (names only, never
values), volumes, static files, the health check and per-app limits. Deploy
works from this value alone.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional

from .tomlsource import TomlSource
from .wagiroutes import Pattern

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Variables the server sets per request: an app may not override them.
CGI_NAMES = frozenset(
    {
        "REQUEST_METHOD",
        "QUERY_STRING",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "SCRIPT_NAME",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "AUTH_TYPE",
        "GATEWAY_INTERFACE",
        "X_FULL_URL",
        "X_MATCHED_ROUTE",
        "X_RAW_PATH_INFO",
    }
)


@dataclass(frozen=True)
class Volume:
    """A folder preopened for the guest at ``guest``.

    ``writable`` False: ``source`` (a folder of the app) is shipped inside the
    release under ``ro/<name>``, read-only. True: the box keeps
    ``data/<app>/<name>``, which survives deploys; ``source`` (optional) seeds
    it on the first deploy only.
    """

    guest: str
    source: Optional[Path]
    writable: bool
    name: str


def box_name(text: str) -> str:
    """A folder name for a volume from a path (``/var/data`` -> ``var_data``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip(".") or "root"


@dataclass(frozen=True)
class Secret:
    """A secret named ``name`` in the guest, read locally at deploy time from ``env`` or ``env_file``."""

    name: str
    env: Optional[str] = None  # a variable of the local environment
    env_file: Optional[Path] = None  # a KEY=VALUE file outside the app folder
    key: Optional[str] = None  # the key in env_file (default: name)


@dataclass(frozen=True)
class RouteSpec:
    """One declared route: pattern, the module it runs (key into AppSpec.modules), entry point, argv, env, volumes."""

    pattern: Pattern
    module: str
    entrypoint: str = "_start"
    argv: Optional[str] = None
    environment: Dict[str, str] = field(default_factory=dict)
    volumes: List[Volume] = field(default_factory=list)
    line: Optional[int] = None


@dataclass(frozen=True)
class Static:
    folder: Path
    route: str  # URL prefix, ends without '/'
    spa_fallback: Optional[str] = None  # a file of the folder served for unknown paths
    not_found: Optional[str] = None  # a file of the folder served with 404
    cache_control: str = "public, max-age=300"


@dataclass(frozen=True)
class Health:
    path: str
    status: int = 200
    body: Optional[str] = None  # a substring the answer must contain


@dataclass(frozen=True)
class Limits:
    timeout_ms: Optional[int] = None
    memory_bytes: Optional[int] = None
    body_bytes: Optional[int] = None


@dataclass
class AppSpec:
    """An app as deploy sees it. ``kind`` is ``"manifest"`` or ``"modulemap"``; ``source_file`` is the file read."""

    name: str
    kind: str
    folder: Path
    source_file: Path
    routes: List[RouteSpec]
    modules: Dict[str, Path]  # key -> local .wasm/.wat file ("" key: built from the app's sources)
    environment: Dict[str, str] = field(default_factory=dict)
    secrets: List[Secret] = field(default_factory=list)
    volumes: List[Volume] = field(default_factory=list)  # app-wide, every route gets them
    static: Optional[Static] = None
    health: Optional[Health] = None
    limits: Limits = field(default_factory=Limits)
    build: Dict[str, str] = field(default_factory=dict)
    routes_declared: bool = True  # False: the default "/<name>/..." (a manifest without [[route]])

    def all_volumes(self) -> List[Volume]:
        """Every distinct volume (app-wide and per-route), by guest path."""
        seen, out = set(), []
        for v in list(self.volumes) + [v for r in self.routes for v in r.volumes]:
            if (v.guest, v.name, v.writable) not in seen:
                seen.add((v.guest, v.name, v.writable))
                out.append(v)
        return out

    def redacted(self) -> dict:
        """A JSON-able summary for --json/--dry: secret names only, values never known here."""
        return {
            "name": self.name,
            "kind": self.kind,
            "routes": [
                {"route": r.pattern.text, "module": r.module, "entrypoint": r.entrypoint, "argv": r.argv}
                for r in self.routes
            ],
            "environment": dict(self.environment),
            "secrets": {s.name: "***" for s in self.secrets},
            "volumes": [{"guest": v.guest, "writable": v.writable} for v in self.all_volumes()],
            "static": self.static.route if self.static else None,
        }


# ---------------------------------------------------------------- checks ---


def check_guest_path(src: TomlSource, table, key, value, index=0) -> str:
    """An absolute guest path (``/data``) without ``.``/``..`` segments."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise src.error(table, key, f'guest path must be absolute, like "/data", not {value!r}', index)
    parts = PurePosixPath(value).parts
    if any(p in (".", "..") for p in value.split("/")) or "\x00" in value:
        raise src.error(table, key, f"guest path {value!r} may not contain '.' or '..'", index)
    return str(PurePosixPath(*parts)) if parts else "/"


def inside_folder(src: TomlSource, table, key, folder: Path, value, index=0, must_exist=True) -> Path:
    """``value`` (relative to ``folder``) as a path that stays inside ``folder`` after symlinks."""
    if not isinstance(value, str) or not value:
        raise src.error(table, key, f"must be a path inside the app folder, not {value!r}", index)
    p = Path(value)
    if p.is_absolute():
        p_res = p.resolve()
    else:
        p_res = (folder / p).resolve()
    root = folder.resolve()
    if p_res != root and root not in p_res.parents:
        raise src.error(table, key, f"{value!r} leads outside the app folder {folder}", index)
    if must_exist and not p_res.exists():
        raise src.error(table, key, f"{value!r} does not exist in {folder}", index)
    return p_res


def no_symlinks_outside(src: TomlSource, table, key, folder: Path, index=0):
    """Refuse a shipped folder holding a symlink whose target is outside it (or dangling)."""
    root = folder.resolve()
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if (target != root and root not in target.parents) or not target.exists():
                    rel = p.relative_to(folder)
                    raise src.error(table, key, f"{folder.name}/{rel} is a symlink leading outside {folder}", index)


def check_environment(src: TomlSource, table, value, index=0, key=None) -> Dict[str, str]:
    """A table of NAME = value (string, integer or boolean; written as a string)."""
    where_key = key
    if not isinstance(value, dict):
        if where_key is None and table:
            raise src.error(table[:-1], table[-1], 'must be a table of NAME = "value"', index)
        raise src.error(table, where_key, 'must be a table of NAME = "value"', index)
    out = {}
    for name, v in value.items():
        k = where_key or name
        if not ENV_NAME_RE.match(name):
            raise src.error(table, k, f"{name!r} is not an environment variable name", index)
        if name in CGI_NAMES or name.startswith("HTTP_"):
            raise src.error(table, k, f"{name} is set by the server for every request", index)
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (int, float)):
            v = str(v)
        if not isinstance(v, str) or "\x00" in v or "\n" in v:
            raise src.error(table, k, f"{name}: value must be a one-line string", index)
        out[name] = v
    return out


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.I)
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")


def parse_size(src, table, key, value, lo, hi) -> int:
    """Bytes from an integer or ``"64M"``/``"512K"``/``"1G"`` (binary units)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        n = value
    elif isinstance(value, str) and _SIZE.match(value):
        m = _SIZE.match(value)
        unit = (m.group(2) or "B")[0].upper()
        n = int(m.group(1)) * {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit]
    else:
        raise src.error(table, key, f'{value!r} is not a size (bytes, or like "64M")')
    if not lo <= n <= hi:
        raise src.error(table, key, f"{value!r} is out of range ({lo}..{hi} bytes)")
    return n


def parse_duration_ms(src, table, key, value, lo_ms, hi_ms) -> int:
    """Milliseconds from a number of seconds or ``"500ms"``/``"10s"``/``"2m"``."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, (int, float)):
        ms = int(round(value * 1000))
    elif isinstance(value, str) and _TIME.match(value):
        m = _TIME.match(value)
        ms = int(round(float(m.group(1)) * {"ms": 1, "s": 1000, "m": 60000}[m.group(2) or "s"]))
    else:
        raise src.error(table, key, f'{value!r} is not a duration (seconds, or like "500ms", "10s")')
    if not lo_ms <= ms <= hi_ms:
        raise src.error(table, key, f"{value!r} is out of range ({lo_ms} ms..{hi_ms // 1000} s)")
    return ms


def unknown_keys(src: TomlSource, table, value: dict, known, index=0):
    """Refuse the first key of ``value`` not in ``known``, naming it and its line."""
    for k in value:
        if k not in known:
            raise src.error(table, k, f"unknown key (known: {', '.join(sorted(known))})", index)
