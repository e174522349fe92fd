"""The CLI contract's pure pieces (README "CLI contract"): host resolution, the
-H/--host merge, the JSON document, exit codes and error lines, and the
follow-mode tail that must die with its session. No box, no network."""

import json
import os
import signal
import subprocess
import time

import invoke
import paramiko
import pytest

from tiramisu_tasks import cli, commands, connect, hostrun, taskkit
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.inventory import HostEntry, Inventory
from tiramisu_tasks.namespace import ns


def inventory(tmp_path):
    return Inventory(
        tmp_path / "tiramisu.yaml",
        hosts={
            "pi": HostEntry("pi", "10.0.0.2", groups=["lab"]),
            "box": HostEntry("box", "10.0.0.3", groups=["lab"]),
        },
    )


# ------------------------------------------------------------ resolution ---


@pytest.mark.parametrize(
    "text, host",
    [
        ("pi", "pi"),
        ("me@pi", "pi"),
        ("me@10.0.0.1:2222", "10.0.0.1"),
        ("box.example:22", "box.example"),
        ("[::1]:2222", "::1"),
        ("::1", "::1"),
    ],
)
def test_host_part(text, host):
    assert connect.host_part(text) == host


def test_ssh_alias_matches_host_patterns_but_not_the_catch_all():
    patterns = {"*", "build-*", "gw", "!secret"}
    assert connect.ssh_alias("gw", patterns) and connect.ssh_alias("build-7", patterns)
    assert not connect.ssh_alias("pi", patterns) and not connect.ssh_alias("secret", patterns)


def test_names_groups_and_resolvable_strings_resolve(tmp_path):
    inv = inventory(tmp_path)
    specs = connect.resolve_specs(None, "lab, me@example.org:2222", inv, resolvable=lambda h: h == "example.org")
    assert [s.name for s in specs] == ["pi", "box", "me@example.org:2222"]
    assert specs[0].entry is not None and specs[2].entry is None


def test_a_mistyped_host_is_a_usage_error_naming_the_known_hosts(tmp_path):
    inv = inventory(tmp_path)
    with pytest.raises(UsageError) as err:
        connect.resolve_specs(None, "pi,pj", inv, resolvable=lambda h: False)
    assert err.value.code == 2
    assert err.value.message == (
        "unknown host 'pj': not an inventory host, group or ssh_config alias, and it does not resolve; "
        "inventory hosts: box, pi; groups: lab"
    )
    assert "\n" not in err.value.message


# ------------------------------------------------------------- -H merge ---


def call(task_name, **kwargs):
    return invoke.Call(task=ns[task_name], kwargs=kwargs)


def test_dash_h_becomes_the_hosts_argument():
    assert cli.call_with_hosts(call("setup", host=None), "a,b").kwargs["host"] == "a,b"
    assert cli.call_with_hosts(call("host.check", name="a,b"), "a, b").kwargs["name"] == "a, b"


@pytest.mark.parametrize(
    "task_name, kwargs, hosts, line",
    [
        ("setup", {"host": "c"}, "a,b", "tiramisu: -H a,b and --host c name different hosts: give one of them"),
        ("host.check", {"name": "c"}, "a", "tiramisu: -H a and NAME c name different hosts: give one of them"),
        ("host.list", {}, "a", "tiramisu: host.list acts on no host: drop -H"),
    ],
)
def test_dash_h_conflicts_are_usage_errors(task_name, kwargs, hosts, line):
    with pytest.raises(invoke.Exit) as err:
        cli.call_with_hosts(call(task_name, **kwargs), hosts)
    assert err.value.code == 2 and err.value.message == line


def test_dash_h_conflict_under_json_still_prints_one_document(capsys):
    with pytest.raises(invoke.Exit) as err:
        cli.call_with_hosts(call("setup", host="c", json=True), "a,b")
    assert err.value.code == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "schema": "tiramisu.setup/1",
        "ok": False,
        "exit_code": 2,
        "error": "-H a,b and --host c name different hosts: give one of them",
        "hosts": [],
    }


def test_every_host_option_answers_to_dash_h_too():
    for name in ns.task_names:
        args = {a.name: a.names for a in ns[name].get_arguments()}
        if "host" in args:
            assert "H" in args["host"], name


