"""On real hosts of both architectures: setup from bare, idempotence,
status/stop/start/restart/reload/logs, survival, kill -9 recovery, teardown,
and the bad-input cases (disk, permissions, port taken, cut upload, wrong arch)."""

import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import cli, host_result, one_line_error

pytestmark = pytest.mark.slow


def get(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Load:
    """Requests in a loop from another thread; counts anything but the expected answer."""

    def __init__(self, url, ok=(200, 404)):
        self.url, self.ok = url, ok
        self.sent = self.failed = 0
        self.errors = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + 300  # bounded, whatever happens
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.sent += 1
            try:
                status, _ = get(self.url, timeout=10)
                if status not in self.ok:
                    self.failed += 1
                    self.errors.append(status)
            except Exception as exc:  # noqa: BLE001 - counted as a failure
                self.failed += 1
                self.errors.append(repr(exc))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="module")
def box(any_host, tmp_path_factory):
    """A host registered in a module-wide inventory (tests below run in order on it)."""
    home = tmp_path_factory.mktemp(f"lifecycle-{any_host.arch}")
    inventory = home / "tiramisu.yaml"
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(inventory)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    any_host.register(inventory, "box")
    yield any_host
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def status_json(front="tiramisu"):
    args = (
        ["fab", "-H", "box", "webserv.status", "--json"]
        if front == "fab"
        else [front, "webserv.status", "--host", "box", "--json"]
    )
    proc = cli(*args)
    return proc, host_result(proc)


