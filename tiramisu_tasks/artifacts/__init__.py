"""Build and download artifacts, cached under the user cache dir."""

from subprocess import TimeoutExpired

from ..errors import BuildError, ToolMissing
from ..subproc import run_local


def run_step(argv, cwd=None, env=None, what=None, log=None, timeout=None):
    """Run one build/download command (stderr folded into stdout); return its output.

    ``env``: variables added to this process's environment. A missing
    program is ToolMissing; a timeout or a non-zero exit is a BuildError
    headed by one line (the output's last 15 lines follow). ``log``, a list,
    gets the command and its output appended.
    """
    try:
        proc = run_local(argv, cwd=cwd, env=env or {}, timeout=timeout, merge_stderr=True)
    except FileNotFoundError:
        raise ToolMissing(f"{what or argv[0]}: {argv[0]} is not installed") from None
    except TimeoutExpired:
        raise BuildError(f"{what or argv[0]} did not finish in {timeout} s") from None
    if log is not None:
        log.append(f"$ {' '.join(str(a) for a in argv)}\n{proc.stdout}")
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        raise BuildError(f"{what or argv[0]} failed (exit {proc.returncode})\n{tail}")
    return proc.stdout
