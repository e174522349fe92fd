"""Rendering and task errors: nginx.conf and server.conf rendered from templates
(every path in the env dir, every key the server reads, a missing value an
error, a broken nginx.conf caught before upload); exceptions turned into one
line and an exit code (bugs are not swallowed); and the proxy contract:
headers sent to the server, X-Accel headers from a guest ignored,
server_name, proxy buffers sized for the response header limit, workers
running as the box user on a root box."""

import socket

import jinja2
import paramiko
import pytest
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.errors import UnsupportedTarget, UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render, render_nginx_conf, render_server_conf, validate_nginx_conf
from tiramisu_tasks.taskkit import describe_exception

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")


def values(**over):
    settings = dict(DEFAULTS, **over)
    return config_values(LAYOUT, "pi", settings)


def test_nginx_conf_renders_valid_with_everything_in_env_dir():
    text = render_nginx_conf(values(http_port=8088, server_port=9009, upstream="tcp"))
    assert "listen 0.0.0.0:8088" in text and "server 127.0.0.1:9009;" in text
    assert "location ^~ /_tiramisu/" in text and "return 404" in text
    assert 'proxy_set_header Connection "";' in text and "proxy_http_version 1.1;" in text
    for line in text.splitlines():
        if "/" in line and ("_path" in line or line.strip().startswith(("pid", "error_log", "access_log"))):
            assert "/home/pi/tiramisu-env/" in line, line


def test_server_conf_has_every_contract_key():
    text = render_server_conf(values())
    keys = {ln.split("=")[0].strip() for ln in text.splitlines() if "=" in ln and not ln.startswith("#")}
    assert {"listen", "modules", "routes", "cache", "log-dir", "pid-file", "workers", "timeout-ms", "memory-mb"} <= keys


def test_missing_template_value_is_an_error_not_empty():
    with pytest.raises(jinja2.UndefinedError):
        render("server.conf.j2", layout=LAYOUT)


def test_broken_nginx_conf_is_caught_before_upload():
    with pytest.raises(UsageError, match="invalid"):
        validate_nginx_conf("events {}\nhttp { server { listen 80 } }\n")


def _unexpected(code, stderr):
    return UnexpectedExit(Result(command="false --flag", exited=code, stderr=stderr, stdout=""))


@pytest.mark.parametrize(
    "exc, message, code",
    [
        (UnsupportedTarget("unsupported architecture 'armv7l'"), "unsupported architecture", 3),
        (_unexpected(7, "boom\nlast line"), "remote command failed (exit 7): false --flag: last line", 7),
        (paramiko.AuthenticationException("Authentication failed."), "authentication failed", 255),
        (socket.gaierror(-2, "Name or service not known"), "cannot resolve host name", 255),
        (socket.timeout(), "timed out", 255),
        (paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 1): OSError("refused")}), "cannot connect", 255),
    ],
    ids=["unsupported", "remote-exit", "auth", "dns", "timeout", "refused"],
)
def test_errors_become_one_line(exc, message, code):
    text, got = describe_exception(exc, host="pi")
    assert text.startswith("pi: ") and message in text and "\n" not in text
    assert got == code


def test_bugs_are_not_swallowed():
    assert describe_exception(KeyError("x")) is None


# ---------------------------------------------------- proxy contract ---


