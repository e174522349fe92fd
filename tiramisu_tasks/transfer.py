"""Atomic uploads over SSH, verified by sha256, skipped when unchanged.

All changed files of one operation travel as ONE tar stream to a small sh
receiver on the box, which

1. unpacks into a fresh staging directory inside the env dir (same filesystem,
   so renames are atomic),
2. checks every file's sha256 against the digests we sent,
3. optionally runs a check on the staged files (``nginx -t`` on a new config),
4. only then renames each file into place (a few renames, milliseconds).

Its ``trap`` removes the staging directory on any exit, so a cut connection
(tar sees EOF early → digest mismatch) leaves neither a half file live nor a
temp file behind, and nothing of a half-sent batch is switched in. Why not
SFTP put + posix-rename per file: a cut mid-batch would leave some files new
and some old (a binary next to a library it does not match), and SFTP temp
files stay behind until someone cleans them.

Large files travel compressed (:func:`pick_codec`: zstd, else xz, else gzip,
whichever the box has, probed with ``command -v``): each is compressed once
on this machine into ``<cache>/wire/`` under its sha256 (the shipped
binaries come from immutable cache entries, so every later setup of every
host reuses it), and the receiver unpacks it in the staging dir before the
digest check, which is made on the uncompressed bytes as before. Files a
host already has never get here (:func:`plan_uploads`).
"""

import hashlib
import os
import posixpath
import re
import threading
import time
from dataclasses import dataclass

from .errors import ConnectError, DiskFullError, RemoteError
from .remote import q


@dataclass(frozen=True)
class Upload:
    local: str
    remote: str
    sha256: str
    size: int
    mode: str = "600"

    @classmethod
    def of(cls, local, remote, mode="600"):
        st = os.stat(local)
        return cls(str(local), remote, file_sha256(local, st), st.st_size, mode)


_DIGESTS = {}  # (path, device, inode, size, mtime_ns, ctime_ns) -> sha256 hex
_DIGESTS_LOCK = threading.Lock()


def file_sha256(path, st=None):
    """The sha256 (hex) of a file, remembered for as long as its stat says it is the same file.

    A group's hosts ship the same ~30 MiB of artifacts: hashed once per run,
    not once per host. Any write changes mtime/ctime (a rename changes the
    inode), so a changed file is hashed again.
    """
    from .artifacts.cache import sha256_file

    st = st or os.stat(path)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    with _DIGESTS_LOCK:
        known = _DIGESTS.get(key)
    if known is None:
        known = sha256_file(path)
        with _DIGESTS_LOCK:
            if len(_DIGESTS) > 4096:
                _DIGESTS.clear()
            _DIGESTS[key] = known
    return known


# Files smaller than this go as they are (configs, VERSION: a few KiB, and
# per host, so a cached compressed copy would only fill the cache).
COMPRESS_MIN_BYTES = 64 * 1024

# codec -> (file suffix, the box's decompressor reading stdin, writing stdout).
# Preference order: zstd decompresses fastest, xz is smallest, gzip is everywhere.
CODECS = {"zstd": ("zst", "zstd -dcq"), "xz": ("xz", "xz -dc"), "gzip": ("gz", "gzip -dc")}
CODEC_ORDER = ("zstd", "xz", "gzip")
ZSTD_LEVEL = 12  # ~1/3 of a 30 MiB shipment; once per artifact (cached)
XZ_PRESET = 6
GZIP_LEVEL = 6


def _local_codec_ok(codec):
    if codec == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return False
    return codec in CODECS


def pick_codec(available):
    """The codec for a box that has the decompressors ``available`` (names), or None (pure but for imports)."""
    have = set(available or ())
    for codec in CODEC_ORDER:
        if codec in have and _local_codec_ok(codec):
            return codec
    return None


def compress_file(src, dst, codec):
    """Compress file ``src`` into ``dst`` with ``codec`` (one of :data:`CODECS`)."""
    import shutil

    with open(src, "rb") as fin, open(dst, "wb") as fout:
        if codec == "zstd":
            import zstandard

            zstandard.ZstdCompressor(level=ZSTD_LEVEL).copy_stream(fin, fout)
            return
        if codec == "xz":
            import lzma

            out = lzma.LZMAFile(fout, "wb", preset=XZ_PRESET)
        else:
            import gzip

            out = gzip.GzipFile(fileobj=fout, mode="wb", compresslevel=GZIP_LEVEL, mtime=0)
        with out:
            shutil.copyfileobj(fin, out, 1 << 20)


# What one write to the channel carries. tarfile's stream default (10 KiB
# records) makes every write a small SSH packet, each a wake-up and a pipe write
# for the box's sshd; 256 KiB writes go as full 32 KiB packets. Measured
# (BENCHMARKS.md "Fleet"): the box's CPU for a first setup's upload 0.41-0.60 s
# -> 0.28-0.39 s, alternating on fresh connections.
STREAM_CHUNK = 256 * 1024

_WIRE_LOCK = threading.Lock()


