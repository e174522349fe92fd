"""Inventory and settings: where the inventory file is found ($TIRAMISU_INVENTORY,
then the project's tiramisu.yaml, then the user's), a save/load round trip
that keeps every field (mode 0600, no passwords), one clear error per bad
inventory, unknown and invalid host names, the precedence of a setting (flag,
host, inventory defaults, Invoke config, built-in default), host lists and
groups."""

import pytest

from tiramisu_tasks import inventory as inv
from tiramisu_tasks.config import DEFAULTS, env_settings, env_variable, resolve_setting, resolve_setting_source
from tiramisu_tasks.connect import expand_names, split_host_list
from tiramisu_tasks.errors import InventoryError, UsageError


def test_lookup_order_env_beats_project_beats_user(tmp_path, monkeypatch):
    project = tmp_path / "proj" / "sub"
    project.mkdir(parents=True)
    (tmp_path / "proj" / "tiramisu.yaml").write_text("hosts: {}\n")
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path / "home"))
    env = {}
    assert inv.find_inventory_path(cwd=project, environ=env) == tmp_path / "proj" / "tiramisu.yaml"
    env = {"TIRAMISU_INVENTORY": str(tmp_path / "explicit.yaml")}
    assert inv.find_inventory_path(cwd=project, environ=env) == tmp_path / "explicit.yaml"
    assert inv.find_inventory_path(cwd=tmp_path, environ={}) == tmp_path / "home" / "tiramisu.yaml"


def test_round_trip_keeps_everything(tmp_path):
    path = tmp_path / "t.yaml"
    key = tmp_path / "k"
    key.write_text("not a real key; only its existence is checked\n")
    with inv.locked_inventory(path) as i:
        i.hosts["pi"] = inv.HostEntry(
            "pi",
            "10.0.0.5",
            user="pi",
            port=2222,
            key=str(key),
            groups=["lab"],
            settings={"http_port": 8081},
            facts={"arch": "aarch64"},
        )
        i.defaults["workers"] = 3
    again = inv.Inventory.load(path)
    e = again.require("pi")
    assert (e.hostname, e.user, e.port, e.key, e.groups, e.settings, e.facts) == (
        "10.0.0.5",
        "pi",
        2222,
        str(key),
        ["lab"],
        {"http_port": 8081},
        {"arch": "aarch64"},
    )
    assert again.defaults == {"workers": 3}
    assert again.groups() == {"lab": ["pi"]}
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "password" not in path.read_text()


