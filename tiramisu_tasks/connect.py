"""From whatever the user typed to verified fabric Connections.

One resolver serves the three front ends:

* ``TASK --host X``, ``TASK -H X`` and ``fab -H X TASK`` / ``tiramisu -H X
  TASK`` (cli.TiramisuExecutor passes X on as ``--host``): ``c`` is a Context
  and X a comma list of inventory names, group names, ~/.ssh/config aliases
  or ``user@host:port`` strings, checked before anything connects;
* a task called from Python with a fabric Connection as ``c`` and no host
  list acts on that Connection (an inventory name is rebuilt from the inventory).

Every Connection gets Tiramisu's host-key policy (see :mod:`hostkeys`).
"""

from dataclasses import dataclass
from typing import List, Optional

import fabric

from . import hostkeys
from .config import setting
from .errors import UsageError
from .inventory import HostEntry, Inventory


@dataclass
class HostSpec:
    """One resolved target: a display name plus how to reach it."""

    name: str  # inventory name, or the string the user gave
    hostname: str
    user: Optional[str] = None
    port: Optional[int] = None
    key: Optional[str] = None
    entry: Optional[HostEntry] = None  # set when it came from the inventory
    connection: Optional[fabric.Connection] = None  # set under fab -H


def split_host_list(value):
    """``"a, b,,c"`` → ``["a", "b", "c"]`` (pure)."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def expand_names(names, inventory):
    """Replace group names with their members, keep order, drop duplicates (pure)."""
    groups = inventory.groups()
    out = []
    for name in names:
        for member in groups.get(name, [name]) if name not in inventory.hosts else [name]:
            if member not in out:
                out.append(member)
    return out


def spec_for(name, inventory):
    """An inventory entry if there is one, else treat the string as a host string."""
    entry = inventory.get(name)
    if entry is not None:
        return HostSpec(
            name=name, hostname=entry.hostname, user=entry.user, port=entry.port, key=entry.key, entry=entry
        )
    if not name or any(ch.isspace() for ch in name):
        raise UsageError(f"invalid host {name!r}")
    return HostSpec(name=name, hostname=name)


def resolve_specs(c, host=None, inventory=None, resolvable=None) -> List[HostSpec]:
    """The hosts a task should act on, from ``--host``/``-H`` (the same comma list).

    Raises UsageError (exit 2, before anything connects) for a name that is
    neither an inventory host, a group, an ssh_config alias nor a host name
    this machine resolves (``resolvable(hostname)``: DNS/hosts lookup).
    """
    inventory = inventory or Inventory.load()
    if host:
        specs = [spec_for(n, inventory) for n in expand_names(split_host_list(host), inventory)]
        unknown = [s.name for s in specs if s.entry is None and not known_address(s.name, c, resolvable)]
        if unknown:
            raise UsageError(unknown_hosts_message(unknown, inventory))
        return specs
    if isinstance(c, fabric.Connection):
        original = c.original_host
        if original in inventory.hosts or original in getattr(inventory, "invalid", {}):
            return [spec_for(original, inventory)]  # an invalid entry raises its problem here
        return [HostSpec(name=original, hostname=c.host, user=c.user, port=c.port, connection=c)]
    known = ", ".join(sorted(inventory.hosts)) or "none yet: tiramisu host.add NAME --hostname H"
    raise UsageError(f"no host given: use --host NAME (or fab -H NAME); inventory hosts: {known}")


def host_part(text):
    """``user@host:port`` → ``host`` (pure; brackets of ``[::1]:22`` removed)."""
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def ssh_alias(name, patterns):
    """Whether ``name`` matches a ``Host`` pattern of ~/.ssh/config other than
    ``*`` (pure; ``patterns`` as paramiko's ``SSHConfig.get_hostnames()``)."""
    from fnmatch import fnmatch

    return any(p != "*" and not p.startswith("!") and fnmatch(name, p) for p in patterns)


def resolves(hostname):
    """Whether this machine can turn ``hostname`` into an address (hosts file, DNS)."""
    import socket

    try:
        socket.getaddrinfo(hostname, None)
        return True
    except (socket.gaierror, UnicodeError):
        return False


def known_address(name, c=None, resolvable=None):
    """A host string that is not an inventory name: an ssh alias or a resolvable name."""
    hostname = host_part(name)
    patterns = set()
    ssh_config = getattr(getattr(c, "config", None), "base_ssh_config", None)
    if ssh_config is None:
        try:
            ssh_config = host_config(c).base_ssh_config
        except Exception:  # noqa: BLE001 - an unreadable ssh config only loses aliases
            ssh_config = None
    if ssh_config is not None:
        patterns = ssh_config.get_hostnames()
    if ssh_alias(hostname, patterns):
        return True
    return (resolvable or resolves)(hostname)


def unknown_hosts_message(names, inventory):
    """The one line for mistyped host names (pure): what they are not, and what is known."""
    hosts = ", ".join(sorted(inventory.hosts)) or "none yet (tiramisu host.add NAME --hostname H)"
    groups = ", ".join(sorted(inventory.groups()))
    what = f"unknown host {names[0]!r}" if len(names) == 1 else "unknown hosts " + ", ".join(map(repr, names))
    return (
        f"{what}: not an inventory host, group or ssh_config alias, and it does not resolve; "
        f"inventory hosts: {hosts}" + (f"; groups: {groups}" if groups else "")
    )


def connect(c, spec: HostSpec, inventory=None, accept_new=None, notify=None, config=None):
    """A fabric Connection for spec with our host-key policy (not yet opened).

    ``config``: this host's own config (:func:`host_config`); made here when
    not given. Never the task's shared config: building and using a
    Connection writes into its config, and Invoke re-merges a config from
    empty on every write, so threads sharing one see keys vanish.
    """
    inventory = inventory or Inventory.load()
    if accept_new is None:
        accept_new = accept_new_from_env() or bool(setting(c, "accept_new_host_keys", inventory=inventory))
    timeout = int(setting(c, "connect_timeout", host=spec.entry, inventory=inventory))
    if spec.connection is not None:
        conn = spec.connection
        if conn.connect_timeout is None:
            conn.connect_timeout = timeout
    else:
        connect_kwargs = {"transport_factory": aead_first_transport}
        if spec.key:
            from os.path import expanduser

            connect_kwargs["key_filename"] = [expanduser(spec.key)]
        conn = fabric.Connection(
            host=spec.hostname,
            user=spec.user,
            port=spec.port,
            config=config if config is not None else host_config(c),
            connect_timeout=timeout,
            connect_kwargs=connect_kwargs,
        )
    hostkeys.install_policy(
        conn.client,
        display_name=spec.name,
        tiramisu_known_hosts=str(inventory.known_hosts_path),
        accept_new=accept_new,
        user_known_hosts=_user_known_hosts(conn),
        notify=notify,
    )
    return conn


def accept_new_from_env(environ=None):
    """``TIRAMISU_ACCEPT_NEW_HOST_KEYS=1``: opt in to trust-on-first-use for every
    task of every front end (scripts that create boxes); changed keys are still refused."""
    import os

    value = (environ if environ is not None else os.environ).get("TIRAMISU_ACCEPT_NEW_HOST_KEYS", "")
    return value.strip().lower() in ("1", "yes", "true", "on")


def host_config(c):
    """A private fabric Config for one host, copied from the task's context.

    Call it in the thread that owns ``c`` (before starting per-host threads):
    copying reads the source, and Fabric's clone even loads SSH config files
    into the source. ``Config.clone`` recreates every dict, so a write into
    the copy (Fabric stores merged key files in ``connect_kwargs``) never
    reaches the task's config or another host's.
    """
    config = getattr(c, "config", None)
    if config is None:
        return fabric.Config()
    if isinstance(config, fabric.Config):
        return config.clone()
    # Under `inv` the Context carries a plain Invoke config: cloning it into a
    # Fabric config skips the SSH config files, so load ~/.ssh/config (aliases,
    # users, ports, identity files) explicitly.
    cfg = config.clone(into=fabric.Config)
    cfg.load_ssh_config()
    return cfg


def _user_known_hosts(conn):
    value = (conn.ssh_config or {}).get("userknownhostsfile")
    if isinstance(value, list):
        value = value[0] if value else None
    if value:
        from os.path import expanduser

        return expanduser(value.split()[0])
    return None


# AES-GCM first: one AEAD pass instead of AES-CTR plus a separate HMAC, so less
# CPU on both ends for the same bytes (measured, bench/fleet_bench.py notes in
# BENCHMARKS.md "Fleet": 50 MB of uploads cost this machine ~1/3 less CPU,
# the box's sshd ~1/5 less). The other ciphers stay behind it for boxes
# without GCM (OpenSSH has had it since 6.2).
AEAD_FIRST = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def cipher_preference(ciphers):
    """``ciphers`` (paramiko's preference order) with :data:`AEAD_FIRST` moved to the front (pure)."""
    first = [c for c in AEAD_FIRST if c in ciphers]
    return tuple(first + [c for c in ciphers if c not in first])


def aead_first_transport(sock, **kwargs):
    """paramiko's ``transport_factory`` for our connections: a Transport preferring :data:`AEAD_FIRST`."""
    import paramiko

    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    options.ciphers = cipher_preference(options.ciphers)
    return transport
