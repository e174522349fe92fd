"""Errors that end a task with one clear line and a non-zero exit code.

Everything a user can cause (bad host name, unreachable box, refused key,
unsupported architecture, failing remote command) is raised as a
:class:`TiramisuError` subclass somewhere below the task layer; the task
decorator in :mod:`tiramisu_tasks.taskkit` turns it into ``invoke.Exit`` so the
three front ends print the message without a traceback.
"""


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
