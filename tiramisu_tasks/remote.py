"""Running one command on a box over an SSH Connection (the real ``run`` effect).

Commands are built in :mod:`commands`; this module only runs them. The runner
takes a Connection and never ignores a failing exit status unless asked to
(``warn``). Procedures do not call it directly: they go through a box
context (:class:`box.SshBox`), so a recording fake can stand in for the box.
"""

from .commands import join, q  # noqa: F401 - the quoting helpers, re-exported

# ------------------------------------------------------------ runners ---


def ensure_open(conn):
    """Open the SSH connection (once) and turn Nagle's algorithm off on it.

    paramiko leaves Nagle on; a small exec request then waits for the box's
    delayed ACK (~40 ms a round trip). Measured in bench/nodelay_cli.py: a
    redeploy went from ~1.2 s to ~0.7 s.
    """
    import socket
    import time

    started = time.monotonic()
    conn.open()
    transport = conn.client.get_transport()
    if transport is not None and not hasattr(transport, "_tiramisu_connect_s"):
        # the first open: TCP connect + key exchange + auth (setup reports it)
        transport._tiramisu_connect_s = time.monotonic() - started
    sock = getattr(transport, "sock", None)
    if sock is not None and not getattr(transport, "_tiramisu_nodelay", False):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass  # a ProxyCommand pipe or a gateway channel: nothing to tune
        transport._tiramisu_nodelay = True
    return transport


def run(conn, command, warn=False, timeout=None):
    """Run a command on the box: no pty, stdin closed, output captured.

    Returns an ``invoke.runners.Result``; a non-zero exit raises
    ``invoke.exceptions.UnexpectedExit`` unless ``warn`` (the same contract as
    ``Connection.run``). Why not ``Connection.run``: Invoke's runner polls its
    reader threads with short sleeps and costs ~0.25 s per command even for
    ``true``; a deploy runs several commands, so this talks to the channel
    directly (~10 ms per command on a LAN).
    """
    import select
    import time

    from invoke.exceptions import CommandTimedOut, UnexpectedExit
    from invoke.runners import Result

    chan = ensure_open(conn).open_session(timeout=30)
    out, err = [], []
    deadline = time.monotonic() + timeout if timeout else None
    try:
        chan.exec_command(command)
        chan.shutdown_write()
        while True:
            wait = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            select.select([chan], [], [], wait)
            while chan.recv_ready():
                out.append(chan.recv(65536))
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            if chan.exit_status_ready() and chan.eof_received:
                break
            if chan.eof_received:
                # stdout is closed: the channel stays "readable" from now on,
                # so block on the exit status instead of spinning in select.
                chan.status_event.wait(wait or 0.01)
            if deadline is not None and time.monotonic() >= deadline:
                result = Result(stdout=b"".join(out).decode(errors="replace"), command=command, exited=-1)
                raise CommandTimedOut(result, timeout=timeout)
        code = chan.recv_exit_status()
        while chan.recv_ready():
            out.append(chan.recv(65536))
        while chan.recv_stderr_ready():
            err.append(chan.recv_stderr(65536))
    finally:
        chan.close()
    result = Result(
        stdout=b"".join(out).decode(errors="replace"),
        stderr=b"".join(err).decode(errors="replace"),
        command=command,
        exited=code,
    )
    if code != 0 and not warn:
        raise UnexpectedExit(result)
    return result
