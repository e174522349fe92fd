"""Numeric options are checked, and TASK --help answers, through the real front ends
before anything connects (so no box is needed): a bad value is one line, exit 2."""

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import cli
from tiramisu_tasks.namespace import ns

pytestmark = pytest.mark.slow  # ~200 front-end processes

# Every numeric option of every task, with the arguments the task needs besides it,
# and what the error says it accepts. A new numeric option must be added here
# (test_table_covers_every_numeric_option fails otherwise).
NUMERIC = [  # (task, option, other arguments, what it accepts, out-of-range values)
    ("setup", "--http-port", ["--host", "box"], "an integer 1-65535", ["0", "65536"]),
    ("setup", "--server-port", ["--host", "box"], "an integer 1-65535", ["0", "65536"]),
    ("webserv.install", "--http-port", ["--host", "box"], "an integer 1-65535", ["0", "65536"]),
    ("webserv.install", "--server-port", ["--host", "box"], "an integer 1-65535", ["0", "65536"]),
    ("webserv.stop", "--timeout", ["--host", "box"], "an integer 0-86400 (seconds)", ["86401"]),
    ("webserv.logs", "--lines", ["--host", "box"], "an integer 0-1000000", ["1000001"]),
    ("deploy", "--keep", ["wasm_examples/hello-c", "--host", "box"], "an integer 1-1000", ["0", "1001"]),
    ("logs", "--lines", ["hello-c", "--host", "box"], "an integer 0-1000000", ["1000001"]),
    ("host.add", "--port", ["newbox", "--hostname", "127.0.0.1"], "an integer 1-65535", ["0", "65536"]),
    ("sandbox.up", "--port", [], "an integer 1-65535", ["0", "99999"]),
    # the box's lock, rolling deploys and history (issue 13)
    *[
        (task, "--lock-wait", base, "an integer 0-86400 (seconds)", ["86401"])
        for task, base in [
            ("setup", ["--host", "box"]),
            ("webserv.install", ["--host", "box"]),
            ("teardown", ["--host", "box", "--yes"]),
            ("webserv.start", ["--host", "box"]),
            ("webserv.stop", ["--host", "box"]),
            ("webserv.restart", ["--host", "box"]),
            ("webserv.reload", ["--host", "box"]),
            ("webserv.enable-boot", ["--host", "box"]),
            ("webserv.disable-boot", ["--host", "box"]),
            ("deploy", ["wasm_examples/hello-c", "--host", "box"]),
            ("rollback", ["hello-c", "--host", "box"]),
            ("remove", ["hello-c", "--host", "box", "--yes"]),
            ("tls.issue", ["--host", "box"]),
            ("tls.renew", ["--host", "box"]),
        ]
    ],
    ("deploy", "--pause", ["wasm_examples/hello-c", "--host", "box"], "an integer 0-86400 (seconds)", ["86401"]),
    ("deploy", "--max-failed", ["wasm_examples/hello-c", "--host", "box"], "an integer 0-100000", ["100001"]),
    ("history", "--lines", ["hello-c", "--host", "box"], "an integer 0-1000000", ["1000001"]),
]
# Never a number, whatever the range (the full table of values is in tests/unit/test_cli_pure.py;
# here every option meets one of these and its own out-of-range values through each front end).
BAD_VALUES = ["abc", "1.5"]


class Listener:
    """A TCP port that counts connections: the inventory's 'box' points here."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


@pytest.fixture
def isolated(tmp_path):
    listener = Listener()
    home = tmp_path / "home"
    home.mkdir()
    inventory = home / "tiramisu.yaml"
    inventory.write_text(f"hosts:\n  box: {{hostname: 127.0.0.1, port: {listener.port}, user: nobody}}\n")
    env = {
        "TIRAMISU_HOME": str(home),
        "TIRAMISU_INVENTORY": str(inventory),
        "TIRAMISU_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),
    }
    yield env, listener, tmp_path
    listener.close()


def snapshot(root):
    """Every file under root with its bytes: 'nothing was changed' means this is equal."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[path] = fh.read()
    return out


