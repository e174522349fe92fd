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

Every entry is checked when it is loaded and before it is written
(:meth:`HostEntry.from_yaml`). An entry of the file that fails the check does
not stop the others: it is kept aside in :attr:`Inventory.invalid` (listed,
repairable, removable, written back as it was) and naming it raises its problem.
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
from .options import PORT, parse_option, parse_setting
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


# The fields of a host entry besides its settings and facts (host.set edits them too).
CONNECTION_FIELDS = ("hostname", "user", "port", "key")
ENTRY_FIELDS = (*CONNECTION_FIELDS, "groups", "settings", "facts")


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
        """A checked entry; InventoryError naming the host and the field if any part is wrong.

        Checked: the name, a mapping with only known fields, a hostname, the
        port's range, a key file that exists, group names, every setting by its
        type (options.SETTINGS), facts a mapping.
        """
        where = f"inventory entry {name!r}"
        try:
            validate_name(name)
        except InventoryError as exc:
            raise InventoryError(f"{where}: {exc}") from None
        if not isinstance(data, dict):
            raise InventoryError(f"{where} must be a mapping with a 'hostname'")
        unknown = sorted(str(k) for k in data if k not in ENTRY_FIELDS)
        if unknown:
            raise InventoryError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {', '.join(ENTRY_FIELDS)})")
        hostname = data.get("hostname")
        if hostname in (None, ""):
            raise InventoryError(f"{where} needs a 'hostname'")
        check_hostname(hostname, f"{where} hostname")
        user = data.get("user")
        if user not in (None, "") and (not isinstance(user, str) or not user.strip() or " " in user):
            raise InventoryError(f"{where} user: expected a user name, got {user!r}")
        port = data.get("port")
        if port not in (None, ""):
            port = _checked(lambda: parse_option(f"{where} port", port, PORT))
        key = data.get("key")
        if key not in (None, ""):
            check_key_file(key, f"{where} key")
        groups = data.get("groups") or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list):
            raise InventoryError(f"{where} groups: expected a list of group names")
        for group in groups:
            check_group_name(group, where)
        settings = check_settings(data.get("settings") or {}, HOST_SETTINGS, where)
        facts = data.get("facts") or {}
        if not isinstance(facts, dict):
            raise InventoryError(f"{where} facts: expected a mapping")
        return cls(
            name=name,
            hostname=str(hostname),
            user=user or None,
            port=port or None,
            key=str(key) if key not in (None, "") else None,
            groups=[str(g) for g in groups],
            settings=dict(settings),
            facts=dict(facts),
        )

    def public_dict(self):
        d = {"name": self.name, **self.to_yaml()}
        d.setdefault("groups", [])
        d.setdefault("settings", {})
        d.setdefault("facts", {})
        d["valid"] = True
        return d


@dataclass
class InvalidEntry:
    """A host entry of the file that did not pass :meth:`HostEntry.from_yaml`.

    Kept as written (``raw``) so that a save never loses it; it can be listed,
    shown, repaired with ``host.set``, replaced (``host.add --force``) and
    removed; any other use raises ``problem`` as an InventoryError (exit 2).
    """

    name: str
    raw: object
    problem: str

    def public_dict(self):
        return {"name": self.name, "valid": False, "problem": self.problem, "entry": self.raw}


def _checked(convert):
    try:
        return convert()
    except UsageError as exc:
        raise InventoryError(exc.message) from None


def check_hostname(hostname, where):
    """A hostname is a non-empty string without spaces, commas or '@' (an address, a DNS name or an alias)."""
    if not isinstance(hostname, (str, int)) or isinstance(hostname, bool):
        raise InventoryError(f"{where}: expected an address or a DNS name, got {hostname!r}")
    text = str(hostname)
    if not text.strip() or any(ch.isspace() for ch in text) or "," in text or "@" in text or "/" in text:
        raise InventoryError(f"{where}: expected an address or a DNS name, got {text!r}")


def check_key_file(key, where):
    """The key is a path (``~`` allowed) to a readable file; a password never is."""
    if not isinstance(key, str) or not key.strip():
        raise InventoryError(f"{where}: expected the path of a private key file, got {key!r}")
    path = Path(key).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise InventoryError(f"{where}: {key} {what}")


def check_group_name(group, where):
    if not isinstance(group, str) or not NAME_RE.match(group):
        raise InventoryError(f"{where}: invalid group name {group!r}: use letters, digits, '.', '_' or '-'")


