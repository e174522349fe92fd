"""Atomic uploads over SSH, verified by sha256, skipped when unchanged.

Why not SFTP put + rename: if the connection is cut mid-upload, an SFTP temp
file stays behind on the box until someone cleans it. Instead each file is
streamed to a small sh receiver on the box that writes a temp file in the
destination directory, checks its sha256 against the expected digest, and only
then chmods and renames it into place (rename within a directory is atomic).
Its ``trap`` removes the temp file on any exit, so a cut connection (EOF on
stdin → short file → digest mismatch) leaves neither a half file live nor a
temp file behind.
"""

import hashlib
import os
import posixpath
import time
from dataclasses import dataclass

from .errors import ConnectError, RemoteError
from .remote import q

CHUNK = 256 * 1024
TMP_PREFIX = ".tiramisu-upload-"


@dataclass(frozen=True)
class Upload:
    local: str
    remote: str
    sha256: str
    size: int
    mode: str = "600"

    @classmethod
    def of(cls, local, remote, mode="600"):
        from .artifacts.cache import sha256_file

        return cls(str(local), remote, sha256_file(local), os.path.getsize(local), mode)


def plan_uploads(uploads, remote_hashes):
    """The uploads whose remote file is missing or differs (pure)."""
    return [u for u in uploads if remote_hashes.get(u.remote) != u.sha256]


def receiver_command(remote, sha256, size, mode):
    """The sh receiver for one file (pure; see module docstring)."""
    directory = posixpath.dirname(remote)
    tmp_expr = f'{q(directory)}/{TMP_PREFIX}$$-{q(posixpath.basename(remote))}'
    return " ".join([
        f"T={tmp_expr};",
        "trap 'rm -f \"$T\"' EXIT HUP INT TERM PIPE;",
        f'head -c {int(size)} > "$T" || exit 70;',
        'got=$(sha256sum < "$T" | cut -c1-64);',
        f'if [ "$got" != {q(sha256)} ]; then echo "tiramisu-upload: checksum mismatch (short or corrupt transfer)" >&2; exit 71; fi;',
        f'chmod {q(mode)} "$T" && mv -f "$T" {q(remote)} && trap - EXIT',
    ])


def cleanup_command(directories):
    """Remove temp files a killed receiver could not (pure)."""
    dirs = " ".join(q(d) for d in directories)
    return f"for d in {dirs}; do rm -f \"$d\"/{TMP_PREFIX}* 2>/dev/null; done; true"


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class Progress:
    """A one-line progress display on stderr (a bar on a terminal, sparse lines otherwise)."""

    def __init__(self, label, total, note, tty=None):
        import sys

        self.label, self.total, self.note = label, max(total, 1), note
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.started = time.monotonic()
        self.last = 0.0
        self.done = 0

    def update(self, sent):
        self.done = sent
        now = time.monotonic()
        if self.tty and (now - self.last > 0.1 or sent >= self.total):
            import sys

            frac = sent / self.total
            bar = "#" * int(frac * 24)
            sys.stderr.write(f"\r  {self.label:32.32} [{bar:24}] {frac * 100:5.1f}% {human_bytes(sent)}")
            sys.stderr.flush()
            self.last = now

    def finish(self):
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0
        if self.tty:
            import sys

            sys.stderr.write("\n")
        self.note(f"  uploaded {self.label} ({human_bytes(self.done)} in {elapsed:.2f}s, {human_bytes(rate)}/s)")


def upload(conn, item: Upload, note=lambda *a: None, timeout=600):
    """Stream one file to the box atomically; raises on any failure."""
    conn.open()
    transport = conn.client.get_transport()
    if transport is None or not transport.is_active():
        raise ConnectError(f"connection to {conn.host} lost before upload")
    chan = transport.open_session(timeout=30)
    chan.settimeout(timeout)
    progress = Progress(posixpath.basename(item.remote), item.size, note)
    stderr = b""
    try:
        chan.exec_command(receiver_command(item.remote, item.sha256, item.size, item.mode))
        sent = 0
        with open(item.local, "rb") as fh:
            while True:
                chunk = fh.read(CHUNK)
                if not chunk:
                    break
                chan.sendall(chunk)
                sent += len(chunk)
                progress.update(sent)
        chan.shutdown_write()
        status = chan.recv_exit_status()
        while chan.recv_stderr_ready():
            stderr += chan.recv_stderr(65536)
    except (OSError, EOFError) as exc:
        raise ConnectError(f"upload of {item.remote} interrupted: {exc or exc.__class__.__name__}; "
                           f"nothing was replaced on the box")
    finally:
        chan.close()
    if status != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        raise RemoteError(
            f"upload of {item.remote} failed (exit {status})" + (f": {detail[-1]}" if detail else ""),
            code=status if 0 < status < 256 else 1,
        )
    progress.finish()


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()
