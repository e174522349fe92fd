"""Running build tools: the only place in apps/ that starts compilers.

A :class:`Step` is data (argv, cwd, environment changes); :func:`run_step`
executes it and turns every failure into a :class:`BuildFailed` whose message is
one line (the first error the tool printed, and how many more there are), whose
``details`` are the compiler's error lines (every one, up to
:data:`DETAIL_LINES` lines with their context) for the task to print above that
line, and whose ``log`` keeps the whole output.
"""

import fcntl
import re
import shlex
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import BuildError, ToolMissing
from ..subproc import merged_env, run_local  # noqa: F401 - merged_env: tests use it from here

DEFAULT_TIMEOUT = 1800  # a cold cargo build with dependencies on 2 cores
DETAIL_LINES = 40  # compiler output shown above the one-line error


class BuildFailed(BuildError):
    """A compiler exited non-zero. ``log`` holds its full output; ``details`` the lines to show (list of str)."""

    def __init__(self, message, log="", details=None):
        super().__init__(message)
        self.log = log
        self.details = list(details) if details is not None else error_excerpt(log)

    def rewrite(self, fix):
        """The same failure with ``fix(text) -> text`` applied to the message, the details and the log."""
        return BuildFailed(fix(self.message), fix(self.log), [fix(line) for line in self.details])


@dataclass(frozen=True)
class Step:
    argv: List[str]
    cwd: Optional[Path] = None
    # Values replace the inherited environment's; None removes the variable.
    env: Dict[str, Optional[str]] = field(default_factory=dict)
    label: str = ""
    what: str = "build"  # for the failure message: "<label>: <what> failed (exit N): ..."

    def display(self):
        sets = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items()) if v is not None)
        return (sets + " " if sets else "") + shlex.join(str(a) for a in self.argv)


_ERROR_LINE = re.compile(r"(^|\W)(error|fatal)(\W|$)", re.I)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_error_line(output):
    """The line of a compiler's output a user most needs to see (pure)."""
    lines = [_ANSI.sub("", ln).strip() for ln in (output or "").splitlines()]
    lines = [ln for ln in lines if ln]
    for ln in lines:
        if _ERROR_LINE.search(ln):
            return ln[:300]
    return lines[-1][:300] if lines else "no output"


def _clean_lines(output):
    return [_ANSI.sub("", ln).rstrip() for ln in (output or "").splitlines()]


def count_errors(output):
    """How many diagnostics of the output are errors (``file:line:col: error: ...``, ``error[E0425]: ...``)."""
    return sum(1 for ln in _clean_lines(output) if _DIAGNOSTIC_ERROR.search(ln))


_DIAGNOSTIC_ERROR = re.compile(r"(^|: )(fatal )?error(\[[A-Z0-9]+\])?: ", re.I)


def error_excerpt(output, limit=DETAIL_LINES):
    """The part of a compiler's output a user needs (pure): from the first error line on,
    every line (so every error with its source line and caret), at most ``limit`` lines,
    and a last line saying how many were left out. No error line: the last ``limit`` lines."""
    lines = _clean_lines(output)
    while lines and not lines[-1].strip():
        lines.pop()
    start = next((i for i, ln in enumerate(lines) if _ERROR_LINE.search(ln)), None)
    if start is None:
        return lines[-limit:]
    shown = lines[start:]
    if len(shown) > limit:
        left = len(shown) - limit
        shown = shown[:limit] + [f"... ({left} more line{'s' if left != 1 else ''} of compiler output)"]
    return shown


def run_step(step, timeout=DEFAULT_TIMEOUT, progress=None):
    """Run one step; returns its combined output (stdout then stderr)."""
    if progress:
        progress(f"$ {step.display()}")
    try:
        proc = run_local(step.argv, cwd=step.cwd, env=step.env, timeout=timeout)
    except FileNotFoundError:
        raise ToolMissing(f"{step.label or step.argv[0]}: {step.argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise BuildFailed(f"{step.label or step.argv[0]}: timed out after {timeout} s") from None
    out, err = proc.stdout, proc.stderr
    if proc.returncode != 0:
        log = "\n".join(x for x in (out.strip(), err.strip()) if x)
        errors = count_errors(log)
        more = f" (and {errors - 1} more error{'s' if errors > 2 else ''}, shown above)" if errors > 1 else ""
        raise BuildFailed(
            f"{step.label or Path(str(step.argv[0])).name}: {step.what} failed (exit {proc.returncode}): "
            f"{first_error_line(err or out)}{more}",
            log,
        )
    return out + err


def capture(argv, timeout=60, env=None):
    """stdout of a quick probe command, or None when it cannot run or fails."""
    try:
        proc = run_local(argv, timeout=timeout, env=env or {})
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout if proc.returncode == 0 else None


@contextmanager
def locked(directory):
    """Hold an exclusive flock on ``directory``/.lock (created as needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
