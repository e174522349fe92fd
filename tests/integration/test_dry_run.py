"""Under Invoke's core dry-run flag no task changes a box, in any front end.

A set-up box with a deployed app is snapshotted (every file of the env dir
with its sha256, the service pids, the crontab); then every task that could
change it runs with `tiramisu --dry`, `inv -R` or `fab --dry`: tasks with their
own dry run print their plan (exit 0), the others refuse in one line (exit 2).
The snapshot afterwards is the same.
"""

import os

import pytest

from tests.helpers import REPO, cli

pytestmark = pytest.mark.slow

SNAPSHOT = (
    "cd ~/tiramisu-env && find . -type f ! -path './logs/*' -exec sha256sum {} + | sort; "
    "cat run/*.pid; crontab -l 2>/dev/null || true"
)

# (front end, argv) -> expected exit code
CASES = [
    ("tiramisu", ["--dry", "setup", "--host", "box"], 0),
    ("tiramisu", ["--dry", "deploy", REPO / "tests/cserver/guests/hello.c", "--host", "box", "--name", "other"], 0),
    ("tiramisu", ["--dry", "rollback", "hello", "--host", "box"], 0),
    ("tiramisu", ["--dry", "remove", "hello", "--host", "box", "--yes"], 0),
    ("tiramisu", ["--dry", "teardown", "--host", "box", "--yes"], 0),
    ("tiramisu", ["--dry", "webserv.stop", "--host", "box"], 2),
    ("tiramisu", ["--dry", "webserv.restart", "--host", "box"], 2),
    ("tiramisu", ["--dry", "webserv.reload", "--host", "box"], 2),
    ("tiramisu", ["--dry", "webserv.enable-boot", "--host", "box"], 2),
    ("tiramisu", ["--dry", "webserv.status", "--host", "box"], 0),
    ("inv", ["-R", "teardown", "--host", "box", "--yes"], 0),
    ("inv", ["-R", "webserv.stop", "--host", "box"], 2),
    ("fab", ["--dry", "-H", "box", "teardown", "--yes"], 0),
    ("fab", ["--dry", "-H", "box", "webserv.restart"], 2),
]


@pytest.fixture(scope="module")
def box(x86_host, tmp_path_factory):
    home = tmp_path_factory.mktemp("dry-run")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    x86_host.register(home / "tiramisu.yaml", "box")
    try:
        proc = cli("tiramisu", "setup", "--host", "box")
        assert proc.returncode == 0, proc.stderr
        for _ in range(2):  # two releases, so rollback has somewhere to go
            proc = cli("tiramisu", "deploy", REPO / "tests/cserver/guests/hello.c", "--host", "box", "--name", "hello")
            assert proc.returncode == 0, proc.stderr
            proc = cli("tiramisu", "deploy", REPO / "tests/cserver/guests/echo.c", "--host", "box", "--name", "hello")
            assert proc.returncode == 0, proc.stderr
        yield x86_host
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_no_task_changes_a_box_under_a_dry_run(box):
    before = box.ssh(SNAPSHOT, check=True).stdout
    assert "bin/custom_server" in before
    for front, argv, code in CASES:
        proc = cli(front, *argv)
        assert proc.returncode == code, (front, argv, proc.stdout[-500:], proc.stderr[-1500:])
        if code == 2:
            assert proc.stderr.strip().splitlines()[-1].startswith("tiramisu: "), proc.stderr
            assert "has no dry run" in proc.stderr
        assert box.ssh(SNAPSHOT, check=True).stdout == before, (front, argv)
