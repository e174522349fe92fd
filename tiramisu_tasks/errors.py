"""Errors that end a task with one clear line and a non-zero exit code.

Everything a user can cause (bad host name, unreachable box, refused key,
unsupported architecture, failing remote command) is raised as a
:class:`TiramisuError` subclass somewhere below the task layer; the task
decorator in :mod:`tiramisu_tasks.taskkit` turns it into ``invoke.Exit`` so the
three front ends print the message without a traceback.
"""

import errno
import os
from pathlib import Path

# Errors that only a local file system gives (a socket never does), so an
# OSError carrying one is local even when it names no file (a write that ran
# out of space reports no path).
LOCAL_ONLY_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EISDIR, errno.ENOTDIR})


class TiramisuError(Exception):
    """A failure with a message meant for the user. ``code`` is the exit code."""

    code = 1

    def __init__(self, message, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self):
        return str(self.args[0]) if self.args else self.__class__.__name__


class UsageError(TiramisuError):
    """The command line or configuration is wrong (exit 2, like argparse)."""

    code = 2


class InventoryError(TiramisuError):
    """Unknown host name, malformed inventory file, duplicate entry."""

    code = 2


class ConnectError(TiramisuError):
    """The box could not be reached or refused us (network, auth, host key)."""

    code = 255  # what ssh(1) uses for connection failures


class HostKeyError(ConnectError):
    """Unknown or changed host key."""


class RemoteError(TiramisuError):
    """A command on the box failed; code is the remote exit status."""


class DiskFullError(RemoteError):
    """The box ran out of space while receiving files (nothing was replaced)."""

    code = 1


class UnsupportedTarget(TiramisuError):
    """The box's architecture or libc cannot run Tiramisu."""

    code = 3


class BuildError(TiramisuError):
    """A local build (server, nginx, app) failed."""

    code = 4


class ToolMissing(BuildError):
    """A toolchain is not installed; the message says what to install."""


class LocalError(TiramisuError):
    """This machine's file system refused (permission, disk full, not a directory).

    Exit 1, not the connection code 255: the box was never the problem. The
    message reads ``local: <what> <path>: <reason>``.
    """

    def __init__(self, what, path, reason):
        where = f" {path}" if path else ""
        super().__init__(f"local: {what}{where}: {reason}")

    @classmethod
    def from_os_error(cls, exc, what=None, path=None):
        """Describe ``exc`` (an OSError); ``what`` says what was being done, if known."""
        named = exc.filename
        if exc.filename2 is not None and exc.errno != errno.ENOENT:
            named = exc.filename2  # a rename or copy: the destination is the path the user chose
        if path is None:
            path = named
        reason = exc.strerror or str(exc) or exc.__class__.__name__
        if exc.errno == errno.EEXIST and named is not None and os.path.lexists(named) and not os.path.isdir(named):
            # mkdir(parents=True) over a regular file says "File exists"
            reason = "Not a directory" if str(named) == str(path) else f"{named} is not a directory"
        if what is None:
            what = _where_on_disk(path)
        return cls(what, path, reason)


def _where_on_disk(path):
    if path is None:
        return "disk"
    from .paths import cache_dir  # a function: reads TIRAMISU_CACHE now, not at import

    try:
        Path(path).resolve().relative_to(cache_dir().resolve())
        return "cache"
    except (ValueError, OSError):
        return "file"


def is_local_os_error(exc):
    """Whether ``exc`` came from this machine's file system, not a socket or SFTP.

    An OSError naming a file is local: socket errors never carry a file name,
    and Paramiko's SFTP errors don't either. Without a name, only the errnos a
    file system alone gives count.
    """
    if not isinstance(exc, OSError):
        return False
    return exc.filename is not None or exc.errno in LOCAL_ONLY_ERRNOS
