"""The real SSH test hosts: they come up, answer over ssh, and vanish completely."""

import json
import os
import pwd
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import testhosts
from testhosts import registry
from testhosts.system import proc_alive, proc_comm
from tests.fixtures.hosts import require_testhost
from tiramisu_tasks.paths import repo_root

EM_AARCH64 = 183  # ELF e_machine of arm64 binaries


def test_x86_host_answers_over_ssh(x86_host):
    res = x86_host.ssh("uname -m; id -un; echo $HOME")
    assert res.returncode == 0, res.stderr
    arch, user, home = res.stdout.split()
    assert (arch, user, home) == ("x86_64", x86_host.user, x86_host.home)
    assert pwd.getpwnam(x86_host.user).pw_uid != 0


def test_aarch64_host_answers_over_ssh(aarch64_host):
    res = aarch64_host.ssh(["uname", "-m"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "aarch64"
    assert aarch64_host.ssh("id -u").stdout.strip() != "0"


def test_aarch64_commands_are_arm64_code(aarch64_host):
    """A process on the host runs an arm64 binary, executed by qemu (not natively)."""
    res = aarch64_host.ssh("nohup sleep 300 >/dev/null 2>&1 </dev/null & echo $!")
    assert res.returncode == 0, res.stderr
    sleepers = []
    deadline = time.monotonic() + 10
    while not sleepers and time.monotonic() < deadline:  # fork, then exec under qemu: poll
        sleepers = [p for p in registry.netns_pids(aarch64_host.netns) if proc_comm(p) == "sleep"]
        time.sleep(0.05)
    assert sleepers, "the sleep started over ssh is not in the host's namespace"
    pid = sleepers[0]
    try:
        # The kernel's view: the process image is the qemu interpreter ...
        exe = os.path.realpath(f"/proc/{pid}/exe")
        assert "qemu" in Path(exe).name or "aarch64" in Path(exe).name, exe
        # ... running the host's /usr/bin/sleep, which is an arm64 ELF file.
        elf = (Path(aarch64_host.root) / "usr/bin/sleep").read_bytes()[:20]
        assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == EM_AARCH64
    finally:
        aarch64_host.ssh(f"kill {res.stdout.strip()}")


def test_hosts_have_the_tools_deploy_needs(any_host):
    script = (
        "for t in bash sh tar gzip sha256sum nohup setsid kill df; do "
        "command -v $t >/dev/null || echo missing:$t; done; "
        # ss needs NETLINK_SOCK_DIAG, which qemu-user lacks: /proc/net/tcp always works.
        "grep -q ':0016 00000000:0000 0A' /proc/net/tcp || echo no-sshd-in:/proc/net/tcp; "
        "echo hi | gzip | gzip -d; printf x | sha256sum | cut -c1-8; df -P ~ | tail -1 | wc -l"
    )
    res = any_host.ssh(script)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["hi", "2d711642", "1"], res.stdout


def test_sftp_works(any_host, tmp_path):
    src = tmp_path / "payload"
    src.write_bytes(os.urandom(100_000))
    batch = tmp_path / "batch"
    batch.write_text(f"put {src} payload.bin\n")
    argv = any_host.ssh_argv("true")[:-3]  # ssh options, without host and command
    opts = argv[1:]
    port_i = opts.index("-p")
    opts[port_i] = "-P"  # sftp spells the port option in capitals
    user_i = opts.index("-l")
    del opts[user_i : user_i + 2]
    res = subprocess.run(
        ["sftp", "-b", str(batch), *opts, f"{any_host.user}@{any_host.hostname}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    digest = any_host.ssh("sha256sum payload.bin && rm payload.bin").stdout.split()[0]
    import hashlib

    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()


def test_host_network_is_only_its_own_subnet(any_host):
    res = any_host.netns_exec(["ip", "-4", "route"])
    assert res.returncode == 0, res.stderr
    routes = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(routes) == 1 and routes[0].startswith("10.213.") and "default" not in res.stdout


def test_register_writes_inventory_and_known_hosts(any_host, tmp_inventory):
    any_host.register(tmp_inventory, "box")
    data = yaml.safe_load(tmp_inventory.read_text())["hosts"]["box"]
    assert data == {"hostname": any_host.hostname, "user": any_host.user, "port": 22, "key": any_host.key_path}
    known = tmp_inventory.parent / "tiramisu_known_hosts"
    assert known.read_text().splitlines() == [any_host.host_key_line]
    any_host.register(tmp_inventory, "box")  # again: no duplicate line
    assert known.read_text().splitlines() == [any_host.host_key_line]
    # The inventory's data is enough for a strict ssh login.
    res = subprocess.run(
        [
            "ssh",
            "-F",
            "none",
            "-i",
            data["key"],
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-p",
            str(data["port"]),
            f"{data['user']}@{data['hostname']}",
            "echo",
            "ok",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (res.returncode, res.stdout.strip()) == (0, "ok"), res.stderr


def test_netns_exec_can_take_a_port_on_the_box(x86_host):
    """A test can occupy a port inside the host's namespace (e.g. to test 'port busy')."""
    proc = subprocess.Popen(
        x86_host.netns_exec_argv(
            [
                sys.executable,
                "-c",
                "import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 18080)); "
                "s.listen(); print('ready', flush=True); time.sleep(60)",
            ]
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        res = x86_host.ssh("cat /proc/net/tcp")
        assert ":46A0 " in res.stdout  # 18080 in hex, listening inside the namespace only
    finally:
        proc.kill()
        proc.wait()


def _traces(host):
    """What of a host is visible on the machine."""
    ns = host.netns in registry.netns_list()
    link = any(
        name in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        for name in testhosts.commands.link_names(host.netns)
    )
    try:
        pwd.getpwnam(host.user)
        user = host.arch == "x86_64"
    except KeyError:
        user = False
    pids = [p for p in host.pids if proc_alive(p)]
    mounts = registry.base_dir().as_posix() + "/" + host.id in Path("/proc/mounts").read_text()
    return {"netns": ns, "link": link, "user": user, "pids": pids, "dir": os.path.exists(host.dir), "mounts": mounts}


NOTHING = {"netns": False, "link": False, "user": False, "pids": [], "dir": False, "mounts": False}


@pytest.mark.parametrize("arch", ["x86_64", pytest.param("aarch64", marks=pytest.mark.aarch64)])
def test_teardown_leaves_nothing(arch, fresh_x86_host, request):
    factory = fresh_x86_host if arch == "x86_64" else request.getfixturevalue("fresh_aarch64_host")
    host = factory(name="bare")
    # Leave work behind on purpose: a background process and files in the home.
    assert host.ssh("nohup sleep 600 >/dev/null 2>&1 </dev/null & mkdir -p x && echo y > x/y").returncode == 0
    traces = _traces(host)
    assert traces["netns"] and traces["dir"] and traces["pids"]
    host.stop()
    assert _traces(host) == NOTHING
    host.stop()  # idempotent


CRASHER = textwrap.dedent("""
    import os, sys
    from testhosts import start_x86_host
    h = start_x86_host(name="crash")
    print(h.id, h.netns, h.user, *h.pids, flush=True)
    os._exit(0)  # no teardown: a crashed test session
""")


def test_cleanup_removes_hosts_of_a_dead_session(x86_host):
    out = subprocess.run([sys.executable, "-c", CRASHER], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    hid, netns, user, *pids = out.stdout.split()
    assert netns in registry.netns_list()
    cleaned = testhosts.cleanup_leftovers()
    assert hid in cleaned
    assert netns not in registry.netns_list()
    with pytest.raises(KeyError):
        pwd.getpwnam(user)
    assert not any(proc_alive(p) for p in pids)  # (a zombie is dead: pid 1 reaps it, not us)
    # Live hosts (this session's) are untouched.
    assert x86_host.ssh("true").returncode == 0


def _testhost_cli(*args):
    # testhosts/ is a top-level package of the checkout, not of the installed product.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(repo_root()), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "testhosts", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=str(repo_root()),
    )


@pytest.mark.roothosts
def test_testhost_script_up_list_down(tmp_inventory):
    """scripts/testhost (by hand): up registers the host, list shows it, down removes it."""
    require_testhost("x86_64")
    name = "by-hand-" + os.urandom(3).hex()
    up = _testhost_cli("up", "x86_64", "--name", name, "--inventory", str(tmp_inventory), "--json")
    assert up.returncode == 0, up.stderr
    data = json.loads(up.stdout)
    try:
        assert yaml.safe_load(tmp_inventory.read_text())["hosts"][name]["hostname"] == data["hostname"]
        assert _testhost_cli("up", "x86_64", "--name", name).returncode != 0  # names are unique
        listed = json.loads(_testhost_cli("list", "--json").stdout)
        mine = [r for r in listed if r["name"] == name]
        assert mine and mine[0]["owner"] == "manual" and mine[0]["live"]
        host = testhosts.host_from_record(registry.read_record(data["id"]))
        assert host.ssh("uname -m").stdout.strip() == "x86_64"
    finally:
        down = _testhost_cli("down", name)
    assert down.returncode == 0, down.stderr
    assert data["netns"] not in registry.netns_list() and registry.read_record(data["id"]) is None
    missing = _testhost_cli("down", name)
    assert missing.returncode == 1 and "no test host named" in missing.stderr
