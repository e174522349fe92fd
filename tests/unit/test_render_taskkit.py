import socket

import jinja2
import paramiko
import pytest
from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from tiramisu_tasks.errors import UnsupportedTarget, UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render, render_nginx_conf, render_server_conf, validate_nginx_conf
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.taskkit import describe_exception

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")


def values(**over):
    settings = dict(DEFAULTS, **over)
    return config_values(LAYOUT, "pi", settings)


def test_nginx_conf_renders_valid_with_everything_in_env_dir():
    text = render_nginx_conf(values(http_port=8088, server_port=9009))
    assert "listen 0.0.0.0:8088" in text and "server 127.0.0.1:9009;" in text
    assert "location ^~ /_tiramisu/" in text and "return 404" in text
    assert 'proxy_set_header Connection "";' in text and "proxy_http_version 1.1;" in text
    for line in text.splitlines():
        if "/" in line and ("_path" in line or line.strip().startswith(("pid", "error_log", "access_log"))):
            assert "/home/pi/tiramisu-env/" in line, line


def test_server_conf_has_every_contract_key():
    text = render_server_conf(values())
    keys = {l.split("=")[0].strip() for l in text.splitlines() if "=" in l and not l.startswith("#")}
    assert {"listen", "modules", "routes", "cache", "log-dir", "pid-file", "workers", "timeout-ms",
            "memory-mb"} <= keys


def test_missing_template_value_is_an_error_not_empty():
    with pytest.raises(jinja2.UndefinedError):
        render("server.conf.j2", layout=LAYOUT)


def test_broken_nginx_conf_is_caught_before_upload():
    with pytest.raises(UsageError, match="invalid"):
        validate_nginx_conf("events {}\nhttp { server { listen 80 } }\n")


def _unexpected(code, stderr):
    return UnexpectedExit(Result(command="false --flag", exited=code, stderr=stderr, stdout=""))


@pytest.mark.parametrize("exc, message, code", [
    (UnsupportedTarget("unsupported architecture 'armv7l'"), "unsupported architecture", 3),
    (_unexpected(7, "boom\nlast line"), "remote command failed (exit 7): false --flag: last line", 7),
    (paramiko.AuthenticationException("Authentication failed."), "authentication failed", 255),
    (socket.gaierror(-2, "Name or service not known"), "cannot resolve host name", 255),
    (socket.timeout(), "timed out", 255),
    (paramiko.ssh_exception.NoValidConnectionsError({("127.0.0.1", 1): OSError("refused")}), "cannot connect", 255),
], ids=["unsupported", "remote-exit", "auth", "dns", "timeout", "refused"])
def test_errors_become_one_line(exc, message, code):
    text, got = describe_exception(exc, host="pi")
    assert text.startswith("pi: ") and message in text and "\n" not in text
    assert got == code


def test_bugs_are_not_swallowed():
    assert describe_exception(KeyError("x")) is None
