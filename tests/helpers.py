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


def json_document(proc):
    """stdout as the one JSON document every ``--json`` run prints (README "CLI contract")."""
    import json

    doc = json.loads(proc.stdout)  # raises on anything but exactly one document
    assert isinstance(doc, dict) and doc["schema"].startswith("tiramisu.") and doc["schema"].endswith("/1"), doc
    assert doc["ok"] is (doc["exit_code"] == 0) and doc["exit_code"] == proc.returncode, (doc, proc.returncode)
    return doc


def host_results(proc):
    """The ``hosts`` list of a per-host task's ``--json`` document."""
    return json_document(proc)["hosts"]


def host_result(proc):
    """The one host's object of a per-host task's ``--json`` document."""
    hosts = host_results(proc)
    assert len(hosts) == 1, hosts
    return hosts[0]
