"""The one settings table (options.SETTINGS): validation, precedence with the
inventory's ``defaults:``, rendering into server.conf/nginx.conf, and the
README reference."""

import re

import invoke
import pytest

from tests.helpers import REPO
from tiramisu_tasks import config, options
from tiramisu_tasks import inventory as inv
from tiramisu_tasks.box import resolve_settings
from tiramisu_tasks.connect import spec_for
from tiramisu_tasks.errors import InventoryError, UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, nginx_limits, render_nginx_conf, render_server_conf, server_conf_lines
from tiramisu_tasks.tasks.host import _parse_settings

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")
SERVER_TUNABLES = {
    "request_timeout_ms": "timeout-ms",
    "memory_limit_mb": "memory-mb",
    "workers": "workers",
    "guest_threads": "guest-threads",
    "app_concurrency": "app-concurrency",
    "app_queue": "app-queue",
    "max_connections": "max-connections",
    "max_conn_output": "max-conn-output",
    "max_body_mb": "max-body",
    "max_response_header": "max-response-header",
}


def test_config_and_options_share_the_table():
    assert config.DEFAULTS == {row.name: row.default for row in options.SETTINGS}
    assert set(config.HOST_SETTINGS) <= set(config.DEFAULTS)
    assert options.SETTING_TYPES == {row.name: row.kind for row in options.SETTINGS}
    for name, key in SERVER_TUNABLES.items():
        assert name in config.HOST_SETTINGS
        assert options.SETTINGS_BY_NAME[name].server == key
    # every server key of the table is a real custom_server setting
    known = set(re.findall(r'^\s*\{"([a-z-]+)", T_', (REPO / "cserver" / "ts_conf.c").read_text(), re.M))
    assert {row.server for row in options.SETTINGS if row.server} <= known


def test_every_default_is_acceptable_to_its_own_type():
    for row in options.SETTINGS:
        if row.default is not None:
            assert row.kind.convert(row.default) == row.default, row.name


@pytest.mark.parametrize(
    "pair, expected",
    [
        ("request_timeout_ms=1500", {"request_timeout_ms": 1500}),
        ("memory-limit-mb=64", {"memory_limit_mb": 64}),
        ("guest_threads=auto", {"guest_threads": "auto"}),
        ("app_concurrency=3", {"app_concurrency": 3}),
        ("app_queue=0", {"app_queue": 0}),
        ("max_connections=AUTO", {"max_connections": "auto"}),
        ("max_conn_output=65536", {"max_conn_output": 65536}),
        ("max_body_mb=20", {"max_body_mb": 20}),
        ("nginx_workers=2", {"nginx_workers": 2}),
    ],
)
def test_host_add_set_takes_server_settings(pair, expected):
    assert _parse_settings([pair]) == expected


@pytest.mark.parametrize(
    "pair, message",
    [
        ("request_timeout_ms=fast", r"--set request_timeout_ms: expected an integer 100-3600000 \(ms\), got 'fast'"),
        ("guest_threads=0", r"expected auto or an integer 1-1024"),
        ("app_queue=-1", r"app_queue"),
        ("max_conn_output=10", r"4096"),
        ("toolchain=clang", r"one of auto, zig, gcc, docker"),
        ("accept_new_host_keys=1", r"unknown setting"),  # global only, not per host
        ("bogus=1", r"unknown setting"),
    ],
)
def test_host_add_set_rejects_bad_values(pair, message):
    with pytest.raises(UsageError, match=message):
        _parse_settings([pair])


