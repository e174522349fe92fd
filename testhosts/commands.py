"""Pure builders for the test hosts: configs, argument lists, shell scripts.

Nothing here touches the machine; :mod:`.hosts`, :mod:`.rootfs` and
:mod:`.registry` run what these functions return. Tests check them as tables.
"""

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

from tiramisu_tasks.sshd import SSHD, keygen_argv, known_hosts_line, known_hosts_pattern, merge_known_hosts, sshd_config  # noqa: F401

# Every name this module hands out starts with PREFIX, so the leftover cleanup
# can recognise (and only ever touch) our own namespaces, links and users.
PREFIX = "tmsu"
HOST_ID_RE = re.compile(r"^tmsu-[0-9a-f]{6}$")
LINK_RE = re.compile(r"^tmsu[0-9a-f]{6}[hn]$")

# The private range the veth subnets are carved from: /30 blocks, one per host.
POOL = ipaddress.ip_network("10.213.0.0/16")
SUBNET_PREFIX = 30


# ------------------------------------------------------------------ names ---


def host_id(token: str) -> str:
    """``tmsu-<6 hex>`` from a random token: the id of one host (netns, user, dir)."""
    token = token.lower()
    if not re.fullmatch(r"[0-9a-f]{6}", token):
        raise ValueError(f"host token must be 6 hex digits, got {token!r}")
    return f"{PREFIX}-{token}"


def link_names(hid: str):
    """(root-side, namespace-side) veth names; at most 15 chars (IFNAMSIZ-1)."""
    token = hid.split("-", 1)[1]
    return f"{PREFIX}{token}h", f"{PREFIX}{token}n"


# ---------------------------------------------------------------- subnets ---


@dataclass(frozen=True)
class Subnet:
    network: ipaddress.IPv4Network
    outside: str  # the root namespace's end
    inside: str  # the host's address (sshd listens here)


def subnet_for(index: int, pool=POOL, prefix=SUBNET_PREFIX) -> Subnet:
    """The ``index``-th /30 of the pool: .1 outside, .2 inside."""
    count = 2 ** (prefix - pool.prefixlen)
    if not 0 <= index < count:
        raise ValueError(f"subnet index {index} outside 0..{count - 1}")
    net = ipaddress.ip_network(f"{pool.network_address + index * (2 ** (32 - prefix))}/{prefix}")
    hosts = list(net.hosts())
    return Subnet(net, str(hosts[0]), str(hosts[1]))


def pick_subnet(used: Iterable[str], start: int = 0, pool=POOL, prefix=SUBNET_PREFIX) -> Subnet:
    """First /30 (from ``start``, wrapping) that overlaps none of ``used``.

    ``used`` holds networks or addresses in CIDR form (``10.213.0.1/30``,
    ``192.0.2.0/24``): every address and route of the root namespace, so a
    new subnet can never shadow or collide with anything already there.
    """
    taken = []
    for item in used:
        try:
            taken.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            continue
    taken = [n for n in taken if n.version == 4 and n.prefixlen > 0]  # default routes don't count
    count = 2 ** (prefix - pool.prefixlen)
    for step in range(count):
        candidate = subnet_for((start + step) % count, pool, prefix)
        if not any(candidate.network.overlaps(n) for n in taken):
            return candidate
    raise RuntimeError(f"no free /{prefix} left in {pool}")


def parse_ip_addr_routes(addr_text: str, route_text: str) -> List[str]:
    """CIDRs from ``ip -o -4 addr`` and ``ip -4 route`` output (first word of a route)."""
    out = []
    for line in addr_text.splitlines():
        m = re.search(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)", line)
        if m:
            out.append(m.group(1))
    for line in route_text.splitlines():
        words = line.split()
        if words and words[0] != "default":
            dest = words[0]
            out.append(dest if "/" in dest else dest + "/32")
    return out


# ------------------------------------------------------------ netns / veth ---


def netns_up_cmds(netns: str, subnet: Subnet) -> List[List[str]]:
    """Create the namespace and a veth pair; routes only for the /30 (implicit)."""
    outside, inside = link_names(netns)
    plen = subnet.network.prefixlen
    return [
        ["ip", "netns", "add", netns],
        ["ip", "link", "add", outside, "type", "veth", "peer", "name", inside],
        ["ip", "link", "set", inside, "netns", netns],
        ["ip", "addr", "add", f"{subnet.outside}/{plen}", "dev", outside],
        ["ip", "link", "set", outside, "up"],
        ["ip", "-n", netns, "link", "set", "lo", "up"],
        ["ip", "-n", netns, "addr", "add", f"{subnet.inside}/{plen}", "dev", inside],
        ["ip", "-n", netns, "link", "set", inside, "up"],
    ]


