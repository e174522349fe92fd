"""Status names every process of a service: the /proc scan, classification and
reaping of a service's orphans. Tables for the pure parts; the generated sh is
also run here against real local processes (the same POSIX sh as on a box)."""

import os
import shutil
import subprocess
import time

import pytest

from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.services import (
    classify,
    observe_command,
    parse_env_processes,
    parse_observed,
    parse_reaped,
    reap_command,
    stop_all_command,
)


@pytest.mark.parametrize(
    "name, pid, state, rows, expected",
    [
        # the master from the pid file and its workers: nothing orphaned
        ("nginx", 10, "running", [(10, 1, "nginx"), (11, 10, "nginx"), (12, 10, "nginx")], ("running", [])),
        # master killed -9: its worker lives on, reparented to 1
        ("nginx", 10, "stale", [(11, 1, "nginx")], ("orphaned", [11])),
        # a new master beside an old worker
        ("nginx", 20, "running", [(20, 1, "nginx"), (21, 20, "nginx"), (11, 1, "nginx")], ("running", [11])),
        # pid file gone while the server runs
        ("server", None, "stopped", [(30, 1, "custom_server")], ("orphaned", [30])),
        # the other service's processes don't count
        ("server", 30, "running", [(30, 1, "custom_server"), (11, 1, "nginx")], ("running", [])),
        ("nginx", None, "stopped", [], ("stopped", [])),
        ("nginx", 10, "stale", [], ("stale", [])),
    ],
)
def test_classify(name, pid, state, rows, expected):
    assert classify(name, pid, state, rows) == expected


def test_parse_observed_and_reaped():
    text = "state server 30 running\nstate nginx 10 stale\n30 1 custom_server\n11 1 nginx\nnoise line\n12 x nginx\n"
    assert parse_env_processes(text) == [(30, 1, "custom_server"), (11, 1, "nginx")]
    assert parse_observed(text) == {
        "server": {"pid": 30, "state": "running", "orphans": []},
        "nginx": {"pid": 10, "state": "orphaned", "orphans": [11]},
    }
    assert parse_reaped("stopped\nreaped 11 12\n") == [11, 12]
    assert parse_reaped("not-running\nreaped\n") == []


def test_reap_spares_the_kept_process_and_its_children():
    cmd = reap_command(RemoteLayout("/home/pi/tiramisu env"), "nginx", keep=42, timeout=2)
    assert '[ "$p" != 42 ] && [ "$pp" != 42 ]' in cmd
    assert "kill -QUIT $v" in cmd and "kill -KILL $w" in cmd and "-lt 20" in cmd
    assert "'/home/pi/tiramisu env'" in cmd  # quoted


# ------------------------------------------------- the sh, for real ---


def _spawn(argv, cwd):
    return subprocess.Popen(
        argv,
        cwd=cwd,
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _sh(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=60)


@pytest.fixture
def env(tmp_path):
    """An env dir whose bin/nginx and bin/custom_server are copies of sleep."""
    root = tmp_path / "tiramisu env"
    for d in ("bin", "run"):
        (root / d).mkdir(parents=True)
    for name in ("nginx", "custom_server"):
        shutil.copy(shutil.which("sleep"), root / "bin" / name)
    procs = []

    def spawn(name, cwd=None):
        p = _spawn([str(root / "bin" / name), "60"], cwd or root)
        procs.append(p)
        return p

    yield RemoteLayout(str(root)), spawn
    for p in procs:
        p.kill()
        p.wait()


def _wait_comm(pids):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if all(open(f"/proc/{p}/comm").read().strip() in ("nginx", "custom_server") for p in pids):
            return
        time.sleep(0.01)


def test_scan_finds_this_envs_processes_by_cwd_or_exe_only(env, tmp_path):
    layout, spawn = env
    by_cwd = spawn("nginx")  # started from the env root
    by_exe = spawn("nginx", cwd="/")  # elsewhere, but our binary
    server = spawn("custom_server")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    stranger = _spawn([shutil.copy(shutil.which("sleep"), other_dir / "nginx"), "60"], other_dir)  # not ours
    try:
        _wait_comm([by_cwd.pid, by_exe.pid, server.pid, stranger.pid])
        (tmp_path / "tiramisu env" / "run" / "server.pid").write_text(f"{server.pid}\n")
        views = parse_observed(_sh(observe_command(layout)).stdout)
        assert views["server"] == {"pid": server.pid, "state": "running", "orphans": []}
        assert views["nginx"] == {"pid": None, "state": "orphaned", "orphans": sorted([by_cwd.pid, by_exe.pid])}
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_all_stops_orphans_and_reap_keeps_the_running_one(env):
    layout, spawn = env
    keep, orphan = spawn("custom_server"), spawn("custom_server")
    _wait_comm([keep.pid, orphan.pid])
    out = _sh(reap_command(layout, "server", keep=keep.pid, timeout=2)).stdout
    assert parse_reaped(out) == [orphan.pid]
    orphan.wait(5)
    assert keep.poll() is None
    with open(os.path.join(layout.run, "server.pid"), "w") as fh:
        fh.write(f"{keep.pid}\n")
    late = spawn("custom_server")
    _wait_comm([late.pid])
    out = _sh(stop_all_command(layout, "server", timeout=2)).stdout
    assert out.splitlines()[0] == "stopped" and parse_reaped(out) == [late.pid]
    keep.wait(5)
    late.wait(5)
    assert parse_observed(_sh(observe_command(layout)).stdout)["server"] == {
        "pid": None,
        "state": "stopped",
        "orphans": [],
    }
