"""The inventory through the real front ends (no box needed): checked on write,
edited without losing facts, robust to a bad entry written by hand; and one
environment prefix (TIRAMISU_<SETTING>) that means the same under tiramisu, inv
and fab, at its documented place in the precedence."""

import json

import pytest
import yaml

from tests.helpers import cli, one_line_error

FRONTS = ["tiramisu", "inv", "fab"]


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    key = tmp_path / "id_test"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n(only its existence is checked here)\n")
    env = {
        "TIRAMISU_HOME": str(home),
        "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml"),
        "TIRAMISU_CACHE": str(tmp_path / "cache"),
        "HOME": str(tmp_path),  # no ~/.ssh/config of the machine's
    }
    return env, home / "tiramisu.yaml", key


def run(env, *args, front="tiramisu", extra=None):
    return cli(front, *args, env={**env, **(extra or {})}, timeout=120)


def load(path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["host.add", "pi"], "host.add pi: --hostname is required ('pi' is not an IP address"),
        (["host.add", "pi", "--hostname", "h", "--key", "/nonexistent/k"], "--key: /nonexistent/k does not exist"),
        (["host.add", "pi", "--hostname", "a b"], "--hostname: expected an address"),
        (["host.add", "pi", "--hostname", "h", "--set", "http_port=x"], "--set http_port: expected an integer"),
        (["host.add", "pi", "--hostname", "h", "--set", "colour=red"], "unknown setting 'colour'"),
        (["host.add", "pi", "--hostname", "h", "--group", "a b"], "invalid group name 'a b'"),
        (["host.add", "a@b", "--hostname", "h"], "invalid host name"),
    ],
    ids=["no-hostname", "missing-key", "bad-hostname", "bad-setting", "unknown-setting", "bad-group", "bad-name"],
)
def test_add_refuses_what_it_would_not_load(home, args, message):
    env, path, _ = home
    proc = run(env, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in one_line_error(proc)
    assert not path.exists() or "pi" not in (load(path).get("hosts") or {})


def test_add_without_hostname_when_the_name_is_one(home):
    env, path, key = home
    proc = run(env, "host.add", "10.0.0.7", "--key", key, "--group", "lab,edge")
    assert proc.returncode == 0, proc.stderr
    assert load(path)["hosts"]["10.0.0.7"] == {"hostname": "10.0.0.7", "key": str(key), "groups": ["lab", "edge"]}
    assert run(env, "host.add", "box.example.org").returncode == 0
    assert load(path)["hosts"]["box.example.org"]["hostname"] == "box.example.org"


def test_set_unset_group_keep_the_facts(home):
    env, path, key = home
    assert run(env, "host.add", "pi", "--hostname", "10.0.0.5", "--set", "workers=3").returncode == 0
    data = load(path)
    data["hosts"]["pi"]["facts"] = {"arch": "aarch64", "target": "aarch64-linux-gnu"}
    path.write_text(yaml.safe_dump(data))

    proc = run(
        env, "host.set", "pi", "--set", "http_port=8081,memory_limit_mb=64", "--set", f"user=pi,port=2222,key={key}"
    )
    assert proc.returncode == 0, proc.stderr
    entry = load(path)["hosts"]["pi"]
    assert entry["settings"] == {"workers": 3, "http_port": 8081, "memory_limit_mb": 64}
    assert (entry["user"], entry["port"], entry["key"]) == ("pi", 2222, str(key))
    assert entry["facts"] == {"arch": "aarch64", "target": "aarch64-linux-gnu"}

    assert run(env, "host.set", "pi", "--group", "lab,web").returncode == 0
    assert run(env, "host.set", "pi", "--set", "workers=4", "--group", "db").returncode == 0
    assert run(env, "host.unset", "pi", "--unset", "http_port,port").returncode == 0
    entry = load(path)["hosts"]["pi"]
    assert entry["groups"] == ["db"] and entry["settings"] == {"workers": 4, "memory_limit_mb": 64}
    assert "port" not in entry and entry["facts"]["arch"] == "aarch64"
    assert run(env, "host.set", "pi", "--group", "").returncode == 0
    assert "groups" not in load(path)["hosts"]["pi"]
    assert (path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize(
    "args, message",
    [
        (["host.set", "pi", "--set", "colour=red"], "unknown key 'colour' for host.set"),
        (["host.set", "pi", "--set", "http_port=99999"], "http_port: expected an integer 1-65535, got '99999'"),
        (["host.set", "pi", "--set", "workers=2,guest_threads=lots"], "guest_threads: expected auto or an integer"),
        (["host.set", "pi", "--set", "key=/nonexistent"], "key: /nonexistent does not exist"),
        (["host.set", "pi", "--set", "workers"], "--set takes KEY=VALUE"),
        (["host.set", "pi"], "host.set needs --set KEY=VALUE or --group G"),
        (["host.set", "nope", "--set", "workers=2"], "unknown host 'nope'"),
        (["host.unset", "pi", "--unset", "hostname"], "hostname cannot be unset"),
        (["host.unset", "pi", "--unset", "colour"], "unknown key 'colour' for host.unset"),
        (["host.set", "pi", "--group", "a b"], "invalid group name"),
        (["host.set", "pi", "--group", "other"], "'other' is a host name"),
    ],
)
def test_bad_edits_change_nothing(home, args, message):
    env, path, _ = home
    assert run(env, "host.add", "pi", "--hostname", "10.0.0.5", "--set", "workers=3").returncode == 0
    assert run(env, "host.add", "other", "--hostname", "10.0.0.6").returncode == 0
    before = path.read_bytes()
    proc = run(env, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in one_line_error(proc)
    assert path.read_bytes() == before


def test_a_broken_entry_is_listed_repaired_replaced_and_removed(home):
    """The bug: `host.add NAME` without --hostname was accepted, and then every command failed."""
    env, path, _ = home
    path.write_text(
        "hosts:\n"
        "  good: {hostname: 127.0.0.1, port: 1, groups: [lab]}\n"
        "  broken: {user: pi, facts: {arch: aarch64}}\n"
        "  worse: [1, 2]\n"
    )
    proc = run(env, "host.list")
    assert proc.returncode == 0, proc.stderr
    assert "broken" in proc.stdout and "INVALID" in proc.stdout and "needs a 'hostname'" in proc.stdout
    doc = json.loads(run(env, "host.list", "--json").stdout)
    by_name = {h["name"]: h for h in doc["hosts"]}
    assert by_name["good"]["valid"] is True and by_name["broken"]["valid"] is False
    assert "needs a 'hostname'" in by_name["broken"]["problem"]
    shown = json.loads(run(env, "host.show", "broken", "--json").stdout)
    assert shown["valid"] is False and shown["entry"] == {"user": "pi", "facts": {"arch": "aarch64"}}

    # commands about other hosts still run (good: nothing listens on port 1 -> 255 after trying)
    assert run(env, "host.show", "good").returncode == 0
    assert run(env, "host.check", "good").returncode == 255
    proc = run(env, "host.check", "broken")
    assert proc.returncode == 2 and "'broken' needs a 'hostname'" in one_line_error(proc)
    proc = run(env, "-H", "broken", "webserv.status")  # fab-style -H: the same, not dialled as a hostname
    assert proc.returncode == 2 and "'broken' needs a 'hostname'" in one_line_error(proc)

    # repaired by host.set (facts kept), replaced by add --force, removed
    proc = run(env, "host.set", "broken", "--set", "hostname=10.0.0.9")
    assert proc.returncode == 0, proc.stderr
    assert load(path)["hosts"]["broken"] == {"hostname": "10.0.0.9", "user": "pi", "facts": {"arch": "aarch64"}}
    proc = run(env, "host.add", "worse", "--hostname", "10.0.0.8")
    assert proc.returncode == 2 and "already exists" in one_line_error(proc)
    assert run(env, "host.add", "worse", "--hostname", "10.0.0.8", "--force").returncode == 0
    assert load(path)["hosts"]["worse"] == {"hostname": "10.0.0.8"}
    data = load(path)
    data["hosts"]["broken"] = {"user": "pi"}
    path.write_text(yaml.safe_dump(data))
    assert run(env, "host.remove", "broken").returncode == 0
    assert sorted(load(path)["hosts"]) == ["good", "worse"]


@pytest.mark.parametrize("front", FRONTS)
def test_one_environment_prefix_under_every_front_end(home, front):
    """The bug: INVOKE_TIRAMISU_* worked under inv only, FABRIC_TIRAMISU_* under tiramisu and fab."""
    env, path, _ = home
    path.write_text("defaults: {workers: 3}\nhosts:\n  pi: {hostname: 10.0.0.5, settings: {memory_limit_mb: 64}}\n")

    def effective(extra):
        proc = run(env, "host.show", "pi", "--json", front=front, extra=extra)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        return doc["effective"], doc["sources"]

    got, sources = effective({"TIRAMISU_HTTP_PORT": "8081"})
    assert (got["http_port"], sources["http_port"]) == (8081, "env")
    assert (got["server_port"], sources["server_port"]) == (9000, "built-in")
    for old in ("INVOKE_TIRAMISU_HTTP_PORT", "FABRIC_TIRAMISU_HTTP_PORT"):  # older spellings, every front end
        assert effective({old: "8082"})[0]["http_port"] == 8082
    assert effective({"TIRAMISU_HTTP_PORT": "8081", "INVOKE_TIRAMISU_HTTP_PORT": "8082"})[0]["http_port"] == 8081
    # below the inventory: defaults: and the host's settings win over the environment
    got, sources = effective({"TIRAMISU_WORKERS": "5", "TIRAMISU_MEMORY_LIMIT_MB": "96"})
    assert (got["workers"], sources["workers"]) == (3, "defaults")
    assert (got["memory_limit_mb"], sources["memory_limit_mb"]) == (64, "host")
    proc = run(env, "host.show", "pi", "--json", front=front, extra={"TIRAMISU_HTTP_PORT": "x"})
    assert proc.returncode == 2
    assert "TIRAMISU_HTTP_PORT: expected an integer 1-65535, got 'x'" in one_line_error(proc)
