"""The local sshd the sandbox runs (and the test hosts reuse): its config, keys,
known_hosts lines, and a look at local processes by pid.

Product code: the sandbox (:mod:`sandbox`) needs it without root; the
root-only test hosts (``testhosts/`` at the top of the repository) build on it.
"""

import contextlib
import fcntl
import os
from pathlib import Path
from typing import List, Optional, Sequence

SSHD = "/usr/sbin/sshd"


def _arg(value):
    """An sshd_config argument: double-quoted when it holds whitespace (sshd splits on it)."""
    value = str(value)
    if '"' in value or "\n" in value:
        raise ValueError(f"sshd_config cannot hold {value!r}")
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def sshd_config(
    *,
    port: int,
    listen: str,
    host_keys: Sequence[str],
    pid_file: str,
    authorized_keys: str,
    allow_users: Sequence[str],
    strict_modes: bool = True,
    permit_root: Optional[str] = None,
    log_level: str = "INFO",
) -> str:
    """An sshd_config for a test host or the sandbox: key auth only, sftp built in."""
    lines = [
        "# Written by Tiramisu for a test host or the sandbox. Key authentication only.",
        f"Port {int(port)}",
        f"ListenAddress {listen}",
    ]
    lines += [f"HostKey {_arg(k)}" for k in host_keys]
    lines += [
        f"PidFile {_arg(pid_file)}",
        f"AuthorizedKeysFile {_arg(authorized_keys)}",
        f"AllowUsers {' '.join(allow_users)}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        f"StrictModes {'yes' if strict_modes else 'no'}",
        "UseDNS no",
        "PrintMotd no",
        "PrintLastLog no",
        "X11Forwarding no",
        "AllowTcpForwarding yes",  # tests may tunnel to the box's loopback ports
        "Subsystem sftp internal-sftp",
        f"LogLevel {log_level}",
        # Many short test connections in parallel: don't throttle them.
        "MaxStartups 100:30:200",
        "MaxSessions 50",
    ]
    if permit_root:
        lines.append(f"PermitRootLogin {permit_root}")
    return "\n".join(lines) + "\n"


def keygen_argv(path: str, comment: str = "tiramisu-testhost") -> List[str]:
    return ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path]


def known_hosts_pattern(hostname: str, port: int) -> str:
    """How OpenSSH names a host in known_hosts: bare for port 22, else ``[h]:p``."""
    return hostname if int(port) == 22 else f"[{hostname}]:{int(port)}"


def known_hosts_line(hostname: str, port: int, public_key_line: str) -> str:
    """A known_hosts line from a ``*.pub`` file's content (``type base64 [comment]``)."""
    parts = public_key_line.split()
    if len(parts) < 2:
        raise ValueError(f"not a public key line: {public_key_line!r}")
    return f"{known_hosts_pattern(hostname, port)} {parts[0]} {parts[1]}"


def merge_known_hosts(existing: str, line: str) -> str:
    """known_hosts text with ``line`` replacing any earlier line for the same host+type."""
    pattern, keytype = line.split()[:2]
    kept = []
    for old in existing.splitlines():
        words = old.split()
        if len(words) >= 2 and pattern in words[0].split(",") and words[1] == keytype:
            continue
        if old.strip():
            kept.append(old)
    kept.append(line)
    return "\n".join(kept) + "\n"


def proc_starttime(pid):
    """The start time (clock ticks after boot) of a pid, or None when it is gone.

    A pid plus its start time names one process for good: pids are reused,
    the pair is not.
    """
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


def proc_alive(pid, starttime=None):
    now = proc_starttime(pid)
    return now is not None and (starttime is None or now == starttime)


def proc_comm(pid):
    try:
        return Path(f"/proc/{int(pid)}/comm").read_text().strip()
    except (OSError, ValueError):
        return None


def add_known_host(path, line):
    """Add (or replace) one host key line in an OpenSSH known_hosts file, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = path.read_text() if path.exists() else ""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(merge_known_hosts(existing, line))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
