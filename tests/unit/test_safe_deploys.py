"""Locks, history, pruning and rollout planning (issue 13): pure functions by table,
and the lock and history commands run under a real local ``sh``."""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from tiramisu_tasks import boxlock, commands, history, plans, rollout
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.layout import RemoteLayout

R = [f"2026010{i}T000000Z-{i:010d}" for i in range(1, 8)]  # oldest first


@pytest.mark.parametrize(
    "releases, live, keep, previous, pinned, failed, delete",
    [
        pytest.param(R[:3], R[2], 5, R[1], (), (), (), id="under-keep"),
        pytest.param(R[:5], R[4], 3, R[3], (), (), (R[0], R[1]), id="oldest-go"),
        pytest.param(R[:5], R[4], 1, R[3], (), (), (R[0], R[1], R[2]), id="keep-1-keeps-previous-good"),
        pytest.param(R[:5], R[4], 3, R[3], (R[0],), (), (R[1], R[2]), id="pinned-stays"),
        pytest.param(R[:5], R[4], 3, R[3], (), (R[2],), (R[2], R[0]), id="failed-first"),
        pytest.param(R[:5], R[4], 3, R[3], (), (R[3],), (R[3], R[0]), id="failed-previous-is-not-good"),
        pytest.param(R[:4], R[1], 2, None, (), (), (R[2], R[3]), id="older-good-one-protected"),
        pytest.param(R[:4], R[3], 1, R[0], (R[1], R[2]), (), (), id="all-protected-keeps-more"),
    ],
)
def test_plan_prune(releases, live, keep, previous, pinned, failed, delete):
    plan = plans.plan_prune("app", releases, live, keep, previous=previous, pinned=pinned, failed=failed)
    assert plan.delete == delete
    assert live not in plan.delete and not set(pinned) & set(plan.delete)
    assert plan.previous_good is None or plan.previous_good not in plan.delete


def test_plan_prune_text_and_dict():
    plan = plans.plan_prune("app", R[:3], R[2], 1, previous=R[1])
    assert plan.text().startswith(f"prune app: delete {R[0]} (keep 1; protected ")
    assert plan.as_dict()["delete"] == [R[0]]


def test_rollback_skips_failed_releases():
    plan = plans.plan_rollback("h", "app", [R[3], R[2], R[1]], R[3], failed=(R[2],))
    assert plan.target == R[1]
    with pytest.raises(UsageError, match="no release older than .* not marked failed"):
        plans.plan_rollback("h", "app", [R[3], R[2]], R[3], failed=(R[2],))
    assert plans.plan_rollback("h", "app", [R[3], R[2]], R[3], to=R[2], failed=(R[2],)).target == R[2]


# ------------------------------------------------------------- the lock ---


def sh(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "env with 'quotes'"
    root.mkdir()
    return RemoteLayout(str(root))


def info(token, task="deploy", app="hello", who=("alice", "laptop", 4242)):
    return boxlock.info_lines(task, app, "3f2a" * 16, token, who, 1_790_000_000)


def test_lock_is_taken_once_and_names_its_holder(layout):
    first = sh(commands.lock_acquire(layout, info("t1")))
    assert boxlock.parse_lock_output(first.stdout)[0] == "acquired"
    word, holder, _ = boxlock.parse_lock_output(sh(commands.lock_acquire(layout, info("t2", app="other"))).stdout)
    assert word == "held" and holder.token == "t1" and holder.app == "hello" and holder.pid == 4242
    assert holder.who == "alice@laptop" and 0 <= holder.age <= 2 and holder.since == "2026-09-21T14:13:20Z"
    assert "alice@laptop (pid 4242): deploy hello 3f2a3f2a3f2a" in holder.describe()
    # Only the holder's token refreshes or releases it.
    assert sh(commands.lock_heartbeat(layout, "t2")).stdout.strip() == "lost"
    assert sh(commands.lock_heartbeat(layout, "t1")).stdout.strip() == "ok"
    assert sh(commands.lock_release(layout, "t2")).stdout.strip() == "lost"
    assert sh(commands.lock_status(layout)).stdout.startswith("held\n")
    assert sh(commands.lock_release(layout, "t1")).stdout.strip() == "released"
    assert sh(commands.lock_status(layout)).stdout.strip() == "free"
    assert sorted(p.name for p in __import__("pathlib").Path(layout.state).iterdir()) == []


def test_lock_needs_the_env_unless_setup_creates_it(tmp_path):
    layout = RemoteLayout(str(tmp_path / "gone"))
    assert sh(commands.lock_acquire(layout, info("t"))).stdout.startswith("no-env")
    assert not (tmp_path / "gone").exists()
    assert sh(commands.lock_acquire(layout, info("t"), create_env=True)).stdout.startswith("acquired")


def test_only_one_of_many_concurrent_takers_wins(layout):
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: sh(commands.lock_acquire(layout, info(f"t{i}"))).stdout, range(16)))
    assert sum(o.startswith("acquired") for o in outs) == 1


