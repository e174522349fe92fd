"""The one way Tiramisu runs a program on this machine (compilers, sshd, ip, probes).

Programs never read our stdin (a task may be piped into), output is text
(undecodable bytes replaced) and captured unless asked otherwise; the
caller decides what a failure means, with :func:`last_line` for the message.
"""

import os
import subprocess


def run_local(argv, *, timeout=None, cwd=None, env=None, input=None, capture=True, merge_stderr=False):
    """Run ``argv`` (any values, made strings) and wait; returns ``subprocess.CompletedProcess`` (text).

    ``env``: variables added to this process's environment (a None value
    removes one); ``capture=False`` sends stdout to /dev/null (for programs
    that daemonize and would hold a pipe open); ``merge_stderr`` folds stderr
    into stdout. Raises FileNotFoundError / PermissionError when the program
    cannot start and ``subprocess.TimeoutExpired`` after ``timeout`` seconds;
    a non-zero exit is not an error here.
    """
    return subprocess.run(
        [str(a) for a in argv],
        cwd=str(cwd) if cwd else None,
        env=None if env is None else merged_env(env),
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )


def merged_env(changes, base=None):
    """``base`` (default: this process's environment) with ``changes`` applied; a None value removes a key."""
    env = dict(os.environ if base is None else base)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def last_line(text, default=""):
    """The last non-blank line of a program's output (for one-line error messages)."""
    lines = (text or "").strip().splitlines()
    return lines[-1] if lines else default