def netns_down_cmds(netns: str) -> List[List[str]]:
    """Delete the root-side veth (its peer goes with it) and the namespace."""
    outside, _ = link_names(netns)
    return [["ip", "link", "del", outside], ["ip", "netns", "del", netns]]


def netns_exec_argv(netns: Optional[str], argv: Sequence[str]) -> List[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


# ------------------------------------------------------------------ users ---


def useradd_argv(user: str, home: str, shell: str = "/bin/bash") -> List[str]:
    # -M: the home is a tmpfs we mount and populate ourselves (see hosts.py).
    return [
        "useradd",
        "--no-create-home",
        "--home-dir",
        home,
        "--shell",
        shell,
        "--user-group",
        "--comment",
        "Tiramisu test host",
        user,
    ]


def root_alias_useradd_argv(user: str, home: str, shell: str = "/bin/bash") -> List[str]:
    """A second uid-0 account with its own home: an SSH login "as root" whose
    $HOME is a fresh test directory, never /root. No group of its own (gid 0),
    so removing it later removes nothing else."""
    return [
        "useradd",
        "--non-unique",
        "--uid",
        "0",
        "--gid",
        "0",
        "--no-create-home",
        "--home-dir",
        home,
        "--shell",
        shell,
        "--comment",
        "Tiramisu test host (root)",
        user,
    ]


# Inside the root host's private mount namespace: the per-user crontabs dir is
# a fresh tmpfs, so `crontab` run there (webserv.enable-boot as uid 0, which
# cron files under "root") can never edit this machine's root crontab.
ROOT_HOST_PRIVATE_DIRS = ("/var/spool/cron/crontabs",)


def root_host_sshd_argv(netns: str, sshd_argv: Sequence[str]) -> List[str]:
    """sshd of a root test host: in its network namespace, with private mounts.

    ``ip netns exec`` already runs in a new mount namespace whose mounts don't
    propagate back (it makes / a slave); tmpfs over ROOT_HOST_PRIVATE_DIRS.
    """
    lines = ["set -e"]
    for d in ROOT_HOST_PRIVATE_DIRS:
        qd = shlex.quote(d)
        lines.append(
            f"if [ -d {qd} ]; then mount -t tmpfs -o size=1m,mode=1730 tmpfs {qd}; "
            f"chgrp crontab {qd} 2>/dev/null || true; fi"
        )
    lines.append(f"exec {shlex.join(list(sshd_argv))}")
    return netns_exec_argv(netns, ["/bin/sh", "-c", "\n".join(lines)])


def unlock_argv(user: str) -> List[str]:
    """useradd leaves the account locked ('!'); with UsePAM no sshd refuses it."""
    return ["usermod", "-p", "*", user]


def userdel_argv(user: str) -> List[str]:
    return ["userdel", "--force", user]


# ------------------------------------------------------------------- sshd ---


def ssh_argv(
    *,
    hostname: str,
    port: int,
    user: str,
    key_path: str,
    known_hosts: str,
    command,
    connect_timeout: int = 15,
) -> List[str]:
    """The system ssh client, hermetic: no user config, only our key and known_hosts."""
    argv = [
        "ssh",
        "-F",
        "none",
        "-i",
        str(key_path),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={int(connect_timeout)}",
        "-o",
        "LogLevel=ERROR",
        "-p",
        str(int(port)),
        "-l",
        user,
        hostname,
        "--",
    ]
    # ssh joins its arguments with spaces for the remote shell: quote a list.
    argv.append(command if isinstance(command, str) else shlex.join(list(command)))
    return argv


# ------------------------------------------------------------ arm64 rootfs ---

ROOTFS_SUITE = "bookworm"
ROOTFS_ARCH = "arm64"
ROOTFS_VARIANT = "minbase"
ROOTFS_INCLUDE = ("openssh-server", "procps", "iproute2")
# The unprivileged account inside the arm64 root (created at build time).
ROOTFS_USER = "tmsu"
# Bump when the build or slimming below changes: it is part of the cache key.
ROOTFS_RECIPE = 1

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def parse_debian_mirror(deb822_text: str = "", list_text: str = "", suite: str = ROOTFS_SUITE) -> str:
    """The machine's Debian mirror for ``suite`` (deb822 sources first, then sources.list)."""
    for stanza in re.split(r"\n\s*\n", deb822_text or ""):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            k, v = line.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    for line in (list_text or "").splitlines():
        words = line.split("#", 1)[0].split()
        # deb [opts] URI SUITE COMPONENTS...
        if words and words[0] == "deb":
            words = [w for w in words[1:] if not w.startswith("[") and not w.endswith("]")]
            if len(words) >= 2 and words[1] == suite:
                return words[0].rstrip("/")
    return DEFAULT_MIRROR


def rootfs_inputs(mirror: str) -> dict:
    """Everything that decides the arm64 root's content (the cache key)."""
    return {
        "suite": ROOTFS_SUITE,
        "arch": ROOTFS_ARCH,
        "variant": ROOTFS_VARIANT,
        "include": list(ROOTFS_INCLUDE),
        "mirror": mirror,
        "user": ROOTFS_USER,
        "recipe": ROOTFS_RECIPE,
    }


def debootstrap_argv(root: str, mirror: str) -> List[str]:
    return [
        "debootstrap",
        f"--arch={ROOTFS_ARCH}",
        f"--variant={ROOTFS_VARIANT}",
        f"--include={','.join(ROOTFS_INCLUDE)}",
        ROOTFS_SUITE,
        root,
        mirror,
    ]


# Paths removed from the built root: docs, manuals, translations, apt lists and
# downloaded debs, the host keys debootstrap generated (each host gets its own).
SLIM_PATHS = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*",
    "var/log/*.log",
    "var/cache/debconf/*-old",
    "etc/ssh/ssh_host_*",
)


