"""Pure command builders, checked by table and, where it matters, by running
the generated sh locally (it is the same POSIX sh the box runs)."""

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tiramisu_tasks import commands, plans, routes
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.layout import RemoteLayout, resolve_env_dir
from tiramisu_tasks.plans import port_conflicts, service_actions
from tiramisu_tasks.services import boot_line, start_command, stop_command
from tiramisu_tasks.transfer import Upload, plan_uploads, receiver_script

L = RemoteLayout("/home/pi/tiramisu env")  # a space on purpose: quoting must hold


@pytest.mark.parametrize(
    "env_dir, expected",
    [
        ("~/tiramisu-env", "/home/pi/tiramisu-env"),
        ("~", "/home/pi"),
        ("apps/t", "/home/pi/apps/t"),
        ("/srv/t/", "/srv/t"),
        (None, "/home/pi/tiramisu-env"),
    ],
    ids=["tilde", "home", "relative", "absolute", "default"],
)
def test_resolve_env_dir(env_dir, expected):
    assert resolve_env_dir(env_dir, "/home/pi") == expected


def test_start_command_is_detached_and_quoted():
    cmd = start_command(L, "server")
    assert cmd.startswith("cd '/home/pi/tiramisu env' || exit 1; nohup setsid ")
    assert "</dev/null >>'/home/pi/tiramisu env/logs/server.out' 2>&1 & echo $!" in cmd
    assert "'/home/pi/tiramisu env/bin/custom_server' --config '/home/pi/tiramisu env/conf/server.conf'" in cmd
    ncmd = start_command(L, "nginx")
    assert "-g 'daemon off;'" in ncmd and "-p '/home/pi/tiramisu env'" in ncmd


def test_stop_command_graceful_then_forced():
    cmd = stop_command(L, "nginx", timeout=3)
    assert "kill -QUIT" in cmd and "kill -KILL" in cmd and "-lt 30" in cmd
    assert "kill -TERM" in stop_command(L, "server")


def test_boot_line_has_marker_and_no_percent():
    line = boot_line(L)
    assert line.startswith("@reboot ") and line.endswith("# tiramisu:/home/pi/tiramisu env")
    assert "%" not in line  # cron turns % into newlines


@pytest.mark.parametrize(
    "changed, states, expected",
    [
        (set(), {"server": (1, "running"), "nginx": (2, "running")}, {"server": "keep", "nginx": "keep"}),
        (
            {"conf/nginx.conf"},
            {"server": (1, "running"), "nginx": (2, "running")},
            {"server": "keep", "nginx": "reload"},
        ),
        (
            {"bin/nginx", "conf/nginx.conf"},
            {"server": (1, "running"), "nginx": (2, "running")},
            {"server": "keep", "nginx": "restart"},
        ),
        (
            {"lib/libwasmtime.so"},
            {"server": (1, "running"), "nginx": (2, "running")},
            {"server": "restart", "nginx": "keep"},
        ),
        (
            {"conf/server.conf"},
            {"server": (1, "stale"), "nginx": (None, "stopped")},
            {"server": "start", "nginx": "start"},
        ),
        (set(), {}, {"server": "start", "nginx": "start"}),
    ],
    ids=["nothing", "nginx-conf", "nginx-bin", "wasmtime-lib", "stale-and-stopped", "bare"],
)
def test_service_actions(changed, states, expected):
    assert service_actions(changed, states) == expected


def test_port_conflicts_ignore_our_own_running_services():
    report = {"listening_ports": [8080, 9000]}
    running = {"nginx": (1, "running"), "server": (2, "running")}
    assert port_conflicts(report, running, 8080, 9000, {"nginx": 8080, "server": 9000}) == []
    assert port_conflicts(report, {}, 8080, 9000, {}) == [8080, 9000]
    assert port_conflicts(report, running, 8080, 9000, {"nginx": 8081, "server": 9000}) == [8080]


def test_failure_line_prefers_the_bind_error():
    from tiramisu_tasks.lifecycle import pick_failure_line

    lines = [
        "nginx: [emerg] bind() to 0.0.0.0:8080 failed (98: Address already in use)",
        "nginx: [emerg] still could not bind()",
    ]
    assert "0.0.0.0:8080" in pick_failure_line(lines)
    assert pick_failure_line(["a", "b"]) == "b" and pick_failure_line([]) == "no output"


