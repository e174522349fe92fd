"""Locks, history, pruning and rollouts over the recording FakeBox (issue 13)."""

import json
import re
from types import SimpleNamespace

import pytest

from tests.orchestration.test_deploy import OLD, _preview_ready, _resp, apps_json, served
from tiramisu_tasks import boxlock, rollout
from tiramisu_tasks import deploy as dp

HELD_BY_BOB = (
    "held\nwho=bob@other\nhost=other\npid=99\ntask=deploy\napp=hello\nrelease=abc\nsince=X\ntoken=tb\nage={age}\n"
)


def test_a_held_lock_is_waited_for_then_refused_naming_the_holder(fake, open_fake):
    fake.on(r"^if \[ ! -d .*mkdir -m 700 .*state/lock", HELD_BY_BOB.format(age=2) + "client=10.0.0.9\n")
    box = open_fake()
    with pytest.raises(boxlock.LockBusy) as err:
        boxlock.acquire(box, "deploy", "hello", wait=0.6, heartbeat_every=0)
    message = err.value.message
    assert message.startswith("fake is locked by bob@other (pid 99): deploy hello abc, since X, heartbeat 2s ago")
    assert "waited 1s" in message or "waited 0s" in message
    assert "--lock-wait" in message and err.value.code == 1
    assert len(fake.ran(r"mkdir -m 700 .*state/lock")) >= 2  # it retried
    assert any("waiting up to 1s for the lock held by bob@other" in n for n in box.rep.notes)


def test_a_stale_lock_is_refused_with_the_way_to_break_it(fake, open_fake):
    fake.on(r"^if \[ ! -d .*mkdir -m 700 .*state/lock", HELD_BY_BOB.format(age=300))
    with pytest.raises(boxlock.LockBusy, match=r"its holder is gone: break it with tiramisu lock.release --host fake"):
        boxlock.acquire(open_fake(), "deploy", "hello", wait=0, heartbeat_every=0)


def test_lock_release_breaks_only_a_stale_lock_unless_forced(fake, open_fake):
    box = open_fake()
    fake.on(r"^if \[ -d .*state/lock", HELD_BY_BOB.format(age=3))
    with pytest.raises(boxlock.LockBusy, match="not stale .* --force breaks it anyway"):
        boxlock.break_lock(box)
    assert not fake.ran(r"mv .*lock.broken")
    asked = []
    fake.on(r"then echo free; elif grep", "broken\n")
    result = boxlock.break_lock(box, force=True, confirm=asked.append)
    assert result["broken"] and result["holder"]["who"] == "bob@other" and asked
    fake.on(r"^if \[ -d .*state/lock", HELD_BY_BOB.format(age=300))
    assert boxlock.break_lock(box)["broken"]
    assert "token=tb" in fake.ran(r"elif grep")[-1]


def test_lock_status_free_and_held(fake, open_fake):
    box = open_fake()
    fake.on(r"^if \[ -d .*state/lock", "free\n")
    assert boxlock.status(box)["state"] == "free"
    fake.on(r"^if \[ -d .*state/lock", HELD_BY_BOB.format(age=1))
    seen = boxlock.status(box)
    assert seen["state"] == "held" and seen["stale"] is False and seen["holder"]["pid"] == 99
    json.dumps(seen)


def script_lock(fake):
    fake.on(r"^if \[ ! -d .*mkdir -m 700 .*state/lock", "acquired\nclient=10.0.0.9\n")
    fake.on(r"^if grep -qxF .*token=.* mv ", "released\n")
    fake.on(r"tail -n 9999 .*history.jsonl")


def listing(fake, n):
    """``ls -1`` of releases/hello: n old releases plus whatever was uploaded there."""
    from tests.fakebox import Reply

    names = [f"2026010{i}T000000Z-{i:010d}.wasm" for i in range(1, n + 1)] + ["CURRENT"]
    names += [p.rsplit("/", 1)[1] for p in fake.files if "/releases/hello/" in p]
    return Reply("\n".join(names) + "\n")


