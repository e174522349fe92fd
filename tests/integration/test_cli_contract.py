"""The CLI contract (README "CLI contract") through the three real front ends on a
real test box: ``-H`` and ``--host`` mean the same (names, groups, comma lists),
``--json`` prints exactly one document of the same shape for one host and two,
exit codes, one-line errors, no library noise, and ``--follow`` ending on one
Ctrl-C with every line labelled by its host.

One box is registered twice (``a`` and ``b``, group ``lab``, each with its own
env dir) so a two-host run needs no second machine; the tasks used here only
read the box or act on an env dir that does not exist.
"""

import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.helpers import BIN, REPO, cli, json_document, one_line_error

pytestmark = pytest.mark.slow

ENV_A, ENV_B = "contract-env-a", "contract-env-b"

# (front end, argv before the task, argv after the task's own arguments) for a host list H
FRONTS = {
    "tiramisu --host": ("tiramisu", lambda h: ([], ["--host", h])),
    "tiramisu -H": ("tiramisu", lambda h: (["-H", h], [])),
    "inv --host": ("inv", lambda h: ([], ["--host", h])),
    "inv TASK -H": ("inv", lambda h: ([], ["-H", h])),
    "fab -H": ("fab", lambda h: (["-H", h], [])),
    "fab TASK --host": ("fab", lambda h: ([], ["--host", h])),
}


def run(front, task, hosts, *args, timeout=300):
    program, place = FRONTS[front]
    before, after = place(hosts)
    if task == "host.check":  # its hosts are its NAME argument (core -H must agree with it)
        after = []
    return cli(program, *before, task, *args, *after, timeout=timeout)


@pytest.fixture(scope="module")
def lab(x86_host, tmp_path_factory):
    import os

    home = tmp_path_factory.mktemp("cli-contract")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    x86_host.register(home / "tiramisu.yaml", "a", groups=["lab"], settings={"env_dir": ENV_A})
    x86_host.register(home / "tiramisu.yaml", "b", groups=["lab"], settings={"env_dir": ENV_B})
    x86_host.ssh(f"rm -rf {ENV_A} {ENV_B}", check=True)
    try:
        yield x86_host
    finally:
        x86_host.ssh(f"rm -rf {ENV_A} {ENV_B}")
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def quiet(proc):
    """No traceback and no library noise on stderr."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Secsh channel" not in proc.stderr and "paramiko" not in proc.stderr.lower(), proc.stderr


def shape(doc):
    """What must not depend on the number of hosts: top-level keys and each host's keys."""
    return sorted(doc), sorted({k for h in doc["hosts"] for k in h})


# (task, its own arguments, exit code for one host and for two, fields every host object carries)
TASKS = [
    ("host.check", None, (0, 0), {"arch", "target", "supported", "installed"}),
    ("webserv.status", [], (1, 1), {"healthy", "services", "installed"}),  # nothing installed: unhealthy
    ("teardown", ["--yes"], (0, 0), {"removed", "env_dir"}),
    ("teardown", ["--dry"], (0, 0), {"removed", "env_dir"}),
    ("apps", [], (2, 1), set()),  # not set up: each host fails with a usage error (exit 2 alone, 1 for two)
]


@pytest.mark.parametrize("front", list(FRONTS))
@pytest.mark.parametrize("task, args, code, fields", TASKS, ids=[f"{t[0]}{''.join(t[1] or [])}" for t in TASKS])
def test_one_json_document_of_the_same_shape_for_one_host_and_two(lab, front, task, args, code, fields):
    shapes = []
    for hosts, names in (("a", ["a"]), ("a,b", ["a", "b"]), ("lab", ["a", "b"])):
        own = [hosts] if args is None else list(args)  # host.check takes the hosts as NAME
        proc = run(front, task, hosts, *own, "--json")
        quiet(proc)
        doc = json_document(proc)  # exactly one document; ok/exit_code agree with the process
        assert doc["schema"] == f"tiramisu.{task}/1"
        assert [h["host"] for h in doc["hosts"]] == names, (front, hosts, proc.stderr)
        assert proc.returncode == code[len(names) > 1], (front, hosts, proc.stderr)
        for h in doc["hosts"]:
            assert fields <= set(h) or not h["ok"], h
            assert set(h) >= {"host", "ok", "exit_code", "error", "seconds"}
            assert isinstance(h["seconds"], (int, float)) and isinstance(h["exit_code"], int)
            assert h["ok"] is (h["exit_code"] == 0) and (h["error"] is None) is h["ok"]
        if proc.returncode:  # the document is printed, then one error line
            assert one_line_error(proc).startswith("tiramisu: ")
        shapes.append(shape(doc))
    assert shapes[0] == shapes[1] == shapes[2]