def _directives(text):
    """Every `name args;` line of a rendered config as (name, args) pairs."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.endswith(";"):
            name, _, args = line[:-1].partition(" ")
            out.append((name, args.strip()))
    return out


def _headers_set(block):
    return [" ".join(d["args"]) for d in block if d["directive"] == "proxy_set_header"]


def test_proxied_locations_send_the_contract_headers():
    text = render_nginx_conf(values())
    http = next(d for d in validate_nginx_conf(text)["config"][0]["parsed"] if d["directive"] == "http")
    # Host is exactly the client's (port included); the server name only when it sent none
    # (the other maps are the public face's default security headers, tests/unit/test_tls_render.py)
    maps = [d for d in http["block"] if d["directive"] == "map" and d["args"][1] == "$tiramisu_host"]
    assert [m["args"] for m in maps] == [["$http_host", "$tiramisu_host"]]
    assert [[d["directive"], *d["args"]] for d in maps[0]["block"]] == [["", "$host"], ["default", "$http_host"]]
    assert text.count("$http_host") == 2  # the map only
    server = next(d for d in http["block"] if d["directive"] == "server")
    assert _headers_set(server["block"]) == [
        "Connection ",
        "Host $tiramisu_host",
        "X-Real-IP $remote_addr",
        "X-Forwarded-For $proxy_add_x_forwarded_for",
        "X-Forwarded-Port $server_port",
        "X-Forwarded-Proto $scheme",
    ]
    locations = {" ".join(d["args"]): d["block"] for d in server["block"] if d["directive"] == "location"}
    # the app location inherits all of them (any proxy_set_header of its own would drop them) ...
    assert _headers_set(locations["/"]) == []
    # ... the health check deliberately sends none of the proxied-request markers: the
    # server answers its admin API only to requests that don't look proxied
    assert _headers_set(locations["= /.well-known/tiramisu/health"]) == ["Connection ", "Host $tiramisu_host"]


def test_a_guest_cannot_steer_nginx_with_x_accel_headers():
    d = _directives(render_nginx_conf(values()))
    ignored = [args for name, args in d if name == "proxy_ignore_headers"]
    assert ignored == ["X-Accel-Redirect X-Accel-Expires X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset"]
    hidden = {args for name, args in d if name == "proxy_hide_header"}
    assert hidden == set(ignored[0].split())


@pytest.mark.parametrize(
    "setting, address, expected",
    [
        (None, "192.168.1.20", "192.168.1.20"),
        (None, "Pi.Local", "pi.local"),
        ("www.example.org", "10.0.0.2", "www.example.org"),
        (None, "::1", "[::1]"),
        (None, "[fe80::1]", "[fe80::1]"),
        ("", "box.lan", "box.lan"),
    ],
)
def test_server_name_defaults_to_the_box_address(setting, address, expected):
    v = config_values(LAYOUT, "pi", dict(DEFAULTS, server_name=setting), address=address)
    assert v["server_name"] == expected
    assert f"server_name {expected};" in render_nginx_conf(v)
    assert f"server-name = {expected}\n" in render_server_conf(v)


@pytest.mark.parametrize("bad", ["_", "a b", "x;y", "$host", "~^re", "a{b"])
def test_server_name_is_never_empty_or_a_catch_all(bad):
    with pytest.raises(UsageError, match="server_name"):
        config_values(LAYOUT, "pi", dict(DEFAULTS, server_name=bad), address="10.0.0.2")


@pytest.mark.parametrize(
    "limit, buffer_size, count",
    [
        (1024, 8192, 8),
        (16384, 20480, 8),
        (16385, 24576, 8),
        (65536, 69632, 19),
        (1048576, 1052672, 259),
    ],
)
def test_proxy_buffer_holds_the_response_header_limit(limit, buffer_size, count):
    v = values(max_response_header=limit)
    assert (v["proxy_buffer_size"], v["proxy_buffers_count"], v["proxy_buffers_size"]) == (buffer_size, count, 4096)
    assert v["proxy_buffer_size"] >= limit + 4096
    # what `nginx -t` demands of the three sizes
    busy = v["proxy_busy_buffers_size"]
    assert busy >= max(v["proxy_buffer_size"], v["proxy_buffers_size"])
    assert busy < (count - 1) * v["proxy_buffers_size"]
    text = render_nginx_conf(v)
    assert f"proxy_buffer_size {buffer_size};" in text and f"proxy_buffers {count} 4096;" in text
    assert f"max-response-header = {limit}\n" in render_server_conf(v)


def test_default_response_header_limit_is_16k():
    assert DEFAULTS["max_response_header"] == 16384
    assert "max-response-header = 16384\n" in render_server_conf(values())


@pytest.mark.parametrize("bad", ["abc", 100, 2 * 1024 * 1024, True])
def test_bad_response_header_limit_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="max_response_header"):
        values(max_response_header=bad)


@pytest.mark.parametrize(
    "ids, directive",
    [
        ({"uid": "0", "user": "root", "group": "root"}, "root root"),
        ({"uid": "0", "user": "toor", "group": "wheel"}, "toor wheel"),
        ({"uid": "0", "user": "root"}, "root root"),
        ({"uid": "1000", "user": "pi", "group": "pi"}, None),
        ({}, None),
    ],
)
def test_root_box_keeps_nginx_workers_as_the_box_user(ids, directive):
    v = config_values(LAYOUT, "pi", dict(DEFAULTS), address="10.0.0.2", box_ids=ids)
    assert v["nginx_user"] == directive
    users = [args for name, args in _directives(render_nginx_conf(v)) if name == "user"]
    assert users == ([directive] if directive else [])
