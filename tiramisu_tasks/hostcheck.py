"""host.check as a procedure: probe boxes, keep their facts in the inventory, report.

Used by the ``host.check`` and ``host.add --check`` tasks and by ``demo``.
"""

import time

from . import inventory as invmod
from .box import SshBox
from .config import setting
from .errors import UnsupportedTarget
from .hostrun import finish, run_on_hosts
from .probe import probe, unsupported_message


def check_hosts(c, name, json, refresh, accept_new):
    """host.check on one host or many: probe, store the facts, print; returns [HostResult].

    A box that is not supported fails (exit 3 alone, 1 among several), after
    every report was printed.
    """

    def one(conn, spec, rep):
        env_dir = setting(c, "env_dir", host=spec.entry)
        http_port = setting(c, "http_port", host=spec.entry)
        server_port = setting(c, "server_port", host=spec.entry)
        if refresh and spec.entry is not None:
            _store_facts(spec.name, None)
        report = probe(SshBox(conn), env_dir, http_port, server_port)
        report["host"] = spec.name
        report["address"] = f"{conn.user}@{conn.host}:{conn.port}"
        report["va_bits"] = (report.get("address_space") or {}).get("bits")
        if spec.entry is not None:
            _store_facts(spec.name, report)
        if not json:
            rep.out(format_report(report))
        return report

    results = run_on_hosts(c, name, one, accept_new=accept_new or None, quiet=True, json=json)
    for r in results:
        if r.ok and not r.value["supported"]:
            r.fail(unsupported_message(r.value), code=UnsupportedTarget.code)
    finish(results, json)
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


FACT_KEYS = (
    "machine",
    "arch",
    "target",
    "libc",
    "libc_version",
    "os",
    "kernel",
    "home",
    "env_dir",
    "supported",
    "va_bits",
)


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
