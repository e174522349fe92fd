"""From whatever the user typed to verified fabric Connections.

One resolver serves the three front ends:

* ``inv TASK --host X`` / ``tiramisu TASK --host X``: ``c`` is a Context and X
  is a comma list of inventory names, group names, ~/.ssh/config aliases or
  ``user@host:port`` strings;
* ``fab -H X TASK`` / ``tiramisu -H X TASK``: ``c`` is a Connection built by
  Fabric from X; when X is an inventory name we rebuild it from the inventory.

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


def resolve_specs(c, host=None, inventory=None) -> List[HostSpec]:
    """The hosts a task should act on, from ``--host`` or ``fab -H``."""
    inventory = inventory or Inventory.load()
    if host:
        return [spec_for(n, inventory) for n in expand_names(split_host_list(host), inventory)]
    if isinstance(c, fabric.Connection):
        original = c.original_host
        if original in inventory.hosts or original in getattr(inventory, "invalid", {}):
            return [spec_for(original, inventory)]  # an invalid entry raises its problem here
        return [HostSpec(name=original, hostname=c.host, user=c.user, port=c.port, connection=c)]
    known = ", ".join(sorted(inventory.hosts)) or "none yet: tiramisu host.add NAME --hostname H"
    raise UsageError(f"no host given: use --host NAME (or fab -H NAME); inventory hosts: {known}")


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
        connect_kwargs = {}
        if spec.key:
            from os.path import expanduser

            connect_kwargs["key_filename"] = [expanduser(spec.key)]
        conn = fabric.Connection(
            host=spec.hostname,
            user=spec.user,
            port=spec.port,
            config=config if config is not None else host_config(c),
            connect_timeout=timeout,
            connect_kwargs=connect_kwargs or None,
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
