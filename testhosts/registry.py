"""Where test hosts live on this machine, who owns them, and the leftover cleanup.

Every host has a directory ``<base>/<id>/`` (``id`` = ``tmsu-<6 hex>``, also the
name of its network namespace and, for x86_64, of its user) with a record,
``host.json``. The record is written *before* any resource exists and removed
*after* the last one is gone, so anything carrying our prefix without a live
record is a leftover of a crashed run. A record is live while its owner
process runs (pytest session hosts) or, for hosts a person started by hand
(no owner), while its sshd runs.

The cleanup only ever touches names matching ``tmsu-<6 hex>`` (namespaces,
users whose home is under the base dir), links ``tmsu<6 hex>[hn]`` and the base
dir's own subdirectories.
"""

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from . import commands as cmd
from .system import kill_pids, proc_alive, proc_starttime, run, umount_below

RECORD = "host.json"


def base_dir():
    """Root of all hosts' directories (system-wide: hosts are machine resources)."""
    value = os.environ.get("TIRAMISU_TESTHOSTS_DIR")
    return Path(value) if value else Path("/var/tmp/tiramisu-testhosts")


@contextlib.contextmanager
def global_lock():
    """Serialises subnet/id allocation and the leftover cleanup across processes."""
    base = base_dir()
    base.mkdir(parents=True, exist_ok=True)
    os.chmod(base, 0o755)  # test users must traverse to their homes below
    with open(base / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield base
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def log_event(*parts):
    """One line per start/teardown in <base>/events.log: post-mortems of CI runs."""
    with contextlib.suppress(OSError):
        path = base_dir() / "events.log"
        if path.exists() and path.stat().st_size > 1 << 20:
            os.replace(path, path.with_suffix(".log.old"))
        with open(path, "a") as fh:
            fh.write(" ".join([time.strftime("%Y-%m-%dT%H:%M:%S"), f"pid={os.getpid()}", *map(str, parts)]) + "\n")


def owner_self():
    pid = os.getpid()
    return {"pid": pid, "starttime": proc_starttime(pid)}


def write_record(record):
    path = base_dir() / record["id"] / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, path)


def read_record(hid):
    with contextlib.suppress(OSError, ValueError):
        return json.loads((base_dir() / hid / RECORD).read_text())
    return None


def read_records():
    out = []
    base = base_dir()
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        f = d / RECORD
        if d.is_dir() and cmd.HOST_ID_RE.match(d.name) and f.is_file():
            try:
                out.append(json.loads(f.read_text()))
            except ValueError:
                continue
    return out


def record_live(record):
    owner = record.get("owner")
    if owner:
        return proc_alive(owner["pid"], owner.get("starttime"))
    procs = record.get("procs") or []
    if not procs:
        # A hand-started host still coming up: give it a minute before calling it dead.
        return time.time() - record.get("created", 0) < 60
    return any(proc_alive(pid, start) for pid, start in procs)


# ------------------------------------------------------------- resources ---


def netns_list():
    res = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in res.stdout.splitlines() if line.strip()]


def netns_pids(netns):
    res = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(x) for x in res.stdout.split() if x.isdigit()]


def uid_pids(uid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError):
                if d.stat().st_uid == uid:
                    out.append(int(d.name))
    return out


def used_networks():
    """CIDRs of every address and route in the root namespace, plus recorded subnets."""
    addrs = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used = cmd.parse_ip_addr_routes(addrs, routes)
    used += [r["subnet"] for r in read_records() if r.get("subnet")]
    return used


def teardown(record, user=None):
    """Remove everything of one host, in reverse order of creation; tolerant of gaps."""
    hid = record["id"]
    netns = record.get("netns")
    # Recorded pids count only with their start time (a pid may have been reused).
    pids = [pid for pid, start in record.get("procs") or [] if proc_alive(pid, start)]
    if netns and netns in netns_list():
        pids += netns_pids(netns)
    user = user or record.get("user_local")
    uid = None
    if user:
        with contextlib.suppress(KeyError):
            uid = pwd.getpwnam(user).pw_uid
    # Never by uid 0: a root test host's account is an alias of this machine's
    # root; its processes are found through its network namespace above.
    if uid is not None and uid != 0:
        pids += uid_pids(uid)
    left = kill_pids(sorted(set(pids)))
    log_event("teardown", hid, f"killed={sorted(set(pids))}", f"left={left}")
    if netns:
        for argv in cmd.netns_down_cmds(netns):
            run(argv, check=False)
    hdir = base_dir() / hid
    umount_below(hdir)
    if uid is not None:
        run(cmd.userdel_argv(user), check=False)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"/var/mail/{user}")
    rec = hdir / RECORD
    for child in sorted(hdir.iterdir()) if hdir.is_dir() else []:
        if child != rec:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    child.unlink()
    with contextlib.suppress(FileNotFoundError):
        rec.unlink()
    with contextlib.suppress(OSError):
        hdir.rmdir()
    return left


def cleanup_leftovers():
    """Tear down hosts whose owner is gone and any prefixed resource without a live record.

    Returns the ids cleaned. Safe while other sessions run: their records are live.
    """
    cleaned = []
    if os.geteuid() != 0:
        return cleaned
    with global_lock() as base:
        records = read_records()
        live_ids = set()
        for rec in records:
            if record_live(rec):
                live_ids.add(rec["id"])
            else:
                teardown(rec)
                cleaned.append(rec["id"])
        # Directories without a record (crash between mkdir and the first write).
        for d in sorted(base.iterdir()):
            if d.is_dir() and cmd.HOST_ID_RE.match(d.name) and d.name not in live_ids:
                teardown({"id": d.name})
                cleaned.append(d.name)
        for ns in netns_list():
            if cmd.HOST_ID_RE.match(ns) and ns not in live_ids:
                teardown({"id": ns, "netns": ns})
                cleaned.append(ns)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        for line in links.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
            if cmd.LINK_RE.match(name) and f"{cmd.PREFIX}-{name[4:10]}" not in live_ids:
                run(["ip", "link", "del", name], check=False)
        for entry in pwd.getpwall():
            if (
                cmd.HOST_ID_RE.match(entry.pw_name)
                and entry.pw_name not in live_ids
                and entry.pw_dir.startswith(str(base) + "/")
            ):
                teardown({"id": entry.pw_name}, user=entry.pw_name)
                cleaned.append(entry.pw_name)
    return sorted(set(cleaned))