def test_plan_uploads_skips_same_hash():
    a = Upload("/a", "/r/a", "1" * 64, 1)
    b = Upload("/b", "/r/b", "2" * 64, 1)
    assert plan_uploads([a, b], {"/r/a": "1" * 64, "/r/b": "3" * 64}) == [b]


def _tar(payloads):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for i, data in enumerate(payloads):
            info = tarfile.TarInfo(str(i))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _uploads(root, payloads):
    return [
        Upload(f"/local/{i}", str(root / f"f{i}"), hashlib.sha256(d).hexdigest(), len(d), "640")
        for i, d in enumerate(payloads)
    ]


def test_receiver_switches_all_files_when_complete(tmp_path):
    payloads = [b"new binary" * 1000, b"new lib"]
    (tmp_path / "f0").write_bytes(b"old")
    ups = _uploads(tmp_path, payloads)
    proc = subprocess.run(["sh", "-c", receiver_script(str(tmp_path), ups)], input=_tar(payloads))
    assert proc.returncode == 0
    assert (tmp_path / "f0").read_bytes() == payloads[0] and (tmp_path / "f1").read_bytes() == payloads[1]
    assert oct((tmp_path / "f1").stat().st_mode & 0o777) == "0o640"
    assert sorted(os.listdir(tmp_path)) == ["f0", "f1"]  # no staging dir left


@pytest.mark.parametrize("cut", [0, 100, 600, 5000], ids=lambda n: f"cut-at-{n}")
def test_receiver_cut_short_changes_nothing_and_leaves_nothing(tmp_path, cut):
    payloads = [b"x" * 4000, b"y" * 3000]
    (tmp_path / "f0").write_bytes(b"old")
    ups = _uploads(tmp_path, payloads)
    proc = subprocess.run(
        ["sh", "-c", receiver_script(str(tmp_path), ups)], input=_tar(payloads)[:cut], capture_output=True
    )
    assert proc.returncode != 0 and b"tiramisu-upload" in proc.stderr
    assert (tmp_path / "f0").read_bytes() == b"old" and not (tmp_path / "f1").exists()
    assert sorted(os.listdir(tmp_path)) == ["f0"]


def test_receiver_failing_check_switches_nothing(tmp_path):
    payloads = [b"conf"]
    ups = _uploads(tmp_path, payloads)
    proc = subprocess.run(
        ["sh", "-c", receiver_script(str(tmp_path), ups, check='grep -q nope "$T/0"')],
        input=_tar(payloads),
        capture_output=True,
    )
    assert proc.returncode == 73 and os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "route, ok",
    [
        ("/", "/"),
        ("/api/", "/api"),
        ("/a/b", "/a/b"),
        ("api", None),
        ("/_tiramisu/x", None),
        ("/a//b", None),
        ("/a/../b", None),
        ("/a b", None),
    ],
    ids=repr,
)
def test_validate_route(route, ok):
    if ok is None:
        with pytest.raises(UsageError):
            routes.validate_route(route)
    else:
        assert routes.validate_route(route) == ok


def test_routes_update_replaces_prefix_owner():
    text = "# PREFIX APP\n/ hello\n/api old\n"
    assert routes.routes_update(text, "new", "/api") == "# PREFIX APP\n/ hello\n/api new\n"
    assert routes.routes_for("/ hello\n/x hello\n/api b\n", "hello") == ["/", "/x"]
    assert routes.routes_without_app("# c\n/ hello\n/api b\n", "hello") == "# c\n/api b\n"


def test_release_ids_sort_by_time():
    a = plans.release_id("a" * 64, now=1_000_000)
    b = plans.release_id("0" * 64, now=1_000_001)
    assert a < b and a.endswith("-aaaaaaaaaa")