def test_inventory_settings_and_defaults_are_checked(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(
        "defaults: {request_timeout_ms: 1500, workers: 3, accept_new_host_keys: true}\n"
        "hosts: {pi: {hostname: h, settings: {memory_limit_mb: 64, guest_threads: auto}}}\n"
    )
    loaded = inv.Inventory.load(path)
    assert loaded.defaults == {"request_timeout_ms": 1500, "workers": 3, "accept_new_host_keys": True}
    assert loaded.require("pi").settings == {"memory_limit_mb": 64, "guest_threads": "auto"}
    for text, message, where in [
        ("defaults: {workers: lots}\n", r"defaults: workers: expected an integer 1-256", "defaults"),
        ("defaults: {nope: 1}\n", r"unknown setting\(s\) nope", "defaults"),
        ("hosts: {pi: {hostname: h, settings: {app_queue: x}}}\n", r"'pi' app_queue: expected an integer", "pi"),
        ("hosts: {pi: {hostname: h, settings: {accept_new_host_keys: true}}}\n", r"unknown setting", "pi"),
        ("defaults: {docker_base_image: x}\n", r"unknown setting", "defaults"),  # a config-file setting
    ]:
        path.write_text(text)
        loaded = inv.Inventory.load(path)  # a bad part is kept aside, reported where it is used
        with pytest.raises(InventoryError, match=message):
            loaded.checked_defaults() if where == "defaults" else loaded.require(where)


def _ctx(section=None):
    return invoke.Context(invoke.Config(overrides={"tiramisu": section or {}}))


def test_inventory_defaults_reach_a_task_run(tmp_path, monkeypatch):
    """The bug: setup resolved settings without the inventory, so ``defaults:`` was ignored."""
    path = tmp_path / "tiramisu.yaml"
    path.write_text(
        "defaults: {request_timeout_ms: 1500, workers: 3, http_port: 8085}\n"
        "hosts:\n  pi: {hostname: 10.0.0.5, settings: {workers: 4}}\n"
    )
    monkeypatch.setenv("TIRAMISU_INVENTORY", str(path))
    spec = spec_for("pi", inv.Inventory.load(path))
    c = _ctx({"request_timeout_ms": 2000, "memory_limit_mb": 96, "http_port": 8070})
    got = resolve_settings(c, spec, {"http_port": 8090})
    assert got["http_port"] == 8090  # flag > everything
    assert got["workers"] == 4  # host settings > inventory defaults
    assert got["request_timeout_ms"] == 1500  # inventory defaults > config files
    assert got["memory_limit_mb"] == 96  # config files > built-in
    assert got["app_queue"] == 64  # built-in
    assert set(got) == set(config.DEFAULTS)
    # and the single-setting lookup every other task uses reads defaults: too
    assert config.setting(c, "request_timeout_ms") == 1500
    assert config.setting(c, "request_timeout_ms", inventory=None) == 2000
    # rendered: server.conf carries it
    conf = render_server_conf(config_values(LAYOUT, "pi", got, address="10.0.0.5"))
    assert "timeout-ms = 1500\n" in conf and "workers = 4\n" in conf


def _values(box_ids=None, **over):
    return config_values(LAYOUT, "pi", dict(config.DEFAULTS, **over), address="10.0.0.5", box_ids=box_ids)


def _conf_pairs(text):
    return dict(line.split(" = ", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_server_conf_has_every_server_setting():
    conf = _conf_pairs(
        render_server_conf(
            _values(
                request_timeout_ms=1500,
                memory_limit_mb=64,
                workers=3,
                guest_threads=8,
                app_concurrency=2,
                app_queue=5,
                max_connections=500,
                max_conn_output=65536,
                max_body_mb=20,
                max_response_header=32768,
            )
        )
    )
    assert {k: conf[k] for k in SERVER_TUNABLES.values()} == {
        "timeout-ms": "1500",
        "memory-mb": "64",
        "workers": "3",
        "guest-threads": "8",
        "app-concurrency": "2",
        "app-queue": "5",
        "max-connections": "500",
        "max-conn-output": "65536",
        "max-body": str(20 * 1024 * 1024),
        "max-response-header": "32768",
    }
    defaults = _conf_pairs(render_server_conf(_values()))
    assert (defaults["guest-threads"], defaults["app-concurrency"], defaults["max-connections"]) == (
        "auto",
        "auto",
        "auto",
    )
    assert defaults["listen"] == "127.0.0.1:9000" and defaults["server-name"] == "10.0.0.5"
    assert len(defaults) == len(set(defaults))  # no key twice


def test_server_conf_lines_follow_the_table_order():
    keys = [k for k, _ in server_conf_lines(dict(config.DEFAULTS, server_name="x"))]
    assert keys == [
        row.server for row in options.SETTINGS if row.server and row.server not in ("listen", "server-name")
    ]


def test_text_values_from_config_files_are_converted_and_checked():
    v = _values(request_timeout_ms="2500", guest_threads="6", nginx_workers="auto")
    assert v["request_timeout_ms"] == 2500 and ("guest-threads", 6) in v["server_settings"]
    assert v["proxy_read_timeout_s"] == 8
    with pytest.raises(UsageError, match="setting app_concurrency: expected auto or an integer 1-1024"):
        _values(app_concurrency="many")


def test_nginx_body_limit_and_read_timeout_follow_the_settings():
    text = render_nginx_conf(_values(max_body_mb=20, request_timeout_ms=30000))
    assert "client_max_body_size 20m;" in text and "proxy_read_timeout 35s;" in text


@pytest.mark.parametrize("setting, directive", [("auto", "auto"), (1, "1"), (3, "3")])
def test_nginx_workers_setting(setting, directive):
    text = render_nginx_conf(_values(nginx_workers=setting))
    assert f"\nworker_processes {directive};\n" in text


@pytest.mark.parametrize(
    "hard, connections, rlimit",
    [
        ("1048576", 4096, 4160),
        ("unlimited", 4096, 4160),
        ("4096", 4032, 4096),  # the kernel's usual default hard limit
        ("2048", 1984, 2048),
        (None, 1024, None),  # an older probe: nothing known, nothing risked
        ("", 1024, None),
        ("200", 1024, None),  # too small to be worth it
        ("319", 1024, None),
        ("320", 256, 320),
    ],
)
def test_nginx_open_files_stay_within_the_hard_limit(hard, connections, rlimit):
    assert nginx_limits(hard) == {"nginx_connections": connections, "nginx_rlimit_nofile": rlimit}
    text = render_nginx_conf(_values(box_ids={"nofile_hard": hard}))
    assert f"worker_connections {connections};" in text
    if rlimit is None:
        assert "worker_rlimit_nofile" not in text
    else:
        assert f"\nworker_rlimit_nofile {rlimit};\n" in text
        assert connections <= rlimit  # else nginx warns at every start


def test_readme_reference_lists_every_setting_once():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Settings reference", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, re.M)
    assert rows == [row.name for row in options.SETTINGS]
    for row in options.SETTINGS:
        line = next(text for text in section.splitlines() if text.startswith(f"| `{row.name}` |"))
        if row.server:
            assert f"`{row.server}`" in line, row.name


def test_the_environment_reaches_a_task_run_between_defaults_and_config_files(tmp_path, monkeypatch):
    path = tmp_path / "tiramisu.yaml"
    path.write_text("defaults: {workers: 3}\nhosts:\n  pi: {hostname: 10.0.0.5, settings: {memory_limit_mb: 64}}\n")
    monkeypatch.setenv("TIRAMISU_INVENTORY", str(path))
    monkeypatch.setenv("TIRAMISU_HTTP_PORT", "8081")  # beats the config file
    monkeypatch.setenv("TIRAMISU_WORKERS", "5")  # loses to defaults:
    monkeypatch.setenv("FABRIC_TIRAMISU_MEMORY_LIMIT_MB", "96")  # loses to the host's settings
    monkeypatch.setenv("INVOKE_TIRAMISU_APP_QUEUE", "32")  # an older spelling, read whatever the front end
    spec = spec_for("pi", inv.Inventory.load(path))
    got = resolve_settings(_ctx({"http_port": 8070, "app_queue": 16}), spec, {})
    assert (got["http_port"], got["workers"], got["memory_limit_mb"], got["app_queue"]) == (8081, 3, 64, 32)
    assert resolve_settings(_ctx(), spec, {"http_port": 8090})["http_port"] == 8090
    monkeypatch.setenv("TIRAMISU_HTTP_PORT", "eighty")
    with pytest.raises(UsageError, match="TIRAMISU_HTTP_PORT: expected an integer 1-65535, got 'eighty'"):
        config.setting(_ctx(), "http_port")


@pytest.mark.parametrize(
    "key,value",
    [
        ("tls_cert", "/nonexistent.pem"),
        ("tls_key", "/etc"),
        ("acme_ca_bundle", "/nonexistent"),
        ("domains", "bad_domain!,x"),
        ("domains", "a b"),
        ("acme_directory", "notaurl"),
        ("acme_email", "nope"),
        ("health_status", "abc"),
        ("health_path", "nopath"),
    ],
)
def test_text_settings_are_checked_on_write(key, value):
    """A value the flag would refuse at use is refused in the inventory too (one line naming the key)."""
    with pytest.raises(UsageError, match=f"--set {key}: expected"):
        options.parse_setting(key, value)


def test_good_text_settings_pass(tmp_path):
    pem = tmp_path / "c.pem"
    pem.write_text("x")
    for key, value in [
        ("tls_cert", str(pem)),
        ("domains", "a.example.com,*.b.example"),
        ("acme_directory", "https://127.0.0.1:14000/dir"),
        ("acme_email", "ops@example.com"),
        ("health_status", "2xx,301"),
        ("health_path", "/app/ping"),
    ]:
        assert options.parse_setting(key, value) == value