def rootfs_user_cmds(root: str, user: str = ROOTFS_USER) -> List[List[str]]:
    """Create the unprivileged user inside the arm64 root (runs as arm64 code)."""
    return [
        ["chroot", root, "useradd", "--create-home", "--shell", "/bin/bash", "--user-group", user],
        ["chroot", root, "usermod", "-p", "*", user],
    ]


def tar_create_argv(root: str, dest: str, threads: int = 2, level: int = 12) -> List[str]:
    return [
        "tar",
        "--numeric-owner",
        "--xattrs",
        "-C",
        root,
        "-I",
        f"zstd -q -T{int(threads)} -{int(level)}",
        "-cf",
        dest,
        ".",
    ]


def tar_extract_argv(tarball: str, dest: str) -> List[str]:
    return ["tar", "--numeric-owner", "--xattrs", "-I", "zstd -q -d", "-C", dest, "-xpf", tarball]


def aarch64_start_script(root: str, hostname: str, sshd_config_in_root: str) -> str:
    """The shell that becomes pid 1 of the arm64 host's pid namespace, then sshd.

    Runs (as x86 code) inside ``unshare --mount --uts --pid --fork``: private
    mounts for the root, then ``exec chroot ROOT sshd -D``, after which every
    process on the host is arm64 code under qemu-user (binfmt_misc, flag F).
    """
    r = shlex.quote(root)
    lines = [
        "set -eu",
        # Our mounts must not leak back into the root namespace.
        "mount --make-rprivate /",
        f"mount -t proc proc {r}/proc",
        f"mount -t sysfs sysfs {r}/sys || true",
        f"mount -t tmpfs -o mode=755,size=16m tmpfs {r}/dev",
    ]
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        lines.append(f": > {r}/dev/{node}; mount --bind /dev/{node} {r}/dev/{node}")
    lines += [
        f"mkdir -p {r}/dev/pts {r}/dev/shm",
        f"mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts {r}/dev/pts",
        f"ln -s pts/ptmx {r}/dev/ptmx",
        f"ln -s /proc/self/fd {r}/dev/fd",
        f"ln -s /proc/self/fd/0 {r}/dev/stdin",
        f"ln -s /proc/self/fd/1 {r}/dev/stdout",
        f"ln -s /proc/self/fd/2 {r}/dev/stderr",
        f"mount -t tmpfs -o mode=1777 tmpfs {r}/dev/shm",
        f"mount -t tmpfs -o mode=1777,size=256m tmpfs {r}/tmp",
        f"mount -t tmpfs -o mode=755,size=32m tmpfs {r}/run",
        f"mkdir -p -m 755 {r}/run/sshd",
        f"hostname {shlex.quote(hostname)}",
        f"echo {shlex.quote(hostname)} > {r}/etc/hostname",
        f"exec chroot {r} {SSHD} -D -e -f {shlex.quote(sshd_config_in_root)}",
    ]
    return "\n".join(lines) + "\n"


def aarch64_start_argv(netns: str, script_path: str) -> List[str]:
    return [
        "ip",
        "netns",
        "exec",
        netns,
        "unshare",
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--kill-child",
        "/bin/sh",
        script_path,
    ]
