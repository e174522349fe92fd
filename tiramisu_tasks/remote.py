"""Small remote helpers (what patchwork offered, for Fabric 3), as pure
command builders plus thin runners.

patchwork 1.0.1 pins fabric<3 and its modules fail to import under Fabric 3
(see FACTS.md), so the few helpers we need live here. Builders return a shell
command string built with ``shlex.join``/``shlex.quote`` only; runners take a
Connection and never ignore a failing exit status unless asked to (``warn``).
"""

import shlex


def q(value):
    return shlex.quote(str(value))


def join(argv):
    return shlex.join([str(a) for a in argv])


# ----------------------------------------------------------- builders ---

def test_cmd(flag, path):
    return join(["test", flag, path])


def mkdir_cmd(paths, mode="700"):
    return join(["mkdir", "-p", "-m", mode, *paths])


def have_program_cmd(name):
    return f"command -v {q(name)} >/dev/null 2>&1"


def contains_cmd(path, text):
    return join(["grep", "-qF", "--", text, path])


def append_cmd(path, line):
    """Append a line unless it is already there (idempotent)."""
    return f"{contains_cmd(path, line)} || printf '%s\\n' {q(line)} >> {q(path)}"


def sha256_cmd(paths):
    """sha256 of each existing path; missing files simply print nothing."""
    inner = "; ".join(f"[ -f {q(p)} ] && sha256sum {q(p)}" for p in paths)
    return f"{{ {inner}; }} 2>/dev/null; true"


def parse_sha256_output(text):
    """``sha256sum`` lines → {path: digest} (pure)."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            out[parts[1].lstrip("*")] = parts[0]
    return out


# ------------------------------------------------------------ runners ---

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

    conn.open()
    chan = conn.client.get_transport().open_session(timeout=30)
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
    result = Result(stdout=b"".join(out).decode(errors="replace"), stderr=b"".join(err).decode(errors="replace"),
                    command=command, exited=code)
    if code != 0 and not warn:
        raise UnexpectedExit(result)
    return result


def exists(conn, path):
    return run(conn, test_cmd("-e", path), warn=True).ok


def is_dir(conn, path):
    return run(conn, test_cmd("-d", path), warn=True).ok


def have_program(conn, name):
    return run(conn, have_program_cmd(name), warn=True).ok


def contains(conn, path, text):
    return run(conn, contains_cmd(path, text), warn=True).ok


def append(conn, path, line):
    run(conn, append_cmd(path, line))


def directory(conn, path, mode="700"):
    run(conn, mkdir_cmd([path], mode))


def remote_sha256(conn, paths):
    return parse_sha256_output(run(conn, sha256_cmd(paths)).stdout)