@pytest.mark.parametrize(
    "text, message",
    [
        ("hosts: [1, 2", "cannot parse"),
        ("- a\n- b\n", "must be a mapping"),
        ("hosts: [a, b]\n", "'hosts:' must be a mapping"),
        ("hostz: {}\n", "unknown top-level key"),
    ],
    ids=["bad-yaml", "not-mapping", "hosts-not-mapping", "unknown-top-level"],
)
def test_bad_inventory_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message):
        inv.Inventory.load(path)


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{user: u}", "'x' needs a 'hostname'"),
        ("{hostname: null}", "'x' needs a 'hostname'"),
        ("{hostname: 'a b'}", "hostname: expected an address"),
        ("{hostname: h, settings: {colour: red}}", r"unknown setting\(s\) colour"),
        ("{hostname: h, settings: {http_port: x}}", "'x' http_port: expected an integer 1-65535"),
        ("{hostname: h, port: 99999}", "'x' port: expected an integer 1-65535"),
        ("{hostname: h, port: abc}", "'x' port: expected an integer 1-65535"),
        ("{hostname: h, key: /nonexistent/key}", "key: /nonexistent/key does not exist"),
        ("{hostname: h, groups: 7}", "groups: expected a list"),
        ("{hostname: h, groups: ['a b']}", "invalid group name"),
        ("{hostname: h, colour: red}", r"unknown field\(s\) colour"),
        ("{hostname: h, facts: [1]}", "facts: expected a mapping"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_a_bad_entry_is_kept_aside_and_the_others_still_work(tmp_path, entry, message):
    """The bug: one entry without a hostname made every command fail, host.list and host.remove included."""
    path = tmp_path / "t.yaml"
    path.write_text(f"# mine\nhosts:\n  good: {{hostname: 10.0.0.1, groups: [lab]}}\n  x: {entry}\n")
    loaded = inv.Inventory.load(path)
    assert loaded.require("good").hostname == "10.0.0.1"
    assert loaded.groups() == {"lab": ["good"]}
    assert loaded.names() == ["good", "x"]
    assert list(loaded.invalid) == ["x"] and "x" not in loaded.hosts
    assert __import__("re").search(message, loaded.invalid["x"].problem), loaded.invalid["x"].problem
    for lookup in (loaded.get, loaded.require):
        with pytest.raises(InventoryError, match=message):
            lookup("x")
    # a save (facts of another host, say) writes the bad entry back untouched
    raw = loaded.invalid["x"].raw
    with inv.locked_inventory(path) as i:
        i.hosts["good"].facts = {"arch": "x86_64"}
    again = inv.Inventory.load(path)
    assert again.invalid["x"].raw == raw and again.require("good").facts == {"arch": "x86_64"}
    with inv.locked_inventory(path) as i:
        assert i.discard("x")
    assert inv.Inventory.load(path).names() == ["good"]


def test_bad_defaults_stop_only_what_uses_them(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("defaults: {workers: lots}\nhosts: {a: {hostname: h}}\n")
    loaded = inv.Inventory.load(path)
    assert loaded.require("a").hostname == "h" and "workers: expected an integer" in loaded.defaults_problem
    with pytest.raises(InventoryError, match="defaults: workers"):
        loaded.checked_defaults()
    with inv.locked_inventory(path) as i:
        i.hosts["a"].facts = {"arch": "x86_64"}
    assert "workers: lots" in path.read_text()


@pytest.mark.parametrize(
    "name, usable",
    [
        ("10.0.0.5", True),
        ("::1", True),
        ("box.example.org", True),
        ("localhost", True),
        ("myalias", True),  # a Host line of the ssh_config below
        ("pi", False),
        ("star", False),  # only in a pattern
        ("box.", False),
    ],
)
def test_name_is_hostname(tmp_path, name, usable):
    config = tmp_path / "ssh_config"
    config.write_text("Host myalias other\n  HostName 10.1.1.1\nHost st*r\n  User x\n")
    assert inv.name_is_hostname(name, ssh_config=config) is usable


def test_unknown_name_lists_known(tmp_path):
    i = inv.Inventory(tmp_path / "t.yaml", {"a": inv.HostEntry("a", "h")})
    with pytest.raises(InventoryError, match=r"unknown host 'b'.*known: a"):
        i.require("b")


@pytest.mark.parametrize("name", ["", "-x", "a b", "a,b", "u@h", "h:22", "x" * 64], ids=repr)
def test_invalid_names(name):
    with pytest.raises(InventoryError):
        inv.validate_name(name)


@pytest.mark.parametrize(
    "flag, host, inv_defaults, config, expected",
    [
        (8090, {"http_port": 8081}, {"http_port": 8082}, {"http_port": 8083}, 8090),
        (None, {"http_port": 8081}, {"http_port": 8082}, {"http_port": 8083}, 8081),
        (None, {}, {"http_port": 8082}, {"http_port": 8083}, 8082),
        (None, {}, {}, {"http_port": 8083}, 8083),
        (None, {}, {}, {}, DEFAULTS["http_port"]),
    ],
    ids=["flag", "host-setting", "inventory-defaults", "invoke-config", "built-in"],
)
def test_setting_precedence(flag, host, inv_defaults, config, expected):
    assert resolve_setting("http_port", flag, host, inv_defaults, config) == expected


@pytest.mark.parametrize(
    "layers, expected",
    [
        (dict(flag=1, host=2, defaults=3, env=4, config=5), (1, "flag")),
        (dict(host=2, defaults=3, env=4, config=5), (2, "host")),
        (dict(defaults=3, env=4, config=5), (3, "defaults")),
        (dict(env=4, config=5), (4, "env")),
        (dict(config=5), (5, "config")),
        (dict(), (DEFAULTS["workers"], "built-in")),
    ],
    ids=["flag", "host", "defaults", "env", "config", "built-in"],
)
def test_setting_precedence_with_the_environment(layers, expected):
    got = resolve_setting_source(
        "workers",
        flag=layers.get("flag"),
        host_settings={"workers": layers["host"]} if "host" in layers else {},
        inventory_defaults={"workers": layers["defaults"]} if "defaults" in layers else {},
        env={"workers": layers["env"]} if "env" in layers else {},
        config_section={"workers": layers["config"]} if "config" in layers else {},
    )
    assert got == expected


def test_one_environment_prefix_and_the_old_spellings():
    assert env_variable("http_port") == "TIRAMISU_HTTP_PORT"
    assert env_settings({"TIRAMISU_HTTP_PORT": "8081", "TIRAMISU_INVENTORY": "/x", "PATH": "/bin"}) == {
        "http_port": 8081
    }
    assert env_settings({"INVOKE_TIRAMISU_WORKERS": "3", "FABRIC_TIRAMISU_KEEP_RELEASES": "7"}) == {
        "workers": 3,
        "keep_releases": 7,
    }
    both = {"TIRAMISU_WORKERS": "4", "INVOKE_TIRAMISU_WORKERS": "3", "FABRIC_TIRAMISU_WORKERS": "2"}
    assert env_settings(both) == {"workers": 4}
    assert env_settings({"TIRAMISU_ACCEPT_NEW_HOST_KEYS": "yes", "TIRAMISU_WORKERS": ""}) == {
        "accept_new_host_keys": True
    }
    with pytest.raises(UsageError, match=r"^TIRAMISU_HTTP_PORT: expected an integer 1-65535, got 'x'$"):
        env_settings({"TIRAMISU_HTTP_PORT": "x"})


def test_host_lists_and_groups(tmp_path):
    i = inv.Inventory(
        tmp_path / "t.yaml",
        {
            "a": inv.HostEntry("a", "h1", groups=["web"]),
            "b": inv.HostEntry("b", "h2", groups=["web", "db"]),
        },
    )
    assert split_host_list(" a, b,,c ") == ["a", "b", "c"]
    assert expand_names(["web"], i) == ["a", "b"]
    assert expand_names(["b", "web", "x@y:2"], i) == ["b", "a", "x@y:2"]


@pytest.mark.parametrize(
    "text, pairs",
    [
        ("a=1", [("a", "1")]),
        ("a=1,b=2", [("a", "1"), ("b", "2")]),
        ("env_dir=/x,y,workers=3", [("env_dir", "/x,y"), ("workers", "3")]),
        (" http-port = 8081 ", [("http_port", "8081")]),
    ],
)
def test_host_set_pairs(text, pairs):
    from tiramisu_tasks.tasks.host import split_pairs

    assert split_pairs(text) == pairs


@pytest.mark.parametrize("text", ["", "workers", "x,a=1"])
def test_host_set_pairs_refused(text):
    from tiramisu_tasks.tasks.host import split_pairs

    with pytest.raises(UsageError, match="--set takes KEY=VALUE"):
        split_pairs(text)


def test_group_lists():
    from tiramisu_tasks.tasks.host import split_names

    assert split_names(["a,b", "c", "a", ""]) == ["a", "b", "c"]
    assert split_names([""]) == []