def test_setup_from_bare(box):
    proc = cli("inv", "setup", "--host", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    s = host_result(proc)
    assert set(s["uploaded"]) >= {
        "bin/custom_server",
        "lib/libwasmtime.so",
        "bin/nginx",
        "conf/nginx.conf",
        "conf/server.conf",
    }
    assert s["done"] == {"server": "start", "nginx": "start"} and s["health"]["status"] == 200
    assert s["target"] == f"{box.arch}-linux-gnu"
    # public nginx answers from this machine; the admin API is not proxied
    assert get(f"http://{box.hostname}:8080/.well-known/tiramisu/health")[0] == 200
    assert get(f"http://{box.hostname}:8080/_tiramisu/apps")[0] == 404
    assert get(f"http://{box.hostname}:8080/no-such-app/")[0] == 404
    mode = box.ssh("stat -c %a tiramisu-env", check=True).stdout.strip()
    assert mode == "700"
    size_kb = int(box.ssh("du -sk tiramisu-env", check=True).stdout.split()[0])
    assert size_kb < 60 * 1024  # the budget (35 MB) is tracked in bench/, this only catches blow-ups


def test_setup_again_changes_nothing(box):
    before = box.ssh("cat tiramisu-env/run/server.pid tiramisu-env/run/nginx.pid", check=True).stdout
    proc = cli("tiramisu", "setup", "--host", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    s = host_result(proc)
    assert s["uploaded"] == [] and s["done"] == {}
    assert box.ssh("cat tiramisu-env/run/server.pid tiramisu-env/run/nginx.pid").stdout == before


def test_dry_run_touches_nothing(box):
    box.ssh("rm -f tiramisu-env/conf/server.conf", check=True)
    proc = cli("tiramisu", "setup", "--host", "box", "--dry")
    assert proc.returncode == 0, proc.stderr
    assert "upload  conf/server.conf" in proc.stdout and "restart server" in proc.stdout  # the plan is the output
    assert box.ssh("test -e tiramisu-env/conf/server.conf").returncode != 0
    assert cli("tiramisu", "setup", "--host", "box").returncode == 0  # put it back (restarts the server)


def test_status_through_fab_and_processes_survive_the_session(box):
    proc, st = status_json("fab")
    assert proc.returncode == 0, proc.stderr
    assert st["healthy"] and {s["state"] for s in st["services"].values()} == {"running"}
    # the CLI's SSH session is gone; the processes are not
    for name, svc in st["services"].items():
        comm = box.ssh(f"cat /proc/{svc['pid']}/comm").stdout.strip()
        assert comm == {"server": "custom_server", "nginx": "nginx"}[name]


def test_stop_then_start(box):
    assert cli("tiramisu", "webserv.stop", "--host", "box").returncode == 0
    proc, st = status_json()
    assert proc.returncode == 1 and {s["state"] for s in st["services"].values()} == {"stopped"}
    assert cli("tiramisu", "webserv.start", "--host", "box").returncode == 0
    proc, st = status_json()
    assert proc.returncode == 0 and st["healthy"]


def test_service_changes_print_one_json_document(box):
    stopped = cli("tiramisu", "webserv.stop", "--host", "box", "--json")
    assert set(host_result(stopped)["stopped"]) == {"nginx", "server"}, stopped.stderr
    started = host_result(cli("tiramisu", "webserv.start", "--host", "box", "--json"))
    assert sorted(started["started"]) == ["nginx", "server"] and started["url"].startswith("http://")
    reloaded = host_result(cli("tiramisu", "webserv.reload", "--host", "box", "--json"))
    assert reloaded["nginx_reloaded"] is True
    proc, st = status_json()
    assert proc.returncode == 0 and st["healthy"]


def test_restart_changes_pids(box):
    _, before = status_json()
    assert cli("inv", "webserv.restart", "--host", "box").returncode == 0
    _, after = status_json()
    assert after["healthy"]
    assert all(before["services"][n]["pid"] != after["services"][n]["pid"] for n in ("server", "nginx"))


def test_reload_drops_no_request(box):
    _, before = status_json()
    with Load(f"http://{box.hostname}:8080/.well-known/tiramisu/health", ok=(200,)) as load:
        time.sleep(0.5)
        for _ in range(3):
            proc = cli("tiramisu", "webserv.reload", "--host", "box")
            assert proc.returncode == 0, proc.stderr
        time.sleep(0.5)
    assert load.sent > 10 and load.failed == 0, load.errors[:5]
    _, after = status_json()
    assert after["services"]["nginx"]["pid"] == before["services"]["nginx"]["pid"]


def test_logs(box):
    proc = cli("tiramisu", "webserv.logs", "--host", "box", "--which", "nginx", "--lines", "5")
    assert proc.returncode == 0, proc.stderr
    assert "GET /.well-known/tiramisu/health" in proc.stdout


def test_kill_9_is_reported_stale_and_start_recovers(box):
    _, st = status_json()
    for svc in st["services"].values():
        box.netns_exec(["kill", "-9", str(svc["pid"])], check=True)
    time.sleep(0.5)
    proc, st = status_json()
    assert proc.returncode == 1
    # the server is gone; nginx's workers outlive their master (case 9: orphans)
    assert st["services"]["server"]["state"] == "stale"
    assert st["services"]["nginx"]["state"] == "orphaned" and st["services"]["nginx"]["orphans"]
    human = cli("tiramisu", "webserv.status", "--host", "box")
    assert "stale" in human.stdout and "orphaned" in human.stdout and human.returncode == 1
    assert cli("tiramisu", "webserv.start", "--host", "box").returncode == 0
    proc, st = status_json()
    assert proc.returncode == 0 and st["healthy"]


def test_teardown(box):
    refused = cli("tiramisu", "teardown", "--host", "box")
    assert "--yes" in one_line_error(refused)
    _, st = status_json()
    pids = [s["pid"] for s in st["services"].values()]
    proc = cli("tiramisu", "teardown", "--host", "box", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert box.ssh("test -e tiramisu-env").returncode != 0
    for pid in pids:  # gone, or a zombie waiting for its parent to reap it
        gone = box.ssh(f"! test -d /proc/{pid} || grep -q '^State:[[:space:]]*Z' /proc/{pid}/status")
        assert gone.returncode == 0
    again = cli("tiramisu", "teardown", "--host", "box", "--yes")
    assert again.returncode == 0 and "nothing to remove" in again.stdout


# ------------------------------------------------------- bad input ---


def test_unwritable_env_dir_is_a_clear_error(fresh_x86_host, tmp_inventory):
    host = fresh_x86_host(name="ro-env")
    host.register(tmp_inventory, "box")
    host.ssh("mkdir -m 500 locked", check=True)
    proc = cli("tiramisu", "setup", "--host", "box", "--env-dir", "~/locked/env")
    line = one_line_error(proc)
    assert f"cannot create {host.home_on_box if hasattr(host, 'home_on_box') else ''}" in line
    assert "locked/env" in line and "Permission denied" in line


def test_full_disk_is_a_clear_error(fresh_x86_host, tmp_inventory):
    host = fresh_x86_host(name="tiny-disk", home_size="12M")
    host.register(tmp_inventory, "box")
    proc = cli("tiramisu", "setup", "--host", "box")
    line = one_line_error(proc)
    assert "not enough free disk" in line and "need" in line
    assert host.ssh("ls -A tiramisu-env 2>/dev/null | wc -l").stdout.strip() in ("", "0")


def test_port_taken_on_the_box_names_the_port(fresh_x86_host, tmp_inventory):
    host = fresh_x86_host(name="port-taken")
    host.register(tmp_inventory, "box")
    import subprocess

    blocker = subprocess.Popen(
        host.netns_exec_argv(
            [
                "python3",
                "-c",
                "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
                "s.bind(('0.0.0.0', 8080)); s.listen(); time.sleep(120)",
            ]
        )
    )
    try:
        deadline = time.monotonic() + 20
        while ":8080 " not in host.netns_exec(["ss", "-ltnH"]).stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        proc = cli("tiramisu", "setup", "--host", "box")
        line = one_line_error(proc)
        assert "port 8080" in line and "in use" in line
        assert host.ssh("test -e tiramisu-env/bin/custom_server").returncode != 0  # refused before upload
    finally:
        blocker.kill()
        blocker.wait()


def test_cut_connection_during_upload_keeps_the_previous_install(fresh_x86_host, tmp_inventory):
    host = fresh_x86_host(name="cut-upload")
    host.register(tmp_inventory, "box")
    assert cli("tiramisu", "setup", "--host", "box").returncode == 0
    env = Path(host.home) / "tiramisu-env"
    # Make setup want to send the 20+ MB library again (the running server keeps its
    # mapped copy), then cut every SSH session of the user once the transfer started.
    (env / "lib" / "libwasmtime.so").unlink()
    import subprocess

    setup = subprocess.Popen(
        [str(Path(cli.__globals__["BIN"]) / "tiramisu"), "setup", "--host", "box"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(cli.__globals__["REPO"]),
    )
    deadline = time.monotonic() + 120
    while not list(env.glob(".tiramisu-upload-*")) and time.monotonic() < deadline and setup.poll() is None:
        time.sleep(0.005)
    assert list(env.glob(".tiramisu-upload-*")), "the upload never started"
    subprocess.run(host.netns_exec_argv(["pkill", "-KILL", "-u", host.user, "-x", "sshd"]))
    out, err = setup.communicate(timeout=120)
    assert setup.returncode != 0 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("tiramisu: ")
    time.sleep(1.0)
    assert not list(env.glob(".tiramisu-upload-*")), "a temp dir was left behind"
    assert not (env / "lib" / "libwasmtime.so").exists()  # no half file went live
    assert get(f"http://{host.hostname}:8080/.well-known/tiramisu/health")[0] == 200  # still serving
    again = cli("tiramisu", "setup", "--host", "box", "--json")
    assert again.returncode == 0, again.stderr
    assert host_result(again)["uploaded"] == ["lib/libwasmtime.so"]


def test_unsupported_architecture_is_refused_before_upload(fresh_x86_host, tmp_inventory, tmp_path):
    """The box's kernel reports i686 (a 32-bit personality via setarch): refused."""
    host = fresh_x86_host(name="i686-box")
    wrapper = Path(host.dir) / "i686-shell"
    wrapper.write_text('#!/bin/sh\nexec setarch i686 /bin/bash "$@"\n')
    wrapper.chmod(0o755)
    import subprocess

    subprocess.run(["usermod", "-s", str(wrapper), host.user], check=True)
    host.register(tmp_inventory, "box")
    assert host.ssh("uname -m").stdout.strip() == "i686"
    proc = cli("tiramisu", "setup", "--host", "box")
    line = one_line_error(proc)
    assert proc.returncode == 3
    assert "unsupported architecture 'i686'" in line and "x86_64-linux-gnu" in line and "nothing was uploaded" in line
    assert host.ssh("test -e tiramisu-env").returncode != 0
