"""Host key verification: known hosts are checked, unknown ones refused.

Fabric's Connection auto-adds every host key it sees; Tiramisu replaces that
policy. Trusted keys come from ~/.ssh/known_hosts (read only) and from the
``tiramisu_known_hosts`` file beside the inventory, where keys accepted with
``--accept-new`` (or written by sandbox.up / the test hosts) are recorded so
that every later task of every front end trusts them. A changed key is always
refused (paramiko raises BadHostKeyException, reported by taskkit).
"""

import base64
import hashlib
import os
import threading
from pathlib import Path

import paramiko

from .errors import HostKeyError

_write_lock = threading.Lock()


def fingerprint(key):
    """OpenSSH-style ``SHA256:...`` fingerprint of a paramiko key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def known_hosts_name(hostname, port):
    """The host field OpenSSH writes: ``host`` on port 22, else ``[host]:port``."""
    port = int(port or 22)
    return hostname if port == 22 else f"[{hostname}]:{port}"


def known_hosts_line(hostname, port, key):
    return f"{known_hosts_name(hostname, port)} {key.get_name()} {key.get_base64()}"


def record_key(path, line):
    """Append a known_hosts line (idempotent), private mode."""
    path = Path(path)
    with _write_lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text().splitlines() if path.exists() else []
        if line.strip() in (ln.strip() for ln in existing):
            return
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as fh:
            fh.write(line.rstrip("\n") + "\n")


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, display_name):
        self.display_name = display_name

    def missing_host_key(self, client, hostname, key):
        raise HostKeyError(
            f"unknown host key for {self.display_name} ({hostname}): {key.get_name()} "
            f"{fingerprint(key)}; if that is the box's key, re-run with --accept-new "
            f"(host.check/host.add) to trust it"
        )


class AcceptNew(paramiko.MissingHostKeyPolicy):
    """Trust a key never seen before and record it (like OpenSSH accept-new)."""

    def __init__(self, record_path, notify=None):
        self.record_path = record_path
        self.notify = notify

    def missing_host_key(self, client, hostname, key):
        line = f"{hostname} {key.get_name()} {key.get_base64()}"
        record_key(self.record_path, line)
        client.get_host_keys().add(hostname, key.get_name(), key)
        if self.notify:
            self.notify(f"accepted new host key for {hostname}: {key.get_name()} {fingerprint(key)}")


def install_policy(client, display_name, tiramisu_known_hosts, accept_new=False, user_known_hosts=None, notify=None):
    """Load trusted keys into a paramiko SSHClient and set the missing-key policy."""
    user_known_hosts = user_known_hosts or os.path.expanduser("~/.ssh/known_hosts")
    for candidate in (user_known_hosts,):
        if candidate and os.path.isfile(candidate):
            try:
                client.load_system_host_keys(candidate)
            except (OSError, paramiko.SSHException):
                pass  # an unreadable personal file must not block our own list
    if tiramisu_known_hosts and os.path.isfile(tiramisu_known_hosts):
        client.get_host_keys().load(str(tiramisu_known_hosts))
    if accept_new:
        client.set_missing_host_key_policy(AcceptNew(tiramisu_known_hosts, notify))
    else:
        client.set_missing_host_key_policy(RefuseUnknown(display_name))
