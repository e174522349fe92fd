"""host.*: the inventory (add, list, show, remove) and the probe (check)."""

from invoke import Collection

from .. import inventory as invmod
from ..config import HOST_SETTINGS
from ..errors import InventoryError, UsageError
from ..hostcheck import check_hosts
from ..options import parse_setting
from ..taskkit import emit_json, out, table, task


def _parse_settings(pairs):
    settings = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--set takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in HOST_SETTINGS:
            raise UsageError(f"unknown setting {key!r} (known: {', '.join(HOST_SETTINGS)})")
        settings[key] = parse_setting(key, value.strip())
    return settings


@task(
    help={
        "name": "inventory name for the host (letters, digits, . _ -)",
        "hostname": "address or ~/.ssh/config alias to connect to",
        "user": "SSH user (default: ssh_config, then the local user)",
        "port": "SSH port (default: ssh_config, then 22)",
        "key": "path to a private key (never a password)",
        "group": "add the host to this group (repeatable)",
        "set": "per-host setting KEY=VALUE, e.g. http_port=8081 (repeatable)",
        "accept_new": "trust the host key on first contact (records it; checks the box now)",
        "check": "connect and probe the box right away (default: only with --accept-new)",
        "force": "replace an existing entry of the same name",
    },
    iterable=["group", "set"],
    positional=["name"],
)
def add(
    c, name, hostname, user=None, port=None, key=None, group=None, set=None, accept_new=False, check=False, force=False
):
    """Add a host to the inventory (tiramisu.yaml)."""
    invmod.validate_name(name)
    settings = _parse_settings(set)
    with invmod.locked_inventory() as inv:
        if name in inv.hosts and not force:
            raise InventoryError(f"host {name!r} already exists in {inv.path} (use --force to replace)")
        if name in inv.groups():
            raise InventoryError(f"{name!r} is already a group name in {inv.path}")
        inv.hosts[name] = invmod.HostEntry(
            name=name,
            hostname=hostname,
            user=user or None,
            port=port,
            key=key or None,
            groups=list(group or []),
            settings=settings,
        )
        path = inv.path
    out(f"added {name} ({hostname}) to {path}")
    if accept_new or check:
        check_hosts(c, name, json=False, refresh=True, accept_new=accept_new)


@task(help={"json": "print JSON instead of a table"})
def list_(c, json=False):
    """List the hosts in the inventory."""
    inv = invmod.Inventory.load()
    if json:
        emit_json({"inventory": str(inv.path), "hosts": [e.public_dict() for e in inv.hosts.values()]})
        return
    if not inv.hosts:
        out(f"no hosts in {inv.path} (add one with: tiramisu host.add NAME --hostname H)")
        return
    rows = []
    for e in sorted(inv.hosts.values(), key=lambda e: e.name):
        target = e.facts.get("target") or "?"
        rows.append([e.name, e.hostname, e.user or "", e.port or "", ",".join(e.groups), target])
    out(table(rows, ["NAME", "HOSTNAME", "USER", "PORT", "GROUPS", "TARGET"]))
    out(f"({inv.path})")


@task(help={"name": "inventory name", "json": "print JSON"})
def show(c, name, json=False):
    """Show one inventory entry, with the facts from the last host.check."""
    inv = invmod.Inventory.load()
    entry = inv.require(name)
    data = entry.public_dict()
    if json:
        emit_json(data)
        return
    for key in ("name", "hostname", "user", "port", "key"):
        if data.get(key) not in (None, ""):
            out(f"{key:10} {data[key]}")
    out(f"{'groups':10} {', '.join(entry.groups) or '-'}")
    for key, value in sorted(entry.settings.items()):
        out(f"{'setting':10} {key}={value}")
    for key, value in sorted(entry.facts.items()):
        out(f"{'fact':10} {key}={value}")


@task(help={"name": "inventory name"})
def remove(c, name):
    """Remove a host from the inventory (the box itself is untouched)."""
    with invmod.locked_inventory() as inv:
        inv.require(name)
        del inv.hosts[name]
    out(f"removed {name}")


@task(
    help={
        "name": "inventory name, group, ssh_config alias or user@host:port (comma list ok)",
        "json": "print the report as JSON",
        "refresh": "drop the cached facts first (a failed probe then leaves none behind)",
        "accept_new": "trust and record the host key if it was never seen",
    },
    positional=["name"],
)
def check(c, name, json=False, refresh=False, accept_new=False):
    """Probe a box over SSH: architecture, OS, libc, disk, ports, what Tiramisu runs there.

    NAME is required (Invoke has no optional positionals); under fab use
    ``fab -H box host.check box``.
    """
    check_hosts(c, name, json=json, refresh=refresh, accept_new=accept_new)


ns = Collection("host", add, show, remove, check)
ns.add_task(list_, name="list")
