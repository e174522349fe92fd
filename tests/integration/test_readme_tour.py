"""The README's 60-second tour, run as written, top to bottom, against the sandbox.

The block between ``<!-- tour:start -->`` and ``<!-- tour:end -->`` is taken
from README.md line by line; only the box's address changes (the tour's
``--hostname 192.168.1.20 --user pi`` becomes the sandbox sshd's address, user,
port and key, with free HTTP/server ports and an env dir in the test's tmp
dir, and ``192.168.1.20:8080`` its HTTP port). Every line must exit 0.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, cli, free_port

pytestmark = pytest.mark.slow

README_ADDRESS = "192.168.1.20"
HOST_FLAGS = f"--hostname {README_ADDRESS} --user pi"


def tour_lines(readme_text):
    """The tour's commands (pure): the indented lines between the markers, comments kept for bash."""
    m = re.search(r"<!-- tour:start -->\n(.*?)<!-- tour:end -->", readme_text, re.S)
    assert m, "README.md has no <!-- tour:start --> ... <!-- tour:end --> block"
    lines = [ln[4:] for ln in m.group(1).splitlines() if ln.startswith("    ") and ln.strip()]
    assert lines, "the tour block holds no indented command lines"
    return lines


def test_tour_lines_are_extracted():
    lines = tour_lines((REPO / "README.md").read_text())
    assert lines[0].startswith("tiramisu host.add pi " + HOST_FLAGS)
    assert any(ln.startswith("tiramisu rollback ") for ln in lines)
    # a rollback needs two releases: a deploy comes twice before it
    first_rollback = next(i for i, ln in enumerate(lines) if ln.startswith("tiramisu rollback "))
    assert sum(ln.startswith("tiramisu deploy ") for ln in lines[:first_rollback]) >= 2


def test_the_readme_tour_runs_as_written(tmp_inventory, tmp_path):
    lines = tour_lines((REPO / "README.md").read_text())
    up = cli("tiramisu", "sandbox.up", timeout=300)
    assert up.returncode == 0, up.stderr
    box = yaml.safe_load(tmp_inventory.read_text())["hosts"]["sandbox"]
    http_port, server_port = free_port(), free_port()
    while server_port == http_port:
        server_port = free_port()
    flags = (
        f"--hostname {box['hostname']} --user {shlex.quote(box['user'])} --port {box['port']} "
        f"--key {shlex.quote(box['key'])} --set http_port={http_port} --set server_port={server_port} "
        f"--set env_dir={shlex.quote(str(tmp_path / 'tour-env'))}"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    ran = []
    try:
        for line in lines:
            command = line.replace(HOST_FLAGS, flags).replace(f"{README_ADDRESS}:8080", f"127.0.0.1:{http_port}")
            assert README_ADDRESS not in command, (
                f"the test does not know how to point this line at the sandbox: {line}"
            )
            proc = subprocess.run(
                ["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=900
            )
            ran.append((line, proc))
            assert proc.returncode == 0, (
                f"README tour line failed (exit {proc.returncode}): {line}\n{proc.stderr[-3000:]}"
            )
        curls = [proc.stdout for line, proc in ran if line.startswith("curl ")]
        # the first release answers, and again after the rollback from the second
        assert len(curls) == 2 and all("Hello from hello!" in out for out in curls), curls
        deploys = [proc for line, proc in ran if line.startswith("tiramisu deploy ")]
        assert "Hi from" not in curls[1] and len(deploys) == 2
    finally:
        cli("tiramisu", "teardown", "--host", "pi", "--yes")
        cli("tiramisu", "sandbox.down")