def test_pruning_deletes_what_the_plan_says_and_the_listing_sees_marks(tmp_path):
    layout = RemoteLayout(str(tmp_path / "env with space"))
    d = Path(layout.app_releases("app"))
    d.mkdir(parents=True)
    ids = [plans.release_id(f"{i:064x}", now=1_000_000 + i) for i in range(4)]
    for rid in ids:
        (d / f"{rid}.wasm").write_bytes(b"x")
    (d / "CURRENT").write_text(ids[3])
    subprocess.run(["sh", "-c", commands.mark_release(layout, "app", ids[1], "failed")], check=True)
    subprocess.run(["sh", "-c", commands.mark_release(layout, "app", ids[0], "keep")], check=True)
    listing = subprocess.run(["sh", "-c", commands.list_releases(layout, "app")], capture_output=True, text=True)
    assert commands.parse_release_listing(listing.stdout) == (tuple(reversed(ids)), (ids[1],), (ids[0],))
    subprocess.run(["sh", "-c", commands.delete_releases(layout, "app", [ids[1]])], check=True)
    left = sorted(p.name for p in d.iterdir())
    assert left == sorted(["CURRENT", f"{ids[0]}.keep"] + [f"{r}.wasm" for r in (ids[0], ids[2], ids[3])])
    assert commands.delete_releases(layout, "app", []) == "true"


def test_switch_command_runs_and_records_current(tmp_path):
    layout = RemoteLayout(str(tmp_path))
    for p in (layout.modules, layout.app_releases("hi")):
        os.makedirs(p)
    open(layout.release("hi", "R1"), "wb").write(b"\0asm-one")
    subprocess.run(["sh", "-c", commands.switch_release(layout, "hi", "R1")], check=True)
    assert open(layout.app_module("hi"), "rb").read() == b"\0asm-one"
    assert open(os.path.join(layout.app_releases("hi"), "CURRENT")).read().strip() == "R1"
    assert sorted(os.listdir(layout.modules)) == ["hi.wasm"]


def test_liveness_test_rejects_zombies_and_strangers(tmp_path):
    """Run the generated test against real processes: ours, a zombie, a stranger."""
    import time

    from tiramisu_tasks.services import is_ours

    def verdict(pid, comm):
        return subprocess.run(["sh", "-c", is_ours(str(pid), comm)]).returncode == 0

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert verdict(sleeper.pid, "sleep") and not verdict(sleeper.pid, "nginx")
        sleeper.kill()
        time.sleep(0.2)  # now a zombie: not reaped until wait()
        assert open(f"/proc/{sleeper.pid}/status").read().count("zombie") == 1
        assert not verdict(sleeper.pid, "sleep")
    finally:
        sleeper.wait()
    assert not verdict(sleeper.pid, "sleep")


def test_old_glibc_is_refused_before_upload_with_versions():
    from types import SimpleNamespace

    from tiramisu_tasks.errors import UnsupportedTarget
    from tiramisu_tasks.lifecycle import refuse_old_glibc
    from tiramisu_tasks.targets import get_target

    box = SimpleNamespace(name="old", target=get_target("x86_64"), report={"libc_version": "2.31"})
    with pytest.raises(UnsupportedTarget, match=r"glibc 2.31 .* needs glibc >= 2.34.*--toolchain zig"):
        refuse_old_glibc(box, "2.34", "gcc")
    refuse_old_glibc(box, "2.17", "zig")  # fine


def test_switching_a_file_that_is_already_live_is_a_no_op(tmp_path):
    """One inode, two links (an upload that linked bytes the box had): mv would refuse
    ("are the same file"); every switch treats it as already done."""
    import os

    from tiramisu_tasks.layout import RemoteLayout

    layout = RemoteLayout(str(tmp_path / "env"))
    os.makedirs(layout.modules)
    os.makedirs(layout.app_releases("app"))
    (tmp_path / "rel" / "modules").mkdir(parents=True)
    (tmp_path / "rel" / "modules" / "m.wasm").write_text("1")
    os.link(tmp_path / "rel" / "modules" / "m.wasm", os.path.join(layout.modules, "m.wasm"))
    subprocess.run(["sh", "-c", commands.switch_bundle_modules(layout, str(tmp_path / "rel"))], check=True)
    with open(layout.release("app", "r1"), "w") as fh:
        fh.write("z")
    os.link(layout.release("app", "r1"), layout.app_module("app"))
    subprocess.run(["sh", "-c", commands.switch_release(layout, "app", "r1")], check=True)
    subprocess.run(
        ["sh", "-c", commands.install_beside(layout.release("app", "r1"), layout.app_module("app"))], check=True
    )
    with open(layout.release("app", "r2"), "w") as fh:
        fh.write("w")
    subprocess.run(["sh", "-c", commands.switch_release(layout, "app", "r2")], check=True)
    assert open(layout.app_module("app")).read() == "w"