# -------------------------------------------------------- JSON document ---


def result(name, ok=True, value=None, error=None, code=0, seconds=1.23456):
    return hostrun.HostResult(name, ok, value, error=error, code=code, seconds=seconds)


def test_one_host_and_many_give_the_same_shape():
    one = hostrun.document([result("a", value={"url": "http://a/", "seconds": 9})])
    two = hostrun.document(
        [result("a", value={"url": "http://a/"}), result("b", ok=False, error="cannot connect: refused", code=255)]
    )
    assert set(one) == set(two) == {"ok", "exit_code", "hosts"}
    assert one["ok"] is True and one["exit_code"] == 0
    assert one["hosts"] == [
        {"host": "a", "ok": True, "exit_code": 0, "error": None, "seconds": 1.235, "url": "http://a/"}
    ]
    assert two["ok"] is False and two["exit_code"] == 1
    assert two["hosts"][1] == {
        "host": "b",
        "ok": False,
        "exit_code": 255,
        "error": "cannot connect: refused",
        "seconds": 1.235,
    }


def test_envelope_and_error_document():
    doc = taskkit.envelope("webserv.status", {"ok": False, "exit_code": 1, "hosts": []})
    assert doc == {"schema": "tiramisu.webserv.status/1", "ok": False, "exit_code": 1, "hosts": []}
    assert taskkit.envelope("host.list", {"hosts": [1]}) == {
        "schema": "tiramisu.host.list/1",
        "ok": True,
        "exit_code": 0,
        "hosts": [1],
    }
    err = taskkit.error_document("deploy", "tiramisu: unknown host 'x': ...", 2, takes_hosts=True)
    assert err == {
        "schema": "tiramisu.deploy/1",
        "ok": False,
        "exit_code": 2,
        "error": "unknown host 'x': ...",
        "hosts": [],
    }
    json.dumps(err)


@pytest.mark.parametrize(
    "results, code, line",
    [
        ([result("a")], 0, None),
        ([result("a", ok=False, error="connection timed out", code=255)], 255, "tiramisu: a: connection timed out"),
        ([result("a", ok=False, error="local: disk: full", code=1)], 1, "tiramisu: local: disk: full"),
        (
            [result("a"), result("b", ok=False, error="x", code=3), result("c", ok=False, error="y", code=255)],
            1,
            "tiramisu: 2 of 3 hosts failed: b, c",
        ),
    ],
    ids=["ok", "one-host-keeps-its-code", "local-error-no-host-prefix", "several-hosts-exit-1"],
)
def test_exit_codes_and_the_one_error_line(results, code, line):
    assert hostrun.exit_code(results) == code
    assert hostrun.failure_line(results) == line


def test_finish_prints_the_document_then_exits_with_the_code(capsys):
    results = [result("a", value={"x": 1}), result("b", ok=False, error="boom", code=255)]
    run = taskkit.TaskRun("apps", json=True, takes_hosts=True)
    token = taskkit._current_run.set(run)
    try:
        with pytest.raises(invoke.Exit) as err:
            hostrun.finish(results, json=True)
    finally:
        taskkit._current_run.reset(token)
    assert err.value.code == 1 and err.value.message == "tiramisu: 1 of 2 hosts failed: b"
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "tiramisu.apps/1" and [h["host"] for h in doc["hosts"]] == ["a", "b"] and run.emitted


# ---------------------------------------------------- reporter, streams ---


