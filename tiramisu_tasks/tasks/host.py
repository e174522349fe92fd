"""host.*: the inventory (add, list, show, set, unset, remove) and the probe (check).

Every write goes through :func:`inventory.locked_inventory` (file lock, atomic
rename) and checks the whole entry the way loading does
(:meth:`inventory.HostEntry.from_yaml`), so the file never holds an entry this
code would refuse. Entries written by hand that fail the check stay listable,
repairable (``host.set``), replaceable (``host.add --force``) and removable.
"""

from invoke import Collection

from .. import inventory as invmod
from ..config import HOST_SETTINGS, env_variable, resolve_settings_sources
from ..errors import InventoryError, UsageError
from ..hostcheck import check_hosts
from ..options import PORT, parse_option, parse_setting
from ..taskkit import emit_json, note, out, table, task

# What host.set may change and host.unset may drop, besides the settings.
SET_FIELDS = invmod.CONNECTION_FIELDS
UNSET_FIELDS = ("user", "port", "key")


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


def split_pairs(text):
    """``"a=1,b=x,y"`` -> ``[("a", "1"), ("b", "x,y")]`` (pure).

    A comma starts a new pair only when the part after it has a ``=``, so a
    value may hold commas. A part before any ``=`` is a UsageError.
    """
    pairs = []
    for part in (text or "").split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            pairs.append([key.strip().replace("-", "_"), value.strip()])
        elif pairs:
            pairs[-1][1] += "," + part
        elif part.strip():
            raise UsageError(f"--set takes KEY=VALUE[,KEY=VALUE...], got {part.strip()!r}")
    if not pairs:
        raise UsageError("--set takes KEY=VALUE[,KEY=VALUE...]")
    return [(k, v) for k, v in pairs]


