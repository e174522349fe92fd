"""On real hosts (issue 13): concurrent deploys under the box's lock, a killed
holder, the history, and a rolling deploy over four x86_64 netns hosts plus the
aarch64 host with one broken host."""

import os
import signal
import subprocess
from types import SimpleNamespace

import pytest

from tests.helpers import BIN, REPO, cli, host_result, json_document, one_line_error
from tests.integration.test_deploy import wat_app
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow
SETTINGS = {"env_dir": "~/tiramisu-safe", "http_port": 8282, "server_port": 9292}


@pytest.fixture
def box(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box", settings=SETTINGS)
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    yield x86_host
    cli("tiramisu", "teardown", "--host", "box", "--yes")


def start(*args):
    return subprocess.Popen(
        [str(BIN / "tiramisu"), *map(str, args)],
        cwd=REPO,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def url(host, path):
    return f"http://{host.hostname}:8282{path}"


def history(host="box", *extra):
    proc = cli("tiramisu", "history", *extra, "--host", host, "--json", "--lines", "1000")
    assert proc.returncode == 0, proc.stderr
    return host_result(proc)["records"]


def test_four_concurrent_deploys_with_routes_all_end_up_routed(box, tmp_path):
    apps = [wat_app(tmp_path / f"p{i}.wat", f"app p{i}") for i in range(4)]
    procs = [start("deploy", a, "--host", "box", "--route", f"/r{i}", "--lock-wait", "300") for i, a in enumerate(apps)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for i in range(4):
        assert get(url(box, f"/r{i}")) == (200, f"app p{i}\n".encode())
    # Without waiting: each one either deploys or refuses in one line naming the holder.
    apps = [wat_app(tmp_path / f"p{i}.wat", f"app p{i} v2") for i in range(4)]
    procs = [start("deploy", a, "--host", "box", "--route", f"/r{i}", "--lock-wait", "0") for i, a in enumerate(apps)]
    done = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=600)
        if p.returncode == 0:
            done.append(i)
        else:
            finished = SimpleNamespace(returncode=p.returncode, stdout=out, stderr=err)
            assert p.returncode == 1 and "is locked by" in one_line_error(finished), err
    assert done
    for i in range(4):
        assert get(url(box, f"/r{i}"))[1] == (f"app p{i} v2\n" if i in done else f"app p{i}\n").encode()
    records = history()
    assert sum(r["action"] == "deploy" and r["result"] == "ok" for r in records) == 4 + len(done)
    assert all(r["who"] and r["from"] for r in records)


def test_two_deploys_of_one_app_serialize(box, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = wat_app(tmp_path / "a" / "same.wat", "same a")
    b = wat_app(tmp_path / "b" / "same.wat", "same b")
    procs = [start("deploy", src, "--host", "box", "--lock-wait", "300", "--json") for src in (a, b)]
    summaries = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        summaries.append(host_result(SimpleNamespace(returncode=p.returncode, stdout=out)))
    # The later one saw the earlier one's release as the previous: no lost update.
    # (Which one ran first is told by that, not by the ids: both may carry the same second.)
    a, b = summaries
    assert b["previous"] == a["release"] or a["previous"] == b["release"], summaries
    assert get(url(box, "/same/"))[1] in (b"same a\n", b"same b\n")
    ok = [r for r in history("box", "same") if r["result"] == "ok"]
    assert len(ok) == 2 and ok[0]["time"] <= ok[1]["time"]


def test_a_killed_deploy_leaves_a_lock_that_status_names_and_release_clears(box, tmp_path):
    app = wat_app(tmp_path / "killed.wat", "killed")
    proc = start("deploy", app, "--host", "box")
    try:
        for line in proc.stderr:  # the plan is printed under the lock
            if line.startswith("plan for box:"):
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    status = cli("tiramisu", "lock.status", "--host", "box", "--json")
    seen = host_result(status)
    assert seen["state"] == "held" and seen["holder"]["pid"] == proc.pid and seen["holder"]["task"] == "deploy"
    assert seen["stale"] is True and seen["holder"]["app"] == "killed"
    refused = cli("tiramisu", "deploy", app, "--host", "box", "--lock-wait", "1")
    assert "its holder is gone: break it with tiramisu lock.release --host box" in one_line_error(refused)
    assert "--yes" in one_line_error(cli("tiramisu", "lock.release", "--host", "box"))
    released = cli("tiramisu", "lock.release", "--host", "box", "--yes")
    assert released.returncode == 0 and "broken" in released.stdout, released.stderr
    assert host_result(cli("tiramisu", "lock.status", "--host", "box", "--json"))["state"] == "free"
    again = cli("tiramisu", "deploy", app, "--host", "box")
    assert again.returncode == 0, again.stderr
    assert get(url(box, "/killed/"))[1] == b"killed\n"


def test_a_fresh_lock_is_not_broken_without_force(box):
    holder = box.ssh(
        "mkdir -p ~/tiramisu-safe/state/lock && printf 'who=bob@elsewhere\\nhost=elsewhere\\npid=1\\ntask=deploy\\n"
        "token=tb\\n' > ~/tiramisu-safe/state/lock/info"
    )
    assert holder.returncode == 0, holder.stderr
    refused = cli("tiramisu", "lock.release", "--host", "box", "--yes")
    assert refused.returncode == 1 and "not stale" in one_line_error(refused)
    forced = cli("tiramisu", "lock.release", "--host", "box", "--yes", "--force")
    assert forced.returncode == 0, forced.stderr


def test_rollout_stops_after_the_failing_batch_and_restores(
    x86_host, aarch64_host, fresh_x86_host, tmp_inventory, tmp_path
):
    hosts = {"a1": x86_host, "a2": fresh_x86_host("sd-a2"), "a3": fresh_x86_host("sd-a3")}
    hosts["a4"] = fresh_x86_host("sd-a4")
    hosts["b"] = aarch64_host
    for name, host in hosts.items():
        host.register(tmp_inventory, name, groups=["fleet"], settings=SETTINGS)
    try:
        proc = cli("tiramisu", "setup", "--host", "fleet", timeout=1200)
        assert proc.returncode == 0, proc.stderr
        (tmp_path / "v1").mkdir()
        (tmp_path / "v2").mkdir()
        v1 = wat_app(tmp_path / "v1" / "roll.wat", "roll v1")
        v2 = wat_app(tmp_path / "v2" / "roll.wat", "roll v2")
        first = cli("tiramisu", "deploy", v1, "--host", "fleet", "--batch", "100%", "--json")
        assert first.returncode == 0, first.stderr
        assert all(h["result"] == "updated" for h in json_document(first)["hosts"])
        # a3 cannot take a new release: its releases folder is read-only.
        hosts["a3"].ssh("chmod 500 ~/tiramisu-safe/releases/roll", check=True)
        roll = cli("tiramisu", "deploy", v2, "--host", "fleet", "--batch", "2", "--json")
        assert roll.returncode == 1, roll.stderr
        result = json_document(roll)
        by = {h["host"]: h for h in result["hosts"]}
        assert result["batches"] == [["a1", "a2"], ["a3", "a4"], ["b"]] and result["stopped_after_batch"] == 2
        assert (by["a1"]["result"], by["a2"]["result"]) == ("restored", "restored")
        assert by["a3"]["result"] == "failed" and by["a3"]["error"]
        assert by["a4"]["result"] in ("restored", "failed") and by["b"]["result"] == "untouched"
        assert "stopped after batch 2 of 3" in roll.stderr
        for name, host in hosts.items():
            assert get(f"http://{host.hostname}:8282/roll/") == (200, b"roll v1\n"), name
        a1 = [(r["action"], r["result"]) for r in history("a1", "roll")]
        assert a1 == [("deploy", "ok"), ("deploy", "ok"), ("restore", "ok")]
        assert [(r["action"], r["result"]) for r in history("a3", "roll")] == [("deploy", "ok"), ("deploy", "failed")]
        assert [(r["action"], r["result"]) for r in history("b", "roll")] == [("deploy", "ok")]
    finally:
        hosts["a3"].ssh("chmod 700 ~/tiramisu-safe/releases/roll")
        cli("tiramisu", "teardown", "--host", "fleet", "--yes")
