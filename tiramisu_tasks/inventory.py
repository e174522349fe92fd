"""The host inventory: ``tiramisu.yaml``.

Which file (first match wins; documented in the README):

1. ``$TIRAMISU_INVENTORY`` — names the file explicitly (created if missing);
2. ``tiramisu.yaml`` in the current directory or the nearest parent;
3. the user-level file ``<user dir>/tiramisu.yaml`` (see :mod:`paths`), which is
   also where a first ``host.add`` writes when neither of the above exists.

Format::

    defaults: {http_port: 8080}          # settings for every host
    hosts:
      pi:
        hostname: 192.168.1.20
        user: pi                         # optional: ssh_config / local user
        port: 22                         # optional
        key: ~/.ssh/id_ed25519           # a path; never a password
        groups: [lab]
        settings: {env_dir: ~/tiramisu-env, http_port: 8080}
        facts: {arch: aarch64, libc: glibc, ...}   # written by host.check

Accepted host keys are stored beside the file, in ``tiramisu_known_hosts``.
"""

import contextlib
import fcntl
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from .config import HOST_SETTINGS, INVENTORY_SETTINGS
from .errors import InventoryError, LocalError, UsageError
from .options import parse_setting
from .paths import user_dir

FILENAME = "tiramisu.yaml"
KNOWN_HOSTS_NAME = "tiramisu_known_hosts"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

_thread_lock = threading.RLock()


def find_inventory_path(cwd=None, environ=None):
    """Pure-ish lookup of the inventory file by the rules above."""
    environ = os.environ if environ is None else environ
    explicit = environ.get("TIRAMISU_INVENTORY")
    if explicit:
        return Path(explicit).expanduser()
    here = Path(cwd or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / FILENAME
        if candidate.is_file():
            return candidate
    return user_dir() / FILENAME


@dataclass
class HostEntry:
    name: str
    hostname: str
    user: Optional[str] = None
    port: Optional[int] = None
    key: Optional[str] = None
    groups: List[str] = field(default_factory=list)
    settings: Dict[str, object] = field(default_factory=dict)
    facts: Dict[str, object] = field(default_factory=dict)

    def to_yaml(self):
        data = {"hostname": self.hostname}
        for attr in ("user", "port", "key"):
            value = getattr(self, attr)
            if value not in (None, ""):
                data[attr] = value
        if self.groups:
            data["groups"] = list(self.groups)
        if self.settings:
            data["settings"] = dict(self.settings)
        if self.facts:
            data["facts"] = dict(self.facts)
        return data

    @classmethod
    def from_yaml(cls, name, data):
        if not isinstance(data, dict) or not data.get("hostname"):
            raise InventoryError(f"inventory entry {name!r} needs a 'hostname'")
        settings = check_settings(data.get("settings") or {}, HOST_SETTINGS, f"inventory entry {name!r}")
        port = data.get("port")
        return cls(
            name=name,
            hostname=str(data["hostname"]),
            user=data.get("user"),
            port=int(port) if port not in (None, "") else None,
            key=data.get("key"),
            groups=list(data.get("groups") or []),
            settings=dict(settings),
            facts=dict(data.get("facts") or {}),
        )

    def public_dict(self):
        d = {"name": self.name, **self.to_yaml()}
        d.setdefault("groups", [])
        d.setdefault("settings", {})
        d.setdefault("facts", {})
        return d


class Inventory:
    def __init__(self, path, hosts=None, defaults=None):
        self.path = Path(path)
        self.hosts: Dict[str, HostEntry] = hosts or {}
        self.defaults: Dict[str, object] = defaults or {}

    # ---------------------------------------------------------- loading ---
    @classmethod
    def load(cls, path=None):
        path = Path(path) if path else find_inventory_path()
        if not path.exists():
            return cls(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InventoryError(f"cannot parse inventory {path}: {exc}".splitlines()[0]) from exc
        if not isinstance(data, dict):
            raise InventoryError(f"inventory {path} must be a mapping with 'hosts:'")
        hosts = {}
        for name, entry in (data.get("hosts") or {}).items():
            hosts[str(name)] = HostEntry.from_yaml(str(name), entry)
        defaults = check_settings(data.get("defaults") or {}, INVENTORY_SETTINGS, f"inventory {path} defaults:")
        return cls(path, hosts, defaults)

    @property
    def known_hosts_path(self):
        return self.path.parent / KNOWN_HOSTS_NAME

    # --------------------------------------------------------- querying ---
    def get(self, name):
        return self.hosts.get(name)

    def require(self, name):
        entry = self.hosts.get(name)
        if entry is None:
            known = ", ".join(sorted(self.hosts)) or "none"
            raise InventoryError(f"unknown host {name!r} in {self.path} (known: {known})")
        return entry

    def groups(self):
        out = {}
        for entry in self.hosts.values():
            for group in entry.groups:
                out.setdefault(group, []).append(entry.name)
        return out

    # --------------------------------------------------------- changing ---
    def to_yaml(self):
        data = {}
        if self.defaults:
            data["defaults"] = dict(self.defaults)
        data["hosts"] = {name: e.to_yaml() for name, e in sorted(self.hosts.items())}
        return data

    def save(self):
        """Atomic write (temp file + rename), private mode."""
        text = "# Tiramisu inventory (see README: Host inventory)\n" + yaml.safe_dump(
            self.to_yaml(), sort_keys=False, default_flow_style=False
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tiramisu-", dir=str(self.path.parent))
        except OSError as exc:
            raise LocalError.from_os_error(exc, "cannot write inventory file", self.path) from exc
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                raise LocalError.from_os_error(exc, "cannot write inventory file", self.path) from exc
            raise


def check_settings(settings, known, where):
    """A ``settings:``/``defaults:`` mapping with every value checked by its type (options.SETTINGS).

    An unknown name or a value out of range is an InventoryError naming ``where``.
    """
    if not isinstance(settings, dict):
        raise InventoryError(f"{where}: settings must be a mapping of name: value")
    unknown = sorted(str(k) for k in set(settings) - set(known))
    if unknown:
        raise InventoryError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(known)})")
    checked = {}
    for key, value in settings.items():
        if value is None:
            continue
        try:
            checked[key] = parse_setting(key, value, label=f"{where} {key}")
        except UsageError as exc:
            raise InventoryError(str(exc)) from None
    return checked


def validate_name(name):
    if not NAME_RE.match(name or ""):
        raise InventoryError(f"invalid host name {name!r}: use letters, digits, '.', '_' or '-' (max 63)")
    if "," in name or "@" in name or ":" in name:
        raise InventoryError(f"invalid host name {name!r}")


@contextlib.contextmanager
def locked_inventory(path=None):
    """Load, let the caller change, save — under a thread and a file lock.

    Parallel host.check runs (threads) and parallel shell jobs (processes) both
    write facts; the lock keeps one writer from losing another's change.
    """
    path = Path(path) if path else find_inventory_path()
    lock_path = path.parent / (path.name + ".lock")
    with _thread_lock:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock_file = open(lock_path, "a")
        except OSError as exc:
            raise LocalError.from_os_error(exc, "cannot write inventory file", path) from exc
        with lock_file as lock_fh:
            fcntl.flock(lock_fh, fcntl.LOCK_EX)
            try:
                inv = Inventory.load(path)
                yield inv
                inv.save()
            finally:
                fcntl.flock(lock_fh, fcntl.LOCK_UN)
