"""host.*: the inventory (add, list, show, remove) and the probe (check)."""

import time

from invoke import Collection

from .. import inventory as invmod
from ..config import HOST_SETTINGS
from ..config import setting
from ..errors import InventoryError, UsageError, UnsupportedTarget
from ..hostrun import emit_results, run_on_hosts
from ..options import parse_setting
from ..probe import probe, unsupported_message
from ..taskkit import task, out, emit_json, table


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
def add(c, name, hostname, user=None, port=None, key=None, group=None, set=None,
        accept_new=False, check=False, force=False):
    """Add a host to the inventory (tiramisu.yaml)."""
    invmod.validate_name(name)
    settings = _parse_settings(set)
    with invmod.locked_inventory() as inv:
        if name in inv.hosts and not force:
            raise InventoryError(f"host {name!r} already exists in {inv.path} (use --force to replace)")
        if name in inv.groups():
            raise InventoryError(f"{name!r} is already a group name in {inv.path}")
        inv.hosts[name] = invmod.HostEntry(
            name=name, hostname=hostname, user=user or None, port=port, key=key or None,
            groups=list(group or []), settings=settings,
        )
        path = inv.path
    out(f"added {name} ({hostname}) to {path}")
    if accept_new or check:
        _check(c, name, json=False, refresh=True, accept_new=accept_new)


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


def _check(c, name, json, refresh, accept_new):
    def one(conn, spec, rep):
        env_dir = setting(c, "env_dir", host=spec.entry)
        http_port = setting(c, "http_port", host=spec.entry)
        server_port = setting(c, "server_port", host=spec.entry)
        if refresh and spec.entry is not None:
            _store_facts(spec.name, None)
        report = probe(conn, env_dir, http_port, server_port)
        report["host"] = spec.name
        report["address"] = f"{conn.user}@{conn.host}:{conn.port}"
        report["va_bits"] = (report.get("address_space") or {}).get("bits")
        if spec.entry is not None:
            _store_facts(spec.name, report)
        if not json:
            rep.out(format_report(report))
        return report

    results = run_on_hosts(c, name, one, accept_new=accept_new or None, quiet=json)
    emit_results(results, json)
    unsupported = [r.value for r in results if r.ok and not r.value["supported"]]
    if unsupported:
        raise UnsupportedTarget(
            "; ".join(f"{rep['host']}: {unsupported_message(rep)}" for rep in unsupported)
        )
    return results


def _store_facts(name, report):
    with invmod.locked_inventory() as inv:
        entry = inv.get(name)
        if entry is None:
            return
        if report is None:
            entry.facts = {}
            return
        entry.facts = {k: report[k] for k in FACT_KEYS if report.get(k) is not None}
        entry.facts["probed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


FACT_KEYS = ("machine", "arch", "target", "libc", "libc_version", "os", "kernel", "home", "env_dir", "supported",
             "va_bits")


def format_report(r):
    """The human view of a probe report (pure)."""
    lines = [f"{'host':9} {r['host']} ({r['address']})"]
    arch = r["arch"] or "?"
    if r["supported"]:
        lines.append(f"{'arch':9} {arch} (uname -m: {r['machine']}), target {r['target']}")
    else:
        lines.append(f"{'arch':9} {arch} (uname -m: {r['machine']}): UNSUPPORTED - {r['reason']}")
    lines.append(f"{'os':9} {r['os']}")
    lines.append(f"{'kernel':9} {r['kernel']}")
    lines.append(f"{'libc':9} {r['libc']} {r['libc_version'] or ''}".rstrip())
    if r.get("address_space"):
        lines.append(f"{'vaddr':9} {format_address_space(r['address_space'])}")
    disk = f"{r['disk_free_mb']} MB free" if r["disk_free_mb"] is not None else "unknown"
    lines.append(f"{'disk':9} {disk} at {r['disk_path']}")
    ports = ", ".join(f"{label} {p['port']} {p['state']}" for label, p in r["ports"].items())
    lines.append(f"{'ports':9} {ports}")
    if r["installed"]:
        inst = f"installed in {r['env_dir']}"
        ver = r.get("version") or {}
        if ver.get("tiramisu"):
            inst += f" (tiramisu {ver['tiramisu']})"
    elif r["env_exists"]:
        inst = f"{r['env_dir']} exists but holds no complete install"
    else:
        inst = f"not installed ({r['env_dir']})"
    lines.append(f"{'tiramisu':9} {inst}")
    svc = []
    for name, s in r["services"].items():
        svc.append(f"{name} {s['state']}" + (f" (pid {s['pid']})" if s["pid"] else ""))
    lines.append(f"{'services':9} {', '.join(svc)}")
    return "\n".join(lines)


def format_address_space(a):
    """``47-bit user address space (128 TiB; CPU 48-bit virtual), pooling allocator ok`` (pure)."""
    if not a.get("bits"):
        return "address space unknown, pooling allocator: decided by the server at start"
    gib = a["size_gib"]
    size = f"{gib // 1024} TiB" if gib >= 1024 else f"{gib} GiB"
    cpu = f"; CPU {a['cpu_virtual_bits']}-bit virtual" if a.get("cpu_virtual_bits") else ""
    return f"{a['bits']}-bit user address space ({size}{cpu}), pooling allocator {a['pooling']}"


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
    _check(c, name, json=json, refresh=refresh, accept_new=accept_new)


ns = Collection("host", add, show, remove, check)
ns.add_task(list_, name="list")