def wire_copy(upload, codec, cache_root=None):
    """Path of ``upload``'s file compressed with ``codec``, made once and kept in ``<cache>/wire/``.

    Keyed by the file's sha256 (and the codec and level), so any later batch
    with the same bytes reuses it; written to a temp name and renamed, so a
    cut never leaves a half file under the final name.
    """
    from .paths import cache_dir

    suffix = CODECS[codec][0]
    level = {"zstd": ZSTD_LEVEL, "xz": XZ_PRESET, "gzip": GZIP_LEVEL}[codec]
    folder = os.path.join(str(cache_root or cache_dir()), "wire")
    path = os.path.join(folder, f"{upload.sha256}.{level}.{suffix}")
    # Hosts of a group are set up by threads of one process: the first one
    # compresses, the others wait for it and reuse its copy.
    with _WIRE_LOCK:
        if os.path.exists(path):
            return path
        os.makedirs(folder, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"  # unique across processes; the lock covers threads
        try:
            compress_file(upload.local, tmp, codec)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def plan_uploads(uploads, remote_hashes):
    """The uploads whose remote file is missing or differs (pure)."""
    return [u for u in uploads if remote_hashes.get(u.remote) != u.sha256]


STAGE_PREFIX = ".tiramisu-upload-"


DISK_FULL_MARK = "tiramisu-upload: disk full"
DISK_FULL_EXIT = 75


def receiver_script(root, uploads, check=None, codec=None, compressed=()):
    """The sh receiver for a batch (pure). Member ``i`` of the tar is ``uploads[i]``.

    ``compressed``: indexes whose member is ``i.z``, ``uploads[i]`` compressed
    with ``codec``: unpacked to ``i`` in the staging dir before its check.

    ``check``: optional sh snippet run after verification with ``$T`` set to
    the staging dir (e.g. ``nginx -t`` on ``$T/3``); non-zero aborts the batch.

    A full disk ends with one ``tiramisu-upload: disk full: N KiB free at
    PATH`` line and exit 75, so the sender can tell it from a cut connection.
    It is recognised by what mktemp/tar said (ENOSPC, or GNU tar's "Wrote only
    N of M bytes"; captured in a variable, as nothing can be written to the
    disk), or, whatever they said, by less free space than the batch needs
    once the staging dir is gone.
    """
    need_kib = (sum(u.size for u in uploads) + 1023) // 1024
    lines = [
        "LC_ALL=C; export LC_ALL",  # English error texts
        f"free_kib() {{ df -Pk {q(root)} 2>/dev/null | awk 'NR==2 {{print $4}}'; }}",
        f'full() {{ [ -d "$T" ] && rm -rf "$T"; echo "{DISK_FULL_MARK}: $(free_kib) KiB free at "{q(root)} >&2; '
        f"exit {DISK_FULL_EXIT}; }}",
        # ENOSPC, or GNU tar's short write, or simply less room than the batch needs
        f"no_room() {{ case \"$1\" in *'No space left'*|*'Wrote only'*) return 0;; esac; "
        f'[ -d "$T" ] && rm -rf "$T"; f=$(free_kib); [ -n "$f" ] && [ "$f" -lt {need_kib} ]; }}',
        f"T=$(mktemp -d {q(root)}/{STAGE_PREFIX}XXXXXX 2>&1) || "
        '{ no_room "$T" && full; echo "tiramisu-upload: cannot create a staging dir: $T" >&2; exit 70; }',
        "trap 'rm -rf \"$T\"' EXIT HUP INT TERM PIPE",
        'E=$(tar -xf - -C "$T" 2>&1 >/dev/null) || '
        '{ no_room "$E" && full; echo "tiramisu-upload: transfer cut short" >&2; exit 71; }',
    ]
    for i, u in enumerate(uploads):
        if i in compressed:
            lines.append(
                f'E=$({CODECS[codec][1]} < "$T/{i}.z" 2>&1 > "$T/{i}") || '
                f'{{ no_room "$E" && full; '
                f'echo "tiramisu-upload: cannot unpack {posixpath.basename(u.remote)}: $E" >&2; exit 71; }}; '
                f'rm -f "$T/{i}.z"'
            )
        lines.append(
            f'[ "$(sha256sum < "$T/{i}" | cut -c1-64)" = {q(u.sha256)} ] || '
            f'{{ echo "tiramisu-upload: checksum mismatch for {posixpath.basename(u.remote)}" >&2; exit 72; }}'
        )
        lines.append(f'chmod {q(u.mode)} "$T/{i}"')
    if check:
        lines.append(f"( {check} ) >&2 || exit 73")
    for i, u in enumerate(uploads):
        lines.append(f'mv -f "$T/{i}" {q(u.remote)} || exit 74')
    return "\n".join(lines)


_DISK_FULL = re.compile(re.escape(DISK_FULL_MARK) + r": (?P<kib>\d*) KiB free at (?P<path>.*)$")


def parse_disk_full(line):
    """(free bytes or None, path) from the receiver's disk-full line, or None (pure)."""
    match = _DISK_FULL.search((line or "").strip())
    if not match:
        return None
    kib = match.group("kib")
    return (int(kib) * 1024 if kib else None), match.group("path").strip()


def disk_full_message(host, needed, free, path):
    """``disk full on HOST: 25.3 MiB needed at PATH, 1.2 MiB free`` (pure)."""
    have = human_bytes(free) if free is not None else "unknown"
    return f"disk full on {host}: {human_bytes(needed)} needed at {path}, {have} free; nothing was replaced"


def receiver_error(host, status, last_line, needed):
    """The exception for a receiver that exited non-zero (pure).

    ``last_line``: its last stderr line; ``needed``: bytes this batch sends.
    """
    full = parse_disk_full(last_line)
    if full is not None or "No space left on device" in (last_line or ""):
        free, path = full if full is not None else (None, "the env dir")
        return DiskFullError(disk_full_message(host, needed, free, path))
    detail = f": {last_line}" if last_line else ""
    if status is None or status < 0:
        # paramiko's -1: the channel closed without an exit status (the
        # remote shell ended by a signal, or the session went away)
        return RemoteError(
            f"upload failed, nothing was replaced: the receiver on the box ended without an exit status "
            f"(killed by a signal?){detail}",
            code=1,
        )
    return RemoteError(
        f"upload failed (exit {status}), nothing was replaced{detail}",
        code=status if status and 0 < status < 256 else 1,
    )


def cleanup_command(root):
    """Remove staging dirs a SIGKILLed receiver could not (pure)."""
    return f"{{ rm -rf {q(root)}/{STAGE_PREFIX}* 2>/dev/null; true; }}"


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


def _receiver_failure(chan):
    """(exit status, last stderr line) if the receiver already exited non-zero, else None."""
    try:
        if not chan.exit_status_ready():
            return None
        data = b""
        while chan.recv_stderr_ready():
            data += chan.recv_stderr(65536)
        status = chan.recv_exit_status()
    except Exception:  # noqa: BLE001 - the connection itself is gone
        return None
    if status == 0:
        return None
    lines = data.decode(errors="replace").strip().splitlines()
    return status, (lines[-1] if lines else "")


class _ChannelWriter:
    """File-like sink for tarfile's stream mode that counts bytes for progress."""

    def __init__(self, chan, progress):
        self.chan, self.progress, self.sent = chan, progress, 0

    def write(self, data):
        self.chan.sendall(data)
        self.sent += len(data)
        self.progress.update(self.sent)
        return len(data)


def upload_batch(conn, root, uploads, note=lambda *a: None, check=None, timeout=600, codec=None):
    """Send uploads to the box as one verified, all-or-nothing batch; the bytes sent on the wire (int).

    ``codec``: a name from :data:`CODECS` the box can decompress (see
    :func:`pick_codec`), or None: files of at least
    :data:`COMPRESS_MIN_BYTES` then travel compressed (:func:`wire_copy`).
    The count is the tar stream's size (compressed members, headers and
    padding), before SSH's own framing.
    """
    import tarfile

    if not uploads:
        return 0
    wire = {}
    if codec:
        for i, u in enumerate(uploads):
            if u.size >= COMPRESS_MIN_BYTES:
                path = wire_copy(u, codec)
                if os.path.getsize(path) < u.size:
                    wire[i] = path
    from .remote import ensure_open

    transport = ensure_open(conn)
    if transport is None or not transport.is_active():
        raise ConnectError(f"connection to {conn.host} lost before upload")
    total = sum(u.size for u in uploads)
    send_total = sum(os.path.getsize(wire[i]) if i in wire else u.size for i, u in enumerate(uploads))
    label = posixpath.basename(uploads[0].remote) if len(uploads) == 1 else f"{len(uploads)} files"
    progress = Progress(label, send_total, note)
    chan = transport.open_session(timeout=30)
    chan.settimeout(timeout)
    stderr = b""
    status = None
    try:
        chan.exec_command(receiver_script(root, uploads, check, codec=codec, compressed=set(wire)))
        sink = _ChannelWriter(chan, progress)
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.GNU_FORMAT, bufsize=STREAM_CHUNK) as tar:
            for i, u in enumerate(uploads):
                local = wire.get(i, u.local)
                info = tarfile.TarInfo(f"{i}.z" if i in wire else str(i))
                info.size = os.path.getsize(local) if i in wire else u.size
                info.mode = 0o600
                info.mtime = int(time.time())
                with open(local, "rb") as fh:
                    tar.addfile(info, fh)
        chan.shutdown_write()
        status = chan.recv_exit_status()
        while chan.recv_stderr_ready():
            stderr += chan.recv_stderr(65536)
    except (OSError, EOFError) as exc:
        # The receiver may have quit first (no space, no permission): its own
        # words beat "socket closed".
        failed = _receiver_failure(chan)
        if failed:
            raise receiver_error(conn.host, failed[0], failed[1], total) from exc
        raise ConnectError(
            f"upload to {conn.host} interrupted ({exc or exc.__class__.__name__}); nothing was replaced on the box"
        ) from exc
    finally:
        chan.close()
    if status != 0:
        detail = stderr.decode(errors="replace").strip().splitlines()
        raise receiver_error(conn.host, status, detail[-1] if detail else "", total)
    progress.done = send_total
    progress.finish()
    return sink.sent


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()