class Inventory:
    def __init__(self, path, hosts=None, defaults=None, invalid=None):
        self.path = Path(path)
        self.hosts: Dict[str, HostEntry] = hosts or {}
        self.defaults: Dict[str, object] = defaults or {}
        # entries that failed their check: {name: InvalidEntry}
        self.invalid: Dict[str, InvalidEntry] = invalid or {}
        # ``defaults:`` as written when it failed its check, and why
        self.raw_defaults = None
        self.defaults_problem: Optional[str] = None

    # ---------------------------------------------------------- loading ---
    @classmethod
    def load(cls, path=None):
        """Read the file. A malformed file is an InventoryError; a malformed host entry is not:
        it goes to :attr:`invalid` so that commands about other hosts still run."""
        path = Path(path) if path else find_inventory_path()
        if not path.exists():
            return cls(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InventoryError(f"cannot parse inventory {path}: {exc}".splitlines()[0]) from exc
        except OSError as exc:
            raise LocalError.from_os_error(exc, "cannot read inventory file", path) from exc
        if not isinstance(data, dict):
            raise InventoryError(f"inventory {path} must be a mapping with 'hosts:'")
        unknown = sorted(str(k) for k in data if k not in ("hosts", "defaults"))
        if unknown:
            raise InventoryError(
                f"inventory {path}: unknown top-level key(s) {', '.join(unknown)} (known: defaults, hosts)"
            )
        raw_hosts = data.get("hosts") or {}
        if not isinstance(raw_hosts, dict):
            raise InventoryError(f"inventory {path}: 'hosts:' must be a mapping of name: entry")
        inv = cls(path)
        for name, entry in raw_hosts.items():
            name = str(name)
            try:
                inv.hosts[name] = HostEntry.from_yaml(name, entry)
            except InventoryError as exc:
                inv.invalid[name] = InvalidEntry(name, entry, exc.message)
        raw_defaults = data.get("defaults") or {}
        try:
            inv.defaults = check_settings(raw_defaults, INVENTORY_SETTINGS, f"inventory {path} defaults:")
        except InventoryError as exc:
            inv.raw_defaults, inv.defaults_problem = raw_defaults, exc.message
        return inv

    @property
    def known_hosts_path(self):
        return self.path.parent / KNOWN_HOSTS_NAME

    # --------------------------------------------------------- querying ---
    def names(self):
        """Every host name of the file, valid or not, sorted."""
        return sorted(set(self.hosts) | set(self.invalid))

    def get(self, name):
        """The entry, or None if there is none; an invalid entry raises its problem (InventoryError)."""
        if name in self.invalid and name not in self.hosts:
            raise InventoryError(self.invalid[name].problem + " (fix it with host.set, or host.remove it)")
        return self.hosts.get(name)

    def require(self, name):
        entry = self.get(name)
        if entry is None:
            known = ", ".join(self.names()) or "none"
            raise InventoryError(f"unknown host {name!r} in {self.path} (known: {known})")
        return entry

    def checked_defaults(self):
        """``defaults:``, or InventoryError when it failed its check."""
        if self.defaults_problem:
            raise InventoryError(self.defaults_problem)
        return self.defaults

    def groups(self):
        out = {}
        for entry in self.hosts.values():
            for group in entry.groups:
                out.setdefault(group, []).append(entry.name)
        return out

    # --------------------------------------------------------- changing ---
    def put(self, entry):
        """Add or replace a (checked) entry; an invalid one of that name is dropped."""
        self.invalid.pop(entry.name, None)
        self.hosts[entry.name] = entry

    def discard(self, name):
        """Remove a host, valid or not; False if there was none."""
        found = self.hosts.pop(name, None) is not None
        return self.invalid.pop(name, None) is not None or found

    def to_yaml(self):
        data = {}
        if self.defaults_problem:
            data["defaults"] = self.raw_defaults
        elif self.defaults:
            data["defaults"] = dict(self.defaults)
        hosts = {name: bad.raw for name, bad in self.invalid.items()}
        hosts.update({name: e.to_yaml() for name, e in self.hosts.items()})
        data["hosts"] = {name: hosts[name] for name in sorted(hosts)}
        return data

    def save(self):
        """Atomic write (temp file + rename), private mode.

        PyYAML writes the data back: comments of a hand-edited file are not
        kept (the README says so); entries that failed their check are written
        back as they were.
        """
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


def name_is_hostname(name, ssh_config=None):
    """Whether a host name can also serve as its own hostname (``host.add NAME`` without ``--hostname``).

    Yes for an IP address, a dotted DNS name (``box.example.org``),
    ``localhost``, and a ``Host`` alias of ``~/.ssh/config`` (``ssh_config``:
    another file, for tests); a bare word otherwise is most likely a nickname
    for a box whose address was forgotten, so no.
    """
    import ipaddress

    with contextlib.suppress(ValueError):
        ipaddress.ip_address(name)
        return True
    if name == "localhost" or ("." in name and not name.startswith(".") and not name.endswith(".")):
        return True
    return name in ssh_config_aliases(ssh_config)


def ssh_config_aliases(path=None):
    """The literal ``Host`` names of an ssh_config file (no patterns); empty if there is none."""
    import paramiko

    path = Path(path) if path else Path("~/.ssh/config").expanduser()
    try:
        config = paramiko.SSHConfig.from_path(str(path))
    except (OSError, paramiko.SSHException, ValueError):
        return set()
    return {h for h in config.get_hostnames() if not any(ch in h for ch in "*?!")}


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
