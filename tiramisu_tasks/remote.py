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
    """Run without a pty, output captured (never echoed), hide=True."""
    return conn.run(command, hide=True, warn=warn, pty=False, in_stream=False, timeout=timeout)


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
