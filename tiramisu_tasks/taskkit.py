"""The `task` decorator every Tiramisu task uses, and output helpers.

Why a wrapper around ``fabric.task``: scripts chain our tasks
(``inv setup --host pi && inv deploy ...``), so every failure a user can cause
must end as one line on stderr and a meaningful exit code, never a traceback.
The wrapper translates our own errors, Fabric/Paramiko connection errors and
remote command failures into ``invoke.Exit``.
"""

import functools
import json as jsonlib
import socket
import sys

import fabric
import invoke
import paramiko
from invoke.exceptions import UnexpectedExit

from .errors import TiramisuError


def describe_exception(exc, host=None):
    """(message, exit code) for an exception a task let escape, or None if it is a bug."""
    where = f"{host}: " if host else ""
    if isinstance(exc, TiramisuError):
        return where + exc.message, exc.code
    if isinstance(exc, UnexpectedExit):
        res = exc.result
        cmd = res.command if len(res.command) < 120 else res.command[:117] + "..."
        detail = (res.stderr or res.stdout or "").strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        return f"{where}remote command failed (exit {res.exited}): {cmd}{tail}", res.exited or 1
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{where}host key for {exc.hostname} CHANGED (got {exc.key.get_name()} "
            f"{exc.key.fingerprint}); refusing to connect. If the box was reinstalled, "
            f"remove the old key from the known_hosts file and run host.check --accept-new",
            255,
        )
    if isinstance(exc, BrokenPipeError):
        return "output closed (broken pipe)", 141
    if isinstance(exc, paramiko.AuthenticationException) or "No authentication methods" in str(exc):
        hint = ""
        if "No authentication methods" in str(exc):
            hint = " (no usable key: give one with host.add --key PATH, ~/.ssh/config or ssh-agent)"
        return f"{where}authentication failed: {exc}{hint}", 255
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"{where}cannot connect: {exc.strerror or exc}", 255
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"{where}connection timed out", 255
    if isinstance(exc, socket.gaierror):
        return (f"{where}cannot resolve host name ({exc.strerror or exc}); not an inventory "
                f"name either (see host.list)", 255)
    if isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError, OSError)) and not isinstance(
        exc, FileNotFoundError
    ):
        return f"{where}connection error: {exc or exc.__class__.__name__}", 255
    return None


def fail(exc, host=None):
    """Raise invoke.Exit for a user-facing error; re-raise anything else (bugs)."""
    described = describe_exception(exc, host)
    if described is None:
        raise exc
    message, code = described
    raise invoke.Exit(f"tiramisu: {message}", code=code)


def task(*args, **kwargs):
    """``fabric.task`` whose body's user-facing errors become one-line exits."""

    def decorate(fn):
        @functools.wraps(fn)
        def body(c, *a, **kw):
            try:
                return fn(c, *a, **kw)
            except (invoke.Exit, KeyboardInterrupt):
                raise
            except Exception as exc:  # noqa: BLE001 - translated or re-raised
                fail(exc)

        return fabric.task(*args, **kwargs)(body)

    if len(args) == 1 and callable(args[0]) and not kwargs:
        fn = args[0]
        args = ()
        return decorate(fn)
    return decorate


# ---------------------------------------------------------------- output ---

def out(*parts):
    """Human output: stdout, flushed (scripts tail it)."""
    print(*parts, flush=True)


def note(*parts):
    """Progress and diagnostics: stderr, so `--json` stdout stays parseable."""
    print(*parts, file=sys.stderr, flush=True)


def emit_json(data):
    print(jsonlib.dumps(data, indent=2, sort_keys=True, default=str), flush=True)


def table(rows, headers):
    """A plain aligned text table (no colour: output is often piped)."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