def test_table_covers_every_numeric_option():
    declared = set()
    for name in ns.task_names:
        for param in getattr(ns[name], "option_types", {}):
            declared.add((name, "--" + param.strip("_").replace("_", "-")))
    assert declared == {(task, opt) for task, opt, _, _, _ in NUMERIC}


@pytest.mark.parametrize("front", ["tiramisu", "inv"])
def test_bad_numeric_option_is_one_line_exit_2_and_changes_nothing(front, isolated):
    env, listener, root = isolated
    before = snapshot(root)
    cases = [
        (task, opt, base, accepts, bad) for task, opt, base, accepts, extra in NUMERIC for bad in BAD_VALUES + extra
    ]

    def run(case):
        task, opt, base, accepts, bad = case
        return case, cli(front, task, *base, opt, bad, env=env, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, cases))
    for (task, opt, _base, accepts, bad), proc in results:
        where = f"{front} {task} {opt} {bad!r}: {proc.stderr}"
        assert proc.returncode == 2, where
        assert proc.stderr.splitlines() == [f"tiramisu: {opt}: expected {accepts}, got {bad!r}"], where
        assert proc.stdout == "", where
    assert listener.accepted == 0  # validated before connecting
    assert snapshot(root) == before  # inventory, keys, cache: untouched


def test_fab_front_end_validates_too(isolated):
    env, listener, _ = isolated
    proc = cli("fab", "-H", "box", "setup", "--http-port", "abc", env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["tiramisu: --http-port: expected an integer 1-65535, got 'abc'"]
    assert listener.accepted == 0


def test_good_numeric_values_still_reach_the_task(isolated):
    """A valid --http-port passes validation: the task goes on and connects to the box."""
    env, listener, _ = isolated
    proc = cli("tiramisu", "setup", "--host", "box", "--http-port", "8099", env=env, timeout=60)
    assert proc.returncode == 255  # our listener is not sshd
    assert proc.stderr.strip().splitlines()[-1].startswith("tiramisu: box: 127.0.0.1:")
    assert proc.stderr.strip().endswith("is not an SSH server: Error reading SSH protocol banner")
    assert listener.accepted >= 1


def test_host_add_set_numeric_setting_is_checked(isolated):
    env, _, root = isolated
    before = snapshot(root)
    proc = cli("tiramisu", "host.add", "nb", "--hostname", "h", "--set", "http_port=abc", env=env)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["tiramisu: --set http_port: expected an integer 1-65535, got 'abc'"]
    assert snapshot(root) == before


# ------------------------------------------------------------ --help ---


def _short_h_is_help(task):
    return not any("h" in arg.names for arg in task.get_arguments())


HELP_CASES = sorted(ns.task_names)


@pytest.mark.parametrize("front", ["tiramisu", "inv", "fab"])
def test_task_help_for_every_task(front, isolated):
    env, listener, root = isolated
    before = snapshot(root)

    def run(name):
        flags = ["--help"] + (["-h"] if _short_h_is_help(ns[name]) else [])
        return name, [(flag, cli(front, name, flag, env=env, timeout=120)) for flag in flags]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, HELP_CASES))
    for name, runs in results:
        doc_first_line = ns[name].__doc__.strip().splitlines()[0]
        for flag, proc in runs:
            where = f"{front} {name} {flag}: rc={proc.returncode} {proc.stderr}"
            assert proc.returncode == 0, where
            assert f"[--core-opts] {name} " in proc.stdout, where
            assert doc_first_line in proc.stdout, where
            assert "Options:" in proc.stdout, where
    assert listener.accepted == 0
    assert snapshot(root) == before


def test_short_h_keeps_meaning_host_where_the_task_has_it(isolated):
    env, _, _ = isolated
    proc = cli("tiramisu", "deploy", "-h", env=env)
    assert proc.returncode != 0 and "Argument: host (h" in proc.stderr  # -h wants a value: it is --host
    assert "Usage:" not in proc.stdout
