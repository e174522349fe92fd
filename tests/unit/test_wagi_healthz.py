"""WAGI's built-in `/healthz` (deislabs/wagi dispatcher.rs: an inbuilt route listed
ahead of the module map, answering 200 "OK") is answered by the box's nginx in
every server block that serves apps, before any app route can claim it."""

import pytest

from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render_nginx_conf, validate_nginx_conf

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")


def _app_servers(over):
    paths = {"cert": f"{LAYOUT.tls_dir}/x.crt", "key": f"{LAYOUT.tls_dir}/x.key"}
    text = render_nginx_conf(config_values(LAYOUT, "pi", dict(DEFAULTS, **over), address="10.0.0.7", tls_paths=paths))
    http = next(d for d in validate_nginx_conf(text)["config"][0]["parsed"] if d["directive"] == "http")
    servers = [d["block"] for d in http["block"] if d["directive"] == "server"]
    # a server block serves apps when its `location /` proxies to the server
    return [
        s
        for s in servers
        if any(
            d["directive"] == "location"
            and d["args"] == ["/"]
            and any(x["directive"] == "proxy_pass" for x in d["block"])
            for d in s
        )
    ]


@pytest.mark.parametrize("over", [{}, {"tls": "self-signed"}], ids=["http", "https"])
def test_healthz_answers_ok_in_every_app_server(over):
    servers = _app_servers(over)
    assert len(servers) == (2 if over else 1)
    for block in servers:
        loc = [d["block"] for d in block if d["directive"] == "location" and d["args"] == ["=", "/healthz"]]
        assert len(loc) == 1
        assert [[d["directive"], *d["args"]] for d in loc[0]] == [
            ["default_type", "text/plain"],
            ["return", "200", "OK"],
        ]