def test_break_only_the_lock_that_was_inspected(layout):
    sh(commands.lock_acquire(layout, info("t1")))
    assert sh(commands.lock_break(layout, "other")).stdout.strip() == "changed"
    assert sh(commands.lock_break(layout, "t1")).stdout.strip() == "broken"
    assert sh(commands.lock_break(layout, "t1")).stdout.strip() == "free"
    # A lock dir without its info file (a taker killed between mkdir and the write).
    __import__("os").makedirs(layout.lock_dir)
    assert sh(commands.lock_break(layout, "")).stdout.strip() == "broken"


@pytest.mark.parametrize(
    "age, host, alive, stale",
    [(5, "elsewhere", False, False), (31, "elsewhere", True, True), (5, "here", False, True), (5, "here", True, False)],
)
def test_stale_by_heartbeat_or_by_a_gone_local_pid(age, host, alive, stale):
    holder = boxlock.Holder(who="a@x", host=host, pid=77, age=age)
    assert boxlock.is_stale(holder, "here", lambda pid: alive) is stale


def test_info_lines_carry_no_newline():
    lines = boxlock.info_lines("deploy", "a\nb", None, "tok", ("u", "h", 1), 0)
    assert "app=a b" in lines and all("\n" not in ln for ln in lines)


def test_unexpected_lock_output_is_a_remote_error():
    from tiramisu_tasks.errors import RemoteError

    with pytest.raises(RemoteError, match="unexpected answer"):
        boxlock.parse_lock_output("sh: mkdir: not found\n")


# ------------------------------------------------------------- history ---


def test_history_append_keeps_the_last_lines_and_parses(layout):
    for i in range(5):
        rec = history.make_record("deploy", f"app{i % 2}", "ok", 1.234, "u@h", "10.0.0.1", release=f"r{i}", now=0)
        line = json.dumps(rec)
        assert sh(commands.history_append(layout, line, max_lines=3)).returncode == 0
    text = open(layout.history_file).read()
    assert [r["release"] for r in history.parse_history(text)] == ["r2", "r3", "r4"]
    assert [r["release"] for r in history.parse_history(text, app="app0")] == ["r2", "r4"]
    assert [r["release"] for r in history.parse_history(text + "garbage\n", lines=1)] == ["r4"]
    assert oct(__import__("os").stat(layout.history_file).st_mode & 0o777) == "0o600"


def test_history_record_has_only_its_fields_and_one_error_line():
    rec = history.make_record("deploy", "a", "failed", 2, "u@h", "", error="first line\nsecret=xyz")
    assert set(rec) == set(history.FIELDS) and rec["error"] == "first line" and rec["from"] is None
    assert rec["seconds"] == 2.0


# ------------------------------------------------------------- rollout ---


