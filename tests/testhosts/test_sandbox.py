"""The no-root sandbox: a user-level sshd on 127.0.0.1 registered as 'sandbox'."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from tiramisu_tasks import sandbox as sb
from tiramisu_tasks.paths import repo_root

pytestmark = pytest.mark.skipif(
    not os.path.exists("/usr/sbin/sshd") or shutil.which("ssh") is None,
    reason="the sandbox needs openssh-server and openssh-client",
)


@pytest.mark.parametrize(
    "requested, previous, default, free, expected",
    [
        (None, None, 2222, {2222}, 2222),
        (None, 2300, 2222, {2222, 2300}, 2300),
        (None, 2300, 2222, {2222}, 2222),
        (None, None, 2222, set(), None),
        (2400, 2300, 2222, {2400}, 2400),
    ],
    ids=["default", "keeps-last", "last-busy", "all-busy-any", "explicit"],
)
def test_choose_port(requested, previous, default, free, expected):
    assert sb.choose_port(requested, previous, default, lambda p: p in free) == expected


def test_choose_port_explicit_busy_is_an_error():
    with pytest.raises(sb.UsageError, match="busy"):
        sb.choose_port(2400, None, 2222, lambda p: False)


def test_render_config(tmp_path):
    paths = sb.sandbox_paths(tmp_path)
    text = sb.render_config(paths, 2222, "alice", is_root=False)
    assert "ListenAddress 127.0.0.1" in text and "AllowUsers alice" in text and "StrictModes no" in text
    assert f"AuthorizedKeysFile {paths.authorized_keys}" in text and "PermitRootLogin" not in text
    assert "PermitRootLogin prohibit-password" in sb.render_config(paths, 2222, "root", is_root=True)


def _tiramisu(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", *args], capture_output=True, text=True, timeout=120, env=env
    )


def _ssh(state, known_hosts, command):
    return subprocess.run(
        [
            "ssh",
            "-F",
            "none",
            "-i",
            state["key"],
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
            str(state["port"]),
            "-l",
            state["user"],
            state["hostname"],
            command,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sandbox_up_status_down(tmp_inventory):
    res = _tiramisu("sandbox.up", "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    try:
        assert st["state"] == "running" and st["started"] and st["hostname"] == "127.0.0.1"
        entry = yaml.safe_load(tmp_inventory.read_text())["hosts"]["sandbox"]
        assert entry["hostname"] == "127.0.0.1" and entry["port"] == st["port"] and entry["user"] == st["user"]
        assert {"http_port", "server_port"} <= set(entry["settings"])
        known = tmp_inventory.parent / "tiramisu_known_hosts"
        assert known.read_text().startswith(f"[127.0.0.1]:{st['port']} ssh-ed25519 ")
        login = _ssh(st, known, "uname -m; id -un")
        assert login.returncode == 0, login.stderr
        assert login.stdout.split() == [os.uname().machine, st["user"]]
        # Idempotent: a second up changes nothing.
        again = json.loads(_tiramisu("sandbox.up", "--json").stdout)
        assert (again["started"], again["pid"], again["port"]) == (False, st["pid"], st["port"])
        status = json.loads(_tiramisu("sandbox.status", "--json").stdout)
        assert (status["state"], status["pid"], status["port"]) == ("running", st["pid"], st["port"])
        human = _tiramisu("sandbox.status")
        assert f"127.0.0.1:{st['port']}" in human.stdout and f"pid {st['pid']}" in human.stdout
    finally:
        down = _tiramisu("sandbox.down", "--json")
    assert down.returncode == 0, down.stderr
    assert json.loads(down.stdout)["stopped"] is True
    assert not os.path.exists(f"/proc/{st['pid']}") or open(f"/proc/{st['pid']}/stat").read().split()[2] == "Z"
    assert json.loads(_tiramisu("sandbox.status", "--json").stdout)["state"] == "stopped"
    assert "sandbox" in yaml.safe_load(tmp_inventory.read_text())["hosts"]  # down keeps the entry
    assert _tiramisu("sandbox.down").stdout.strip() == "sandbox was not running"


def test_sandbox_busy_port(tmp_inventory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        res = _tiramisu("sandbox.up", "--port", str(busy))
        assert res.returncode == 2 and "busy" in res.stderr and "Traceback" not in res.stderr
    bad = _tiramisu("sandbox.up", "--port", "nope")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["tiramisu: --port: expected an integer 1-65535, got 'nope'"]


SANDBOX_AS_USER = """
import json, subprocess, sys
from tiramisu_tasks import sandbox as sb
st = sb.up()
try:
    r = subprocess.run(["ssh", "-F", "none", "-i", st["key"], "-o", "UserKnownHostsFile=" + st["known_hosts"],
                        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(st["port"]),
                        "-l", st["user"], "127.0.0.1", "uname -m; id -u"], capture_output=True, text=True)
    print(json.dumps({"port": st["port"], "rc": r.returncode, "out": r.stdout, "err": r.stderr}))
finally:
    sb.down()
"""


def _user_python(user):
    """An interpreter and PYTHONPATH under which ``user`` can import the sandbox code, or None."""
    import sysconfig

    pythonpath = os.pathsep.join([str(repo_root()), sysconfig.get_paths()["purelib"]])
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        probe = subprocess.run(
            [
                "runuser",
                "-u",
                user,
                "--",
                "env",
                f"PYTHONPATH={pythonpath}",
                python,
                "-c",
                "import tiramisu_tasks.sandbox",
            ],
            capture_output=True,
        )
        if probe.returncode == 0:
            return python, pythonpath
    return None


def test_sandbox_as_an_unprivileged_user(fresh_x86_host):
    """The no-root path for real: a plain user runs the sandbox (inside a test host's netns)."""
    host = fresh_x86_host(name="sandbox-user")
    found = _user_python(host.user)
    if found is None:
        pytest.skip(f"no Python that an unprivileged user may run can import {repo_root()}")
    python, pythonpath = found
    env = [
        "env",
        f"HOME={host.home}",
        f"TIRAMISU_HOME={host.home}/.config/tiramisu",
        f"PYTHONPATH={pythonpath}",
        python,
        "-c",
        SANDBOX_AS_USER,
    ]
    res = host.netns_exec(env, as_user=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["rc"] == 0, out["err"]
    uid = str(__import__("pwd").getpwnam(host.user).pw_uid)
    assert out["out"].split() == [os.uname().machine, uid] and out["port"] == sb.DEFAULT_PORT
