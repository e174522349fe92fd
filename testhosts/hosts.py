"""Real SSH test hosts on this machine (needs root).

``x86_64``: a real sshd in its own network namespace, a fresh unprivileged user
of this machine with a small tmpfs home (so "disk full" is testable without
filling the machine's disk), key authentication.

``aarch64``: the cached arm64 Debian root (see :mod:`.rootfs`) extracted onto a
tmpfs, run chrooted under qemu-user in its own network, mount, UTS and pid
namespaces: ``uname -m`` says aarch64 and every command there is arm64 code.

Each host gets a /30 on a veth pair (``10.213.x.y``; root side ``.1``, host ``.2``)
and nothing else: no default route, no forwarding. Teardown kills the host's
processes by pid, deletes the link and the namespace, unmounts, removes the user
and the directory.
"""

import contextlib
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from tiramisu_tasks import inventory as invmod

from . import commands as cmd
from . import registry, rootfs
from .system import TestHostError, add_known_host, proc_alive, proc_comm, proc_starttime, run

ARCHES = ("x86_64", "aarch64")
SSH_PORT = 22


@dataclass
class TestHost:
    """One running test host and how to reach it with the system ssh client."""

    __test__ = False  # not a pytest test class

    name: str
    arch: str
    hostname: str  # the host's address (inside its namespace)
    port: int
    user: str
    key_path: str  # private key that logs in as ``user``
    host_key_line: str  # known_hosts line for hostname:port
    netns: str
    pids: List[int] = field(default_factory=list)
    id: str = ""
    dir: str = ""  # <base>/<id>: keys, configs, logs, home or root
    main_pid: Optional[int] = None  # sshd (pid 1 of the aarch64 host's pid namespace)

    # ------------------------------------------------------------ access ---
    @property
    def known_hosts(self):
        return str(Path(self.dir) / "known_hosts")

    @property
    def root(self):
        """The aarch64 host's root directory as seen from this machine (None for x86_64)."""
        return str(Path(self.dir) / "root") if self.arch == "aarch64" else None

    @property
    def home(self):
        """The user's home directory as seen from this machine."""
        if self.arch == "aarch64":
            return str(Path(self.dir) / "root" / "home" / self.user)
        return str(Path(self.dir) / "home")

    def ssh_argv(self, command):
        return cmd.ssh_argv(
            hostname=self.hostname,
            port=self.port,
            user=self.user,
            key_path=self.key_path,
            known_hosts=self.known_hosts,
            command=command,
        )

    def ssh(self, command, check=False, timeout=120, input=None):
        """Run ``command`` (a string for the remote shell, or an argv list) over real ssh."""
        res = subprocess.run(
            self.ssh_argv(command),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and res.returncode != 0:
            raise TestHostError(
                f"{self.name}: ssh {command!r} failed (exit {res.returncode}): {res.stderr.strip()[-300:]}"
            )
        return res

    def netns_exec_argv(self, argv, as_user=False):
        argv = list(argv)
        if as_user:
            argv = ["runuser", "-u", self.user, "--", *argv]
        if self.arch == "aarch64" and self.main_pid:
            # Enter the host completely: its net, mount, UTS and pid namespaces and its
            # chroot, so argv runs as arm64 code and sees the host's own /tmp and /run.
            return [
                "nsenter",
                "-t",
                str(self.main_pid),
                "--net",
                "--mount",
                "--uts",
                "--pid",
                "--root",
                "--wd=/",
                "--",
                *argv,
            ]
        return cmd.netns_exec_argv(self.netns, argv)

    def netns_exec(self, argv, check=False, as_user=False, timeout=120):
        """Run argv as root (or as the host's user) inside the host's namespace(s)."""
        res = subprocess.run(self.netns_exec_argv(argv, as_user), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise TestHostError(
                f"{self.name}: {shlex.join(argv)} failed (exit {res.returncode}): {res.stderr.strip()[-300:]}"
            )
        return res

    def register(self, inventory_path=None, name=None, accept_key=True, settings=None, groups=None):
        """Write this host into a Tiramisu inventory (and its known_hosts when accept_key)."""
        name = name or self.name
        invmod.validate_name(name)
        with invmod.locked_inventory(inventory_path) as inv:
            old = inv.hosts.get(name)
            inv.hosts[name] = invmod.HostEntry(
                name=name,
                hostname=self.hostname,
                user=self.user,
                port=self.port,
                key=self.key_path,
                groups=list(groups if groups is not None else (old.groups if old else [])),
                settings=dict(settings if settings is not None else (old.settings if old else {})),
            )
            known = inv.known_hosts_path
        if accept_key:
            add_known_host(known, self.host_key_line)
        return name

    def alive(self):
        return bool(self.pids) and any(proc_alive(p) for p in self.pids)

    def stop(self):
        """Tear the host down completely. Idempotent."""
        record = registry.read_record(self.id)
        left = registry.teardown(record or self._record())
        self.pids = []
        if left:
            raise TestHostError(f"{self.name}: processes {left} survived SIGKILL")

    def _record(self):
        return {"id": self.id, "netns": self.netns, "user_local": self.user if self.arch == "x86_64" else None}

    def to_dict(self):
        return {
            k: getattr(self, k)
            for k in (
                "name",
                "arch",
                "hostname",
                "port",
                "user",
                "key_path",
                "host_key_line",
                "netns",
                "pids",
                "id",
                "dir",
                "main_pid",
            )
        }


# ------------------------------------------------------------ requirements ---


def missing_requirements(arch):
    """Why hosts of ``arch`` cannot be made here (one line), or None."""
    if arch not in ARCHES:
        return f"unknown test host architecture {arch!r} (known: {', '.join(ARCHES)})"
    if os.geteuid() != 0:
        return "real SSH test hosts need root (network namespaces, users, mounts); running as non-root"
    tools = ["ip", "ssh", "ssh-keygen", "unshare", "nsenter", "useradd", "userdel", "usermod", "runuser"]
    missing = [t for t in tools if shutil.which(t) is None]
    if not os.path.exists(cmd.SSHD):
        missing.append("sshd (openssh-server)")
    if missing:
        return f"missing tools for test hosts: {', '.join(missing)}"
    if arch == "aarch64":
        reason = binfmt_problem()
        if reason:
            return reason
        if rootfs.cached_tarball() is None:
            lacking = [t for t in ("debootstrap", "zstd") if shutil.which(t) is None]
            if lacking:
                return f"the arm64 root is not cached and {', '.join(lacking)} is missing"
        elif shutil.which("zstd") is None:
            return "zstd is missing (needed to unpack the cached arm64 root)"
    return None


def binfmt_problem(path="/proc/sys/fs/binfmt_misc/qemu-aarch64"):
    """None when qemu-aarch64 is registered, enabled and pre-opened (flag F, works in a chroot)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return (
            "qemu-aarch64 is not registered in binfmt_misc (install qemu-user-static binfmt-support; "
            "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64)"
        )
    lines = text.splitlines()
    if not lines or lines[0].strip() != "enabled":
        return "qemu-aarch64 binfmt_misc entry is disabled (update-binfmts --enable qemu-aarch64)"
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    if "F" not in flags:
        return "qemu-aarch64 binfmt_misc entry lacks the F flag (use qemu-user-static, not qemu-user)"
    return None


# ------------------------------------------------------------------ start ---


def _allocate(name, arch, owner, root_login=False):
    """Reserve an id and a subnet under the global lock; write the record first."""
    registry.cleanup_leftovers()
    with registry.global_lock() as base:
        while True:
            hid = cmd.host_id(secrets.token_hex(3))
            if not (base / hid).exists() and hid not in registry.netns_list():
                with contextlib.suppress(KeyError):
                    pwd.getpwnam(hid)
                    continue
                break
        subnet = cmd.pick_subnet(registry.used_networks(), start=secrets.randbelow(1024))
        record = {
            "id": hid,
            "name": name,
            "arch": arch,
            "netns": hid,
            "subnet": str(subnet.network),
            "hostname": subnet.inside,
            "port": SSH_PORT,
            "owner": registry.owner_self() if owner else None,
            "procs": [],
            "created": time.time(),
            "user_local": hid if arch == "x86_64" else None,
            "root_login": bool(root_login),
        }
        registry.write_record(record)
    registry.log_event("allocate", hid, name, arch, record["subnet"])
    return record, subnet


def _netns_up(netns, subnet):
    for argv in cmd.netns_up_cmds(netns, subnet):
        run(argv)


def _keys(hdir, host_key_path):
    client = hdir / "client_ed25519"
    run(cmd.keygen_argv(str(client), "tiramisu-testhost-client"))
    run(cmd.keygen_argv(str(host_key_path), "tiramisu-testhost-hostkey"))
    return client, Path(str(client) + ".pub").read_text().strip(), Path(str(host_key_path) + ".pub").read_text()


def _wait_banner(host, port, proc_check, timeout):
    """Until sshd answers with its banner; raise with the log when it died instead."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        problem = proc_check()
        if problem:
            raise TestHostError(problem)
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                s.settimeout(5)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.05)
    raise TestHostError(f"sshd on {host}:{port} did not answer within {timeout:.0f} s ({last})")


def _log_tail(path, n=3):
    with contextlib.suppress(OSError):
        return " | ".join(Path(path).read_text().strip().splitlines()[-n:])
    return ""


def _launch(argv, log_path):
    with open(log_path, "ab") as log:
        # Own session: a Ctrl-C meant for pytest doesn't reach the host's sshd.
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)


