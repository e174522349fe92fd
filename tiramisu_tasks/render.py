"""Render and validate the box's config files (pure, local)."""

import os
import tempfile

import crossplane
import jinja2

from . import __version__
from .errors import UsageError

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("tiramisu_tasks", "templates"),
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
    keep_trailing_newline=True,
    autoescape=False,
)


def render(name, **values):
    values.setdefault("tiramisu_version", __version__)
    return _env.get_template(name).render(**values)


def config_values(layout, host_name, settings):
    """Template values from resolved settings (pure)."""
    return {
        "layout": layout,
        "host_name": host_name,
        "http_port": int(settings["http_port"]),
        "server_port": int(settings["server_port"]),
        "listen_address": settings.get("listen_address") or "0.0.0.0",
        "nginx_workers": int(settings.get("nginx_workers") or 1),
        "workers": int(settings["workers"]),
        "request_timeout_ms": int(settings["request_timeout_ms"]),
        "memory_limit_mb": int(settings["memory_limit_mb"]),
        "max_body_mb": int(settings.get("max_body_mb") or 10),
        "proxy_read_timeout_s": max(5, int(settings["request_timeout_ms"]) // 1000 + 5),
        "server_name": host_name,
    }


def render_nginx_conf(values):
    text = render("nginx.conf.j2", **values)
    validate_nginx_conf(text)
    return text


def render_server_conf(values):
    return render("server.conf.j2", **values)


def validate_nginx_conf(text):
    """Parse the config with crossplane; raise UsageError with nginx's complaint.

    This catches syntax errors before anything is uploaded; `nginx -t` on the
    box then checks what only the real binary can (paths, ports, modules).
    """
    fd, path = tempfile.mkstemp(suffix=".conf")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        result = crossplane.parse(path, single=True, check_ctx=True, check_args=True, comments=False)
    finally:
        os.unlink(path)
    if result.get("status") != "ok":
        errors = result.get("errors") or [{"error": "unknown error"}]
        first = errors[0]
        raise UsageError(f"rendered nginx.conf is invalid: {first.get('error')} (line {first.get('line')})")
    return result