def history_records(fake):
    out = []
    for command in fake.ran(r"history.jsonl.tmp"):
        m = re.search(r"printf '%s\\n' '(\{.*\})'", command)
        out.append(json.loads(m.group(1)))
    return out


def test_locked_deploy_records_history_prunes_and_pins(fake, open_fake, built):
    app = built()
    fake.on(r"^ls -1 .*releases/hello", reply=lambda command: listing(fake, 6))
    fake.on_http(
        "/_tiramisu/apps",
        reply=[
            _resp(apps_json({"name": "hello", "sha256": OLD, "state": "active"})),
            _preview_ready(app.sha256),
            _resp(apps_json({"name": "hello", "sha256": app.sha256, "state": "active"})),
        ],
    )
    fake.on_http("/hello/", 200, "hi", port=8080)
    fake.on(r"\{ ln -f ")
    fake.on(r"\|\| : > .*\.keep'?$")
    script_lock(fake)
    box = served(fake, open_fake, current="20260106T000000Z-0000000006")
    summary = dp.locked_deploy(box, app, "hello", None, keep=3, pin=True, wait=0)
    (last,) = fake.ran(r"history.jsonl.tmp")  # pin, prune, history and the release: one round trip
    assert f"{summary['release']}.keep" in last and "rm -f -- 20260101T000000Z-0000000001.wasm" in last
    assert summary["pinned"] and summary["pruned"] == [f"2026010{i}T000000Z-{i:010d}" for i in (1, 2, 3, 4)]
    (rec,) = history_records(fake)
    assert rec["result"] == "ok" and rec["action"] == "deploy" and rec["sha256"] == app.sha256
    assert rec["release"] == summary["release"] and rec["from"] == "10.0.0.9" and rec["previous"].endswith("6")
    order = [i for i, c in enumerate(fake.commands) if "state/lock" in c or "history" in c or "ln -f" in c]
    kinds = ["lock" if "mkdir -m 700" in fake.commands[i] else fake.commands[i][:12] for i in order]
    assert kinds[0] == "lock"  # lock first
    assert "history.jsonl.tmp" in fake.commands[-1] and "lock.released-" in fake.commands[-1]  # released with it
    assert len(fake.ran(r"lock.released-")) == 1


def test_a_failed_attempt_is_marked_and_recorded(fake, open_fake, built):
    from tiramisu_tasks.errors import RemoteError

    app = built()
    fake.on(r"^ls -1 .*releases/hello", reply=lambda command: listing(fake, 1))
    fake.on_http(
        "/_tiramisu/apps",
        reply=[
            _resp(apps_json({"name": "hello", "sha256": OLD, "state": "active"})),
            _preview_ready(app.sha256),
            _resp(apps_json({"name": "hello", "sha256": OLD, "error": "trap", "failed_sha256": app.sha256})),
        ],
    )
    fake.on(r"\{ ln -f ")
    fake.on(r"\|\| : > .*\.failed'?$")
    script_lock(fake)
    with pytest.raises(RemoteError, match="rejected"):
        dp.locked_deploy(served(fake, open_fake), app, "hello", None, wait=0)
    (uploaded,) = [p.rsplit("/", 1)[1][:-5] for p in fake.files if "/releases/hello/" in p]
    assert fake.ran(rf"{uploaded}\.failed") and not fake.ran(r"20260101T000000Z-0000000001\.failed")
    (rec,) = history_records(fake)
    assert rec["result"] == "failed" and rec["release"] == uploaded and "trap" in rec["error"]
    assert fake.commands[-1].startswith("if grep -qxF")  # the lock was released


# ------------------------------------------------------------- rollout ---


class Lock:
    def __init__(self, log, name):
        self.log, self.name = log, name

    def release(self):
        self.log.append(("release", self.name))


