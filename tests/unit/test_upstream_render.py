"""upstream = tcp | unix and upstream_keepalive in the rendered server.conf and nginx.conf (pure)."""

import pytest

from tiramisu_tasks import config
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render_nginx_conf, render_server_conf


def _values(root="/home/pi/tiramisu-env", **over):
    return config_values(RemoteLayout(root), "pi", dict(config.DEFAULTS, **over), address="10.0.0.2")


def test_auto_is_the_default_unix_when_the_socket_path_fits_else_tcp():
    assert config.DEFAULTS["upstream"] == "auto"
    v = _values()
    assert v["upstream_socket"] == "/home/pi/tiramisu-env/run/server.sock"
    assert "server unix:/home/pi/tiramisu-env/run/server.sock;" in render_nginx_conf(v)
    assert "listen-unix = /home/pi/tiramisu-env/run/server.sock\n" in render_server_conf(v)
    long = _values(root="/home/" + "x" * 90)  # the socket path would not fit: TCP, no error
    assert long["upstream_socket"] is None
    assert "server 127.0.0.1:9000;" in render_nginx_conf(long) and "listen-unix" not in render_server_conf(long)


def test_tcp_has_no_socket():
    v = _values(upstream="tcp")
    assert v["upstream_socket"] is None
    assert "listen-unix" not in render_server_conf(v)
    nginx = render_nginx_conf(v)
    assert "server 127.0.0.1:9000;" in nginx and "keepalive 64;" in nginx and "unix:" not in nginx


def test_unix_listens_on_both_and_points_nginx_at_the_socket():
    v = _values(upstream="unix", upstream_keepalive="16")
    server = render_server_conf(v)
    assert "listen = 127.0.0.1:9000\nlisten-unix = /home/pi/tiramisu-env/run/server.sock\n" in server
    nginx = render_nginx_conf(v)
    assert "server unix:/home/pi/tiramisu-env/run/server.sock;" in nginx and "keepalive 16;" in nginx
    assert "server 127.0.0.1:9000;" not in nginx


def test_unix_socket_path_too_long_is_a_usage_error():
    with pytest.raises(UsageError, match=r"upstream unix: the socket path .* over the 99 .* use a shorter env_dir"):
        _values(root="/home/" + "x" * 90, upstream="unix")
    _values(root="/home/" + "x" * 90, upstream="tcp")  # tcp does not care


@pytest.mark.parametrize("setting, value", [("upstream", "udp"), ("upstream_keepalive", "0")])
def test_bad_values_are_usage_errors(setting, value):
    with pytest.raises(UsageError, match=f"setting {setting}"):
        _values(**{setting: value})
