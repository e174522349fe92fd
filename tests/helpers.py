"""Running the three real front ends as a user would (subprocesses)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cli(front, *args, timeout=600, input=None, env=None, cwd=None):
    """Run ``tiramisu``/``inv``/``fab`` from the checkout; returns CompletedProcess (text)."""
    exe = {"tiramisu": "tiramisu", "inv": "inv", "fab": "fab"}[front]
    return subprocess.run(
        [str(BIN / exe), *[str(a) for a in args]],
        cwd=str(cwd or REPO),
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


def one_line_error(proc):
    """The failure is a single 'tiramisu: ...' line on stderr, no traceback."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("tiramisu: "), proc.stderr
    return lines[-1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
