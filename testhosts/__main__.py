"""``scripts/testhost``: real SSH test hosts by hand (root).

    scripts/testhost up x86_64|aarch64 [--name N] [--no-register] [--json]
    scripts/testhost list [--json]
    scripts/testhost down N|ID|--all
    scripts/testhost cleanup          # leftovers of crashed runs (our prefix only)

``up`` also writes the host into the inventory (the one ``tiramisu`` would use:
$TIRAMISU_INVENTORY, ./tiramisu.yaml, or the user-level file) with its host key,
so ``tiramisu host.check --host N`` works right away. Hosts are machine-wide
resources: their records live in /var/tmp/tiramisu-testhosts/<id>/host.json
($TIRAMISU_TESTHOSTS_DIR), not in a user's dir.
"""

import argparse
import json
import sys

from tiramisu_tasks import inventory as invmod
from tiramisu_tasks.targets import canonical_arch

from . import registry
from .hosts import ARCHES, host_from_record, start_host
from .system import TestHostError


def _parser():
    p = argparse.ArgumentParser(prog="testhost", description="Real SSH test hosts on this machine (root).")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a host")
    up.add_argument(
        "arch",
        choices=ARCHES + ("amd64", "arm64", "x86_64-root"),
        help="architecture of the host (x86_64-root: an x86_64 host whose SSH login is uid 0)",
    )
    up.add_argument("--name", help="name of the host (and of its inventory entry); default test-<arch>")
    up.add_argument("--no-register", action="store_true", help="do not add it to the inventory")
    up.add_argument("--inventory", help="inventory file to register in (default: the usual lookup)")
    up.add_argument("--json", action="store_true", help="print the host as JSON")
    ls = sub.add_parser("list", help="list hosts started by hand or by running test sessions")
    ls.add_argument("--json", action="store_true", help="print JSON")
    down = sub.add_parser("down", help="stop a host (by name or id)")
    down.add_argument("name", nargs="?", help="host name or id")
    down.add_argument("--all", action="store_true", help="stop every host started by hand")
    sub.add_parser("cleanup", help="remove leftovers of crashed runs")
    return p


def _arch(value):
    return canonical_arch(value)


def _find(name):
    return [r for r in registry.read_records() if name in (r.get("name"), r["id"])]


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (TestHostError, invmod.InventoryError) as exc:
        print(f"testhost: {exc.message}", file=sys.stderr)
        return exc.code or 1
    except KeyboardInterrupt:
        return 130


def _run(args):
    if args.cmd == "up":
        arch = _arch(args.arch)
        name = args.name or f"test-{arch.replace('_', '-')}"
        invmod.validate_name(name)
        if _find(name):
            raise TestHostError(f"a test host named {name!r} exists already (scripts/testhost down {name})")
        progress = (lambda msg: print(msg, file=sys.stderr)) if arch == "aarch64" else None
        kw = {"progress": progress} if progress else {}
        host = start_host(arch, name=name, owner=False, **kw)
        data = host.to_dict()
        if not args.no_register:
            host.register(args.inventory, name)
            data["inventory"] = str(args.inventory or invmod.find_inventory_path())
        if args.json:
            print(json.dumps(data, indent=2, sort_keys=True))
        else:
            print(f"{name}: {arch} {host.user}@{host.hostname}:{host.port} (id {host.id}, key {host.key_path})")
            if "inventory" in data:
                print(f"registered in {data['inventory']}; try: tiramisu host.check --host {name}")
            print(f"ssh: {' '.join(host.ssh_argv('uname -m')[:-2])}")
        return 0
    if args.cmd == "list":
        rows = []
        for rec in registry.read_records():
            rows.append(
                {
                    "name": rec.get("name"),
                    "id": rec["id"],
                    "arch": rec.get("arch"),
                    "address": rec.get("hostname"),
                    "owner": "manual" if not rec.get("owner") else f"pid {rec['owner']['pid']}",
                    "live": registry.record_live(rec),
                }
            )
        if args.json:
            print(json.dumps(rows, indent=2))
        elif not rows:
            print("no test hosts")
        else:
            for r in rows:
                print(
                    f"{r['name']:20} {r['id']}  {r['arch']:8} {r['address']:15} {r['owner']:12} "
                    f"{'running' if r['live'] else 'dead'}"
                )
        return 0
    if args.cmd == "down":
        if args.all:
            records = [r for r in registry.read_records() if not r.get("owner")]
        elif args.name:
            records = _find(args.name)
            if not records:
                raise TestHostError(f"no test host named {args.name!r} (scripts/testhost list)")
        else:
            raise TestHostError("say which host: scripts/testhost down NAME (or --all)")
        for rec in records:
            host_from_record(rec).stop()
            print(f"stopped {rec.get('name')} ({rec['id']})")
        return 0
    if args.cmd == "cleanup":
        cleaned = registry.cleanup_leftovers()
        print("cleaned: " + (", ".join(cleaned) if cleaned else "nothing"))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
