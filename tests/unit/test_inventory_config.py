"""Inventory and settings: where the inventory file is found ($TIRAMISU_INVENTORY,
then the project's tiramisu.yaml, then the user's), a save/load round trip
that keeps every field (mode 0600, no passwords), one clear error per bad
inventory, unknown and invalid host names, the precedence of a setting (flag,
host, inventory defaults, Invoke config, built-in default), host lists and
groups."""

import pytest

from tiramisu_tasks import inventory as inv
from tiramisu_tasks.config import DEFAULTS, resolve_setting
from tiramisu_tasks.connect import expand_names, split_host_list
from tiramisu_tasks.errors import InventoryError


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
    with inv.locked_inventory(path) as i:
        i.hosts["pi"] = inv.HostEntry(
            "pi",
            "10.0.0.5",
            user="pi",
            port=2222,
            key="~/.ssh/k",
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
        "~/.ssh/k",
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
        ("hosts: {x: {user: u}}", "needs a 'hostname'"),
        ("hosts: {x: {hostname: h, settings: {colour: red}}}", "unknown setting"),
    ],
    ids=["bad-yaml", "not-mapping", "no-hostname", "unknown-setting"],
)
def test_bad_inventory_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message):
        inv.Inventory.load(path)


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