@pytest.mark.parametrize(
    "text, hosts, batches",
    [
        ("2", ["d", "a", "c", "b", "e"], [("a", "b"), ("c", "d"), ("e",)]),
        ("25%", list("abcdefgh"), [("a", "b"), ("c", "d"), ("e", "f"), ("g", "h")]),
        ("10%", list("abc"), [("a",), ("b",), ("c",)]),
        ("100%", list("cba"), [("a", "b", "c")]),
        ("9", ["x"], [("x",)]),
    ],
)
def test_batches_are_sorted_and_cut(text, hosts, batches):
    assert list(rollout.plan_batches(hosts, rollout.parse_batch(text))) == batches


@pytest.mark.parametrize("text", ["0", "x", "-1", "101%", "0%", "2.5", ""])
def test_bad_batch_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--batch"):
        rollout.parse_batch(text)


def test_stop_when_more_than_max_failed():
    assert not rollout.should_stop(0, 0) and rollout.should_stop(1, 0) and not rollout.should_stop(1, 1)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["history", "--host", "h"], ["history", "", "--host", "h"]),
        (["history"], ["history", ""]),
        (["history", "app", "--host", "h"], ["history", "app", "--host", "h"]),
        (["deploy", "x", "--name", "history", "--host", "h"], ["deploy", "x", "--name", "history", "--host", "h"]),
    ],
)
def test_history_app_is_optional_on_the_command_line(argv, expected):
    from tiramisu_tasks.cli import fill_optional_positionals

    assert fill_optional_positionals(argv) == expected


@pytest.mark.parametrize(
    "args, message",
    [
        (["deploy", "x.wat", "--batch", "0"], "tiramisu: --batch: expected a host count"),
        (["deploy", "x.wat", "--pause", "3"], "tiramisu: --pause, --max-failed and --keep-partial go with --batch"),
        (["deploy", "x.wat", "--lock-wait", "soon"], "tiramisu: --lock-wait: expected an integer 0-86400"),
        (["lock.status"], "tiramisu: no host given"),
        (["history", "bad name", "--host", "h"], "tiramisu: invalid app name 'bad name'"),
    ],
)
def test_bad_safe_deploy_flags_are_one_line_exit_2(args, message):
    from tests.helpers import cli, one_line_error

    proc = cli("tiramisu", *args)
    assert proc.returncode == 2 and one_line_error(proc).startswith(message), proc.stderr


def test_the_attempt_is_told_apart_from_older_uploads_of_the_same_bytes():
    from tiramisu_tasks.deploy import attempted_releases

    sha = "ab" * 32
    old, new = plans.release_id(sha, now=1_000_000), plans.release_id(sha, now=1_000_100)
    other = plans.release_id("cd" * 32, now=1_000_100)
    assert attempted_releases([new, other, old], sha, since=1_000_050) == [new]


def test_chain_runs_in_order_and_stops_at_a_failure(tmp_path):
    log = tmp_path / "log"
    ok = commands.chain(f"echo a >> {log}", "", f"cd {tmp_path} && echo b >> {log}")
    assert sh(ok).returncode == 0 and log.read_text() == "a\nb\n"
    assert sh(commands.chain("false", f"echo c >> {log}")).returncode != 0 and "c" not in log.read_text()


def test_then_always_runs_the_final_step_and_keeps_the_status(tmp_path):
    log = tmp_path / "log"
    assert sh(commands.then_always("exit 3", f"echo final >> {log}")).returncode == 3
    assert sh(commands.then_always("true", f"echo final >> {log}")).returncode == 0
    assert log.read_text() == "final\nfinal\n"


def test_setup_lock_leaves_no_empty_env_behind(tmp_path):
    layout = RemoteLayout(str(tmp_path / "fresh-env"))
    sh(commands.lock_acquire(layout, info("t1"), create_env=True))
    assert sh(commands.lock_release(layout, "t1", tidy=True)).stdout.strip() == "released"
    assert not (tmp_path / "fresh-env").exists()
    sh(commands.lock_acquire(layout, info("t2"), create_env=True))
    (tmp_path / "fresh-env" / "VERSION").write_text("x")  # a setup that got somewhere keeps its env
    sh(commands.lock_release(layout, "t2", tidy=True))
    assert sorted(p.name for p in (tmp_path / "fresh-env").iterdir()) == ["VERSION"]