def split_names(values):
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``: repeated and comma-listed names, in order, once each (pure)."""
    names = []
    for value in values or []:
        for part in str(value).split(","):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return names


def _check_groups(groups, name, inv):
    for group in groups:
        invmod.check_group_name(group, "--group")
        if group in inv.names() and group != name:
            raise UsageError(f"--group {group}: {group!r} is a host name in {inv.path}")


@task(
    help={
        "name": "inventory name for the host (letters, digits, . _ -)",
        "hostname": "address or DNS name to connect to (default: NAME, only when NAME is an IP address, "
        "a dotted DNS name, localhost or a Host alias of ~/.ssh/config)",
        "user": "SSH user (default: ssh_config, then the local user)",
        "port": "SSH port (default: ssh_config, then 22)",
        "key": "path to a private key file, which must exist (never a password)",
        "group": "add the host to this group (repeatable, or a comma list)",
        "set": "per-host setting KEY=VALUE, e.g. http_port=8081 (repeatable)",
        "accept_new": "trust the host key on first contact (records it; checks the box now)",
        "check": "connect and probe the box right away (default: only with --accept-new)",
        "force": "replace an existing entry of the same name (also one that is invalid)",
    },
    iterable=["group", "set"],
    positional=["name"],
)
def add(
    c,
    name,
    hostname=None,
    user=None,
    port=None,
    key=None,
    group=None,
    set=None,
    accept_new=False,
    check=False,
    force=False,
):
    """Add a host to the inventory (tiramisu.yaml); the entry is checked before it is written."""
    invmod.validate_name(name)
    if not hostname:
        if not invmod.name_is_hostname(name):
            raise UsageError(
                f"host.add {name}: --hostname is required ({name!r} is not an IP address, a dotted DNS name, "
                f"localhost or a Host alias of ~/.ssh/config)"
            )
        hostname = name
    invmod.check_hostname(hostname, "--hostname")
    if key:
        invmod.check_key_file(key, "--key")
    settings = _parse_settings(set)
    groups = split_names(group)
    with invmod.locked_inventory() as inv:
        if name in inv.names() and not force:
            raise InventoryError(f"host {name!r} already exists in {inv.path} (use --force to replace)")
        if name in inv.groups():
            raise InventoryError(f"{name!r} is already a group name in {inv.path}")
        _check_groups(groups, name, inv)
        entry = invmod.HostEntry(
            name=name,
            hostname=hostname,
            user=user or None,
            port=port,
            key=key or None,
            groups=groups,
            settings=settings,
        )
        inv.put(invmod.HostEntry.from_yaml(name, entry.to_yaml()))
        path = inv.path
    out(f"added {name} ({hostname}) to {path}")
    if accept_new or check:
        check_hosts(c, name, json=False, refresh=True, accept_new=accept_new)


@task(help={"json": "print JSON instead of a table"})
def list_(c, json=False):
    """List the hosts in the inventory; entries that fail their check are listed as INVALID with the reason."""
    inv = invmod.Inventory.load()
    if json:
        hosts = [inv.hosts[n].public_dict() if n in inv.hosts else inv.invalid[n].public_dict() for n in inv.names()]
        doc = {"inventory": str(inv.path), "hosts": hosts}
        if inv.defaults_problem:
            doc["defaults_problem"] = inv.defaults_problem
        emit_json(doc)
        return
    if inv.defaults_problem:
        note(f"tiramisu: {inv.defaults_problem}")
    if not inv.names():
        out(f"no hosts in {inv.path} (add one with: tiramisu host.add NAME --hostname H)")
        return
    rows = []
    for name in inv.names():
        if name in inv.hosts:
            e = inv.hosts[name]
            target = e.facts.get("target") or "?"
            rows.append([e.name, e.hostname, e.user or "", e.port or "", ",".join(e.groups), target])
        else:
            rows.append([name, "INVALID", "", "", "", inv.invalid[name].problem])
    out(table(rows, ["NAME", "HOSTNAME", "USER", "PORT", "GROUPS", "TARGET"]))
    out(f"({inv.path})")


def _effective(c, inv, entry):
    """{setting: (value, layer)} for this host as a task would see it without flags."""
    return resolve_settings_sources(c, host=entry, inventory=inv, names=HOST_SETTINGS)


@task(help={"name": "inventory name", "json": "print JSON"})
def show(c, name, json=False):
    """Show one inventory entry, with the facts from the last host.check and the settings in effect.

    ``effective`` is every per-host setting as a task run without flags
    resolves it, and ``sources`` says from where: host, defaults, env,
    config or built-in (README "Settings").
    """
    inv = invmod.Inventory.load()
    if name in inv.invalid and name not in inv.hosts:
        bad = inv.invalid[name]
        if json:
            emit_json(bad.public_dict())
            return
        out(f"{'name':10} {name}")
        out(f"{'INVALID':10} {bad.problem}")
        out(f"{'entry':10} {bad.raw!r}")
        return
    entry = inv.require(name)
    data = entry.public_dict()
    effective = _effective(c, inv, entry)
    data["effective"] = {k: v for k, (v, _) in effective.items()}
    data["sources"] = {k: layer for k, (_, layer) in effective.items()}
    if json:
        emit_json(data)
        return
    for key in ("name", "hostname", "user", "port", "key"):
        if data.get(key) not in (None, ""):
            out(f"{key:10} {data[key]}")
    out(f"{'groups':10} {', '.join(entry.groups) or '-'}")
    for key, (value, layer) in effective.items():
        where = env_variable(key) if layer == "env" else layer
        out(f"{'setting':10} {key}={'-' if value is None else value} ({where})")
    for key, value in sorted(entry.facts.items()):
        out(f"{'fact':10} {key}={value}")


def _edit(name, change):
    """Load, apply ``change(raw_entry_dict)`` to the entry as written, check it, save; returns the new entry.

    Works on an entry that failed its check (the edit may repair it); the
    result must pass the check, or nothing is written (InventoryError).
    """
    with invmod.locked_inventory() as inv:
        if name in inv.hosts:
            raw = inv.hosts[name].to_yaml()
        elif name in inv.invalid:
            raw = inv.invalid[name].raw
            raw = dict(raw) if isinstance(raw, dict) else {}
        else:
            inv.require(name)  # raises: unknown host, with the known ones
        raw = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v) for k, v in raw.items()}
        change(raw, inv)
        try:
            entry = invmod.HostEntry.from_yaml(name, raw)
        except InventoryError as exc:
            raise InventoryError(f"{exc.message}; nothing was changed") from None
        inv.put(entry)
    return entry


@task(
    help={
        "name": "inventory name",
        "set": "KEY=VALUE[,KEY=VALUE...]: a setting (host.show lists them) or hostname, user, port, key (repeatable)",
        "group": "replace the host's groups with these (repeatable, or a comma list; '' for none)",
    },
    iterable=["set", "group"],
    positional=["name"],
)
def set_(c, name, set=None, group=None):
    """Change settings, connection fields or groups of a host; its facts and other fields stay.

    ``tiramisu host.set pi --set http_port=8081,workers=4 --group lab``.
    Values are checked by their type (README "Settings reference"); an
    unknown key or a bad value is exit 2 and changes nothing.
    """
    if not set and not group:
        raise UsageError("host.set needs --set KEY=VALUE or --group G (see host.set --help)")
    parsed = {}
    for text in set or []:
        for key, value in split_pairs(text):
            parsed[key] = _checked_value(key, value)
    groups = split_names(group) if group else None

    def change(raw, inv):
        for key, value in parsed.items():
            if key in SET_FIELDS:
                raw[key] = value
            else:
                if not isinstance(raw.get("settings"), dict):
                    raw["settings"] = {}
                raw["settings"][key] = value
        if groups is not None:
            _check_groups(groups, name, inv)
            if groups:
                raw["groups"] = groups
            else:
                raw.pop("groups", None)

    _edit(name, change)
    shown = [f"{k}={v}" for k, v in parsed.items()]
    if groups is not None:
        shown.append(f"groups={','.join(groups) or '-'}")
    out(f"{name}: {', '.join(shown)}")


def _checked_value(key, value):
    """A host.set value checked by what the key is (UsageError naming the key)."""
    if key == "port":
        return parse_option("port", value, PORT)
    if key == "key":
        invmod.check_key_file(value, "key")
    elif key == "hostname":
        invmod.check_hostname(value, "hostname")
    elif key == "user":
        if not value or any(ch.isspace() for ch in value):
            raise UsageError(f"user: expected a user name, got {value!r}")
    elif key in HOST_SETTINGS:
        return parse_setting(key, value, label=key)
    else:
        known = ", ".join((*SET_FIELDS, *HOST_SETTINGS))
        raise UsageError(f"unknown key {key!r} for host.set (known: {known})")
    return value


@task(
    help={
        "name": "inventory name",
        "unset": "KEY[,KEY...]: settings to drop (then defaults:, env, config or built-in apply), "
        "or user, port, key (repeatable)",
    },
    iterable=["unset"],
    positional=["name"],
)
def unset(c, name, unset=None):
    """Drop settings or optional connection fields of a host; its facts and other fields stay.

    ``tiramisu host.unset pi --unset http_port,port``.
    """
    names = split_names(unset)
    if not names:
        raise UsageError("host.unset needs --unset KEY[,KEY...] (see host.unset --help)")
    for key in names:
        if key not in UNSET_FIELDS and key not in HOST_SETTINGS:
            known = ", ".join((*UNSET_FIELDS, *HOST_SETTINGS))
            hint = " (hostname cannot be unset: host.set it, or host.remove the host)" if key == "hostname" else ""
            raise UsageError(f"unknown key {key!r} for host.unset{hint} (known: {known})")

    def change(raw, inv):
        for key in names:
            if key in UNSET_FIELDS:
                raw.pop(key, None)
            elif isinstance(raw.get("settings"), dict):
                raw["settings"].pop(key, None)
        if not raw.get("settings"):
            raw.pop("settings", None)

    _edit(name, change)
    out(f"{name}: unset {', '.join(names)}")


@task(help={"name": "inventory name"})
def remove(c, name):
    """Remove a host from the inventory (the box itself is untouched); works on an invalid entry too."""
    with invmod.locked_inventory() as inv:
        if not inv.discard(name):
            inv.require(name)  # raises: unknown host, with the known ones
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


ns = Collection("host", add, show, remove, check, unset)
ns.add_task(list_, name="list")
ns.add_task(set_, name="set")