def test_dry_plan_is_the_output(lab):
    lab.ssh(f"mkdir -p {ENV_A}/bin", check=True)
    try:
        proc = cli("tiramisu", "teardown", "--host", "a", "--dry")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("plan for a:"), (proc.stdout, proc.stderr)
        doc = json_document(cli("tiramisu", "teardown", "--host", "a", "--dry", "--json"))
        assert doc["hosts"][0]["plan"] and doc["hosts"][0]["dry"] is True
        assert lab.ssh(f"test -d {ENV_A}/bin").returncode == 0
    finally:
        lab.ssh(f"rm -rf {ENV_A}")


@pytest.mark.parametrize("front", list(FRONTS))
def test_a_mistyped_host_is_a_usage_error(lab, front):
    proc = run(front, "webserv.status", "a,nosuchbox")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "unknown host 'nosuchbox'" in line and "inventory hosts: a, b; groups: lab" in line
    proc = run(front, "webserv.status", "nosuchbox", "--json")
    assert proc.returncode == 2 and json_document(proc)["hosts"] == []
    quiet(proc)


@pytest.mark.parametrize("program", ["tiramisu", "fab"])
def test_dash_h_and_host_must_agree(lab, program):
    proc = cli(program, "-H", "a", "webserv.status", "--host", "b")
    assert proc.returncode == 2 and "name different hosts" in one_line_error(proc)
    proc = cli(program, "-H", "a", "host.list")
    assert proc.returncode == 2 and "acts on no host" in one_line_error(proc)
    same = cli(program, "-H", "a,b", "webserv.status", "--host", "b, a", "--json")
    assert same.returncode == 1 and {h["host"] for h in json_document(same)["hosts"]} == {"a", "b"}


def test_several_hosts_run_in_parallel_with_one_summary(lab):
    proc = cli("fab", "-H", "lab", "webserv.status")
    quiet(proc)
    assert proc.returncode == 1
    assert "[a] a: NOT installed" in proc.stdout and "[b] b: NOT installed" in proc.stdout
    assert proc.stderr.count("HOST") == 1 and "tiramisu: 2 of 2 hosts failed: a, b" in proc.stderr


class NotSsh:
    """A loopback port that answers like a web server, not like sshd."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            conn.close()


@pytest.mark.parametrize("front", ["tiramisu --host", "inv --host", "fab -H"])
def test_a_port_that_is_not_ssh_is_one_line_exit_255(front, tmp_path, monkeypatch):
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path))
    monkeypatch.setenv("TIRAMISU_INVENTORY", str(tmp_path / "tiramisu.yaml"))
    listener = NotSsh()
    try:
        proc = run(front, "webserv.status", f"nobody@127.0.0.1:{listener.port}", timeout=60)
        assert proc.returncode == 255
        quiet(proc)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"tiramisu: nobody@127.0.0.1:{listener.port}: 127.0.0.1:{listener.port} is not an SSH server: "
            "Error reading SSH protocol banner"
        ), lines  # paramiko may add the socket's reset: "(... Connection reset by peer)"
        debug = cli(
            FRONTS[front][0],
            *FRONTS[front][1](f"127.0.0.1:{listener.port}")[0],
            "webserv.status",
            *FRONTS[front][1](f"127.0.0.1:{listener.port}")[1],
            env={"TIRAMISU_DEBUG": "1"},
            timeout=60,
        )
        assert debug.returncode == 255 and "paramiko" in debug.stderr  # --debug shows the details
    finally:
        listener.sock.close()


@pytest.mark.parametrize("task", ["webserv.logs", "logs"])
def test_follow_ends_on_one_ctrl_c_with_lines_labelled(lab, task):
    for env_dir in (ENV_A, ENV_B):
        lab.ssh(f"mkdir -p {env_dir}/logs/apps && echo hello from {env_dir} > {env_dir}/logs/server.log", check=True)
        lab.ssh(f"echo app line {env_dir} > {env_dir}/logs/apps/hello.log", check=True)
    args = ["--which", "server"] if task == "webserv.logs" else ["hello"]
    proc = subprocess.Popen(
        [str(BIN / "tiramisu"), task, *args, "--host", "lab", "--follow", "--lines", "5"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.add(line.split("]", 1)[0] + "]")
            assert line.startswith(("[a] ", "[b] ")), line
        assert seen == {"[a]", "[b]"}
        proc.send_signal(signal.SIGINT)  # one Ctrl-C
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    # the remote tails are gone with the session
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = lab.ssh("pgrep -f 'tail -n 5 -F .*contract-en[v]' || true").stdout.strip()
        if not left:
            break
        time.sleep(0.5)
    assert not left, left


def test_json_document_is_valid_even_for_local_tasks():
    proc = cli("tiramisu", "build-languages", "--json")
    doc = json_document(proc)
    assert doc["schema"] == "tiramisu.build-languages/1" and isinstance(doc["languages"], list)
    json.dumps(doc)