def test_reporter_under_json_keeps_stdout_for_the_document(capsys):
    rep = hostrun.Reporter("a", json=True)
    rep.out("human line")
    rep.plan("plan for a: nothing", dry=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "human line" in captured.err and "plan for a" in captured.err


def test_a_dry_run_plan_is_output_and_a_real_run_plan_is_progress(capsys):
    rep = hostrun.Reporter("a")
    rep.plan("plan for a: dry", dry=True)
    rep.plan("plan for a: real", dry=False)
    captured = capsys.readouterr()
    assert captured.out == "plan for a: dry\n" and captured.err == "plan for a: real\n"


def test_labelled_stream_prefixes_whole_lines(capsys):
    stream = hostrun.Reporter("pi", prefixed=True).stream()
    stream.write("one\ntw")
    stream.write("o\nthr")
    stream.flush()
    assert capsys.readouterr().out == "[pi] one\n[pi] two\n[pi] thr\n"


# -------------------------------------------------------------- errors ---


def test_a_port_that_is_not_ssh_is_named():
    exc = paramiko.SSHException("Error reading SSH protocol banner")
    assert taskkit.describe_exception(exc, address="127.0.0.1:8080") == (
        "127.0.0.1:8080 is not an SSH server: Error reading SSH protocol banner",
        255,
    )


def test_the_banner_error_keeps_the_socket_reason_apart():
    exc = paramiko.SSHException("Error reading SSH protocol banner[Errno 104] Connection reset by peer")
    assert taskkit.describe_exception(exc, address="h:1")[0] == (
        "h:1 is not an SSH server: Error reading SSH protocol banner ([Errno 104] Connection reset by peer)"
    )


def test_debug_switch():
    assert taskkit.debug_enabled({"TIRAMISU_DEBUG": "1"})
    assert not taskkit.debug_enabled({"TIRAMISU_DEBUG": "0"}) and not taskkit.debug_enabled({})


def test_paramiko_logs_nothing_unless_debugging(monkeypatch, capsys):
    monkeypatch.delenv("TIRAMISU_DEBUG", raising=False)
    taskkit.configure_logging()
    import logging

    logging.getLogger("paramiko.transport").error("Secsh channel 1 open FAILED: Connection refused")
    assert capsys.readouterr().err == ""


def test_a_bug_is_one_line_exit_70(monkeypatch):
    monkeypatch.delenv("TIRAMISU_DEBUG", raising=False)
    with pytest.raises(invoke.Exit) as err:
        taskkit.fail(ZeroDivisionError("division by zero"))
    assert err.value.code == 70
    assert err.value.message == (
        "tiramisu: internal error: ZeroDivisionError: division by zero (TIRAMISU_DEBUG=1 shows the traceback)"
    )


# ----------------------------------------------------------- follow tail ---


def test_following_tail_dies_when_the_session_closes(tmp_path):
    """The generated command, run by a real sh: closing its stdin (what sshd does
    when our connection ends) kills the tail, so no tail outlives a Ctrl-C."""
    log = tmp_path / "a log"
    log.write_text("first\n")
    proc = subprocess.Popen(
        ["sh", "-c", commands.tail([str(log)], 5, follow=True)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline() == b"first\n"
        with open(log, "a") as f:
            f.write("second\n")
        assert proc.stdout.readline() == b"second\n"
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        time.sleep(0.2)
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert left == [], left
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_tail_without_follow_is_plain():
    assert commands.tail(["/a b"], 3) == "tail -n 3 '/a b'"


# ------------------------------------------------- the runner, no box ---


def closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def refusing(tmp_path, monkeypatch):
    """Two inventory hosts on loopback ports nobody listens on (connection refused)."""
    import fabric

    from tiramisu_tasks.config import DEFAULTS

    monkeypatch.setenv("TIRAMISU_INVENTORY", str(tmp_path / "tiramisu.yaml"))
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path))
    inv = Inventory.load()
    for name in ("r1", "r2"):
        inv.hosts[name] = HostEntry(name, "127.0.0.1", port=closed_port(), user="pi", groups=["refusing"])
    inv.save()
    return invoke.Context(config=fabric.Config(overrides={"tiramisu": dict(DEFAULTS)}))


def test_one_failed_host_is_its_own_line_and_code(refusing):
    with pytest.raises(invoke.Exit) as err:
        hostrun.run_on_hosts(refusing, "r1", lambda conn, spec, rep: conn.run("true"))
    assert err.value.code == 255
    assert err.value.message.startswith("tiramisu: r1: cannot connect: ")


def test_failed_hosts_are_in_the_document_with_their_error(refusing, capsys):
    results = hostrun.run_on_hosts(refusing, "refusing", lambda conn, spec, rep: conn.run("true"), quiet=True)
    with pytest.raises(invoke.Exit) as err:
        hostrun.finish(results, json=True)
    assert err.value.code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert [(h["host"], h["ok"], h["exit_code"]) for h in doc["hosts"]] == [("r1", False, 255), ("r2", False, 255)]
    assert all(h["error"].startswith("cannot connect: ") for h in doc["hosts"])