def fleet(fail=(), names=("h1", "h2", "h3", "h4", "h5", "h6")):
    log = []

    def open_box(name):
        return SimpleNamespace(name=name, effects=None)

    def acquire(box):
        log.append(("lock", box.name))
        return Lock(log, box.name)

    def deploy_one(box, lock):
        log.append(("deploy", box.name))
        if box.name in fail:
            raise (
                RuntimeError("boom")
                if box.name == "crash"
                else __import__("tiramisu_tasks.errors").errors.RemoteError(f"{box.name} answered HTTP 500")
            )
        return {"changed": True, "release": "NEW", "previous": f"OLD-{box.name}"}

    def restore_one(box, lock, previous):
        log.append(("restore", box.name, previous))

    return log, dict(open_box=open_box, acquire=acquire, deploy_one=deploy_one, restore_one=restore_one), list(names)


def test_rollout_stops_after_the_failing_batch_and_restores_updated_hosts():
    log, fx, names = fleet(fail=("h4",))
    result = rollout.run_rollout("app", hosts=list(reversed(names)), spec=rollout.parse_batch("2"), **fx)
    by = {o.host: o.result for o in result.outcomes}
    assert by == {
        "h1": "restored",
        "h2": "restored",
        "h3": "restored",
        "h4": "failed",
        "h5": "untouched",
        "h6": "untouched",
    }
    assert result.stopped_after == 1 and not result.ok
    locks = [e[1] for e in log if e[0] == "lock"]
    assert locks[:4] == ["h1", "h2", "h3", "h4"]  # sorted, batch by batch
    assert ("restore", "h1", "OLD-h1") in log and not any(e[0] == "deploy" and e[1] in ("h5", "h6") for e in log)
    assert all(e[1] not in ("h5", "h6") for e in log)
    text = rollout.summary_text(result)
    assert "stopped after batch 2 of 3" in text and "OLD-h1" in text
    assert result.as_dict()["hosts"][3]["error"] == "h4 answered HTTP 500"


def test_keep_partial_and_max_failed():
    log, fx, names = fleet(fail=("h2",))
    result = rollout.run_rollout("app", hosts=names, spec=rollout.parse_batch("50%"), keep_partial=True, **fx)
    assert result.stopped_after == 0 and result.kept_partial
    assert [o.result for o in result.outcomes] == [
        "updated",
        "failed",
        "updated",
        "untouched",
        "untouched",
        "untouched",
    ]
    assert not any(e[0] == "restore" for e in log)
    log, fx, names = fleet(fail=("h2",))
    result = rollout.run_rollout("app", hosts=names, spec=rollout.parse_batch("2"), max_failed=1, **fx)
    assert result.stopped_after is None and [o.result for o in result.outcomes].count("updated") == 5
    assert not result.ok  # one host failed: the task still exits 1


def test_a_lock_that_cannot_be_taken_fails_that_host_only():
    log, fx, names = fleet(names=("a", "b"))

    def acquire(box):
        if box.name == "a":
            raise boxlock.LockBusy("a is locked by bob")
        return Lock(log, box.name)

    fx["acquire"] = acquire
    result = rollout.run_rollout("app", hosts=names, spec=rollout.parse_batch("2"), max_failed=5, **fx)
    assert [(o.host, o.result, o.error) for o in result.outcomes] == [
        ("a", "failed", "a is locked by bob"),
        ("b", "updated", None),
    ]


def test_tasks_lock_only_boxes_with_an_env_and_look_again_after_waiting(fake, open_fake):
    from tests.fakebox import Reply

    opened = []

    def opener(**kw):
        return lambda: opened.append(1) or open_fake(**kw)

    with boxlock.locked(opener(installed=False, env_exists=False), "webserv.stop") as box:
        assert box.name == "fake"
    assert not fake.ran(r"state/lock") and len(opened) == 1
    replies = [HELD_BY_BOB.format(age=1), "acquired\nclient=1.2.3.4\n"]
    fake.on(
        r"^if \[ ! -d .*mkdir -m 700 .*state/lock",
        reply=[Reply(r) for r in replies],
    )
    fake.on(r"^if grep -qxF .*token=.* mv ", "released\n")
    opened.clear()
    with boxlock.locked(opener(), "webserv.restart", wait=5) as box:
        assert len(opened) == 2  # observed again under the lock
    assert fake.commands[-1].startswith("if grep -qxF")