def _finish(record, proc, extra_pids=()):
    pids = [proc.pid, *extra_pids]
    record["procs"] = [[p, proc_starttime(p)] for p in pids if proc_starttime(p) is not None]
    registry.write_record(record)


def _started(record, subnet, hdir, user, client, host_pub, popen, main_pid=None):
    return TestHost(
        name=record["name"],
        arch=record["arch"],
        hostname=subnet.inside,
        port=SSH_PORT,
        user=user,
        key_path=str(client),
        host_key_line=cmd.known_hosts_line(subnet.inside, SSH_PORT, host_pub),
        netns=record["netns"],
        pids=[popen.pid] + ([main_pid] if main_pid and main_pid != popen.pid else []),
        id=record["id"],
        dir=str(hdir),
        main_pid=main_pid or popen.pid,
    )


def start_x86_host(name="x86_64", owner=True, home_size="1G", ready_timeout=30, root=False):
    """Start an x86_64 host: sshd in a fresh network namespace, a fresh user of this machine.

    ``owner=True`` ties the host to this process (a later run cleans it up if this
    process dies without stopping it); hand-started hosts pass ``owner=False``.

    ``root=True``: the login is uid 0 (a box reached as root). That is this
    machine's root, so it gets its own account (a uid-0 alias named like the
    host id) whose $HOME is the host's own tmpfs, and sshd runs with private
    mounts (see commands.root_host_sshd_argv). Tiramisu only writes below
    $HOME; teardown kills by namespace, never by uid 0, and removes the alias.
    """
    reason = missing_requirements("x86_64")
    if reason:
        raise TestHostError(reason)
    record, subnet = _allocate(name, "x86_64", owner, root_login=root)
    hid = record["id"]
    hdir = registry.base_dir() / hid
    try:
        os.chmod(hdir, 0o755)
        home = hdir / "home"
        home.mkdir(mode=0o700)
        run(cmd.root_alias_useradd_argv(hid, str(home)) if root else cmd.useradd_argv(hid, str(home)))
        run(cmd.unlock_argv(hid))
        pw = pwd.getpwnam(hid)
        # A small home of its own: "disk full" tests fill this, not the machine.
        run(
            [
                "mount",
                "-t",
                "tmpfs",
                "-o",
                f"size={home_size},mode=0700,uid={pw.pw_uid},gid={pw.pw_gid}",
                "tmpfs",
                str(home),
            ]
        )
        for skel in Path("/etc/skel").glob(".*"):
            if skel.is_file():
                shutil.copy(skel, home / skel.name)
                os.chown(home / skel.name, pw.pw_uid, pw.pw_gid)
        host_key = hdir / "ssh_host_ed25519_key"
        client, client_pub, host_pub = _keys(hdir, host_key)
        _install_authorized_key(home, client_pub, pw.pw_uid, pw.pw_gid)
        conf = hdir / "sshd_config"
        conf.write_text(
            cmd.sshd_config(
                port=SSH_PORT,
                listen=subnet.inside,
                host_keys=[str(host_key)],
                pid_file=str(hdir / "sshd.pid"),
                authorized_keys=".ssh/authorized_keys",
                allow_users=[hid],
                permit_root="prohibit-password" if root else None,
            )
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        run([cmd.SSHD, "-t", "-f", str(conf)])
        _netns_up(hid, subnet)
        sshd = [cmd.SSHD, "-D", "-e", "-f", str(conf)]
        argv = cmd.root_host_sshd_argv(hid, sshd) if root else cmd.netns_exec_argv(hid, sshd)
        proc = _launch(argv, hdir / "sshd.log")
        _finish(record, proc)
        _wait_banner(
            subnet.inside,
            SSH_PORT,
            lambda: None if proc.poll() is None else f"sshd of {name} exited: {_log_tail(hdir / 'sshd.log')}",
            ready_timeout,
        )
        host = _started(record, subnet, hdir, hid, client, host_pub, proc)
        (hdir / "known_hosts").write_text(host.host_key_line + "\n")
        return host
    except BaseException:
        registry.teardown(registry.read_record(hid) or record)
        raise


def _install_authorized_key(home, client_pub, uid, gid):
    ssh_dir = Path(home) / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(client_pub + "\n")
    os.chmod(keys, 0o600)
    for p in (ssh_dir, keys):
        os.chown(p, uid, gid)


def _root_passwd_entry(root, user):
    for line in (Path(root) / "etc" / "passwd").read_text().splitlines():
        parts = line.split(":")
        if parts[0] == user:
            return int(parts[2]), int(parts[3]), parts[5]
    raise TestHostError(f"user {user!r} missing in the arm64 root")


def start_aarch64_host(name="aarch64", owner=True, root_size="2G", ready_timeout=60, progress=None):
    """Start an aarch64 host: the arm64 Debian root under qemu-user in its own namespaces."""
    reason = missing_requirements("aarch64")
    if reason:
        raise TestHostError(reason)
    tarball = rootfs.rootfs_tarball(progress=progress)  # before allocating: may take minutes once
    record, subnet = _allocate(name, "aarch64", owner)
    hid = record["id"]
    hdir = registry.base_dir() / hid
    try:
        root = hdir / "root"
        root.mkdir(mode=0o755)
        # The host's whole disk: a tmpfs (fast to fill, gone at teardown, no real disk used).
        run(["mount", "-t", "tmpfs", "-o", f"size={root_size},mode=0755", "tmpfs", str(root)])
        rootfs.extract(tarball, root)
        user = cmd.ROOTFS_USER
        uid, gid, home_in_root = _root_passwd_entry(root, user)
        etc_ssh = root / "etc" / "ssh"
        host_key = etc_ssh / "ssh_host_ed25519_key"
        client, client_pub, host_pub = _keys(hdir, host_key)
        _install_authorized_key(root / home_in_root.lstrip("/"), client_pub, uid, gid)
        (etc_ssh / "tiramisu_sshd_config").write_text(
            cmd.sshd_config(
                port=SSH_PORT,
                listen=subnet.inside,
                host_keys=["/etc/ssh/ssh_host_ed25519_key"],
                pid_file="/run/sshd.pid",
                authorized_keys=".ssh/authorized_keys",
                allow_users=[user],
            )
        )
        hostname = name if _hostname_ok(name) else hid
        (root / "etc" / "hosts").write_text(f"127.0.0.1\tlocalhost\n{subnet.inside}\t{hostname}\n")
        script = hdir / "start.sh"
        script.write_text(cmd.aarch64_start_script(str(root), hostname, "/etc/ssh/tiramisu_sshd_config"))
        _netns_up(hid, subnet)
        proc = _launch(cmd.aarch64_start_argv(hid, str(script)), hdir / "sshd.log")
        _finish(record, proc)
        _wait_banner(
            subnet.inside,
            SSH_PORT,
            lambda: None if proc.poll() is None else f"aarch64 host {name} exited: {_log_tail(hdir / 'sshd.log')}",
            ready_timeout,
        )
        main_pid = _find_sshd(hid, proc.pid)
        _finish(record, proc, [main_pid] if main_pid else [])
        host = _started(record, subnet, hdir, user, client, host_pub, proc, main_pid)
        (hdir / "known_hosts").write_text(host.host_key_line + "\n")
        return host
    except BaseException:
        registry.teardown(registry.read_record(hid) or record)
        raise


def _hostname_ok(name):
    return bool(name) and len(name) <= 63 and all(ch.isalnum() or ch == "-" for ch in name)


def _find_sshd(netns, unshare_pid):
    """The arm64 sshd: the child of our ``unshare`` (pid 1 of the host's pid namespace)."""
    for pid in registry.netns_pids(netns):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == unshare_pid and proc_comm(pid) == "sshd":
                return pid
    return None


def start_host(arch, name=None, **kw):
    if arch in ("x86_64-root", "root"):
        return start_x86_host(name=name or "x86_64-root", root=True, **kw)
    if arch in ("x86_64", "amd64", "x86"):
        return start_x86_host(name=name or "x86_64", **kw)
    if arch in ("aarch64", "arm64"):
        return start_aarch64_host(name=name or "aarch64", **kw)
    raise TestHostError(f"unknown test host architecture {arch!r} (known: {', '.join(ARCHES)})")


def host_from_record(record):
    """A TestHost for a recorded host (``scripts/testhost down``/``list``)."""
    hdir = registry.base_dir() / record["id"]
    procs = record.get("procs") or []
    arch = record.get("arch")
    user = record.get("user_local") or cmd.ROOTFS_USER
    known = hdir / "known_hosts"
    line = known.read_text().strip() if known.exists() else ""
    main_pid = procs[-1][0] if procs else None
    return TestHost(
        name=record.get("name", record["id"]),
        arch=arch,
        hostname=record.get("hostname", ""),
        port=record.get("port", SSH_PORT),
        user=user,
        key_path=str(hdir / "client_ed25519"),
        host_key_line=line,
        netns=record.get("netns", record["id"]),
        pids=[p for p, _ in procs],
        id=record["id"],
        dir=str(hdir),
        main_pid=main_pid,
    )
