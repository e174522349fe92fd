"""Render and validate the box's config files (pure, local)."""

import os
import tempfile

import crossplane
import jinja2

from . import __version__
from .errors import UsageError
from .options import SETTINGS, parse_option

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("tiramisu_tasks", "templates"),
    undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty string
    keep_trailing_newline=True,
    autoescape=False,
)


def render(name, **values):
    values.setdefault("tiramisu_version", __version__)
    return _env.get_template(name).render(**values)


# Response fields nginx must never take from a guest (X-Accel-* steer nginx itself).
X_ACCEL_HEADERS = ("X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset")

# Room for the server's status line and its own headers (Date, Content-Length,
# Connection, ...) on top of what a guest may send.
SERVER_HEADER_ROOM = 4096
PAGE = 4096
MAX_RESPONSE_HEADER_RANGE = (1024, 1024 * 1024)
_SERVER_NAME_BAD = set(" \t\r\n;{}'\"$\\#")


# nginx connections per worker (clients and upstream connections both count)
# and the open files it wants for them; a few more for logs and listeners.
NGINX_CONNECTIONS = 4096
NGINX_FILE_RESERVE = 64
NGINX_CONNECTIONS_UNKNOWN_LIMIT = 1024  # the usual soft limit, when the box's limits are unknown


def typed_settings(settings):
    """Every setting of the table checked and converted by its type (pure).

    Values reach here from flags, the inventory and config files (where an
    env var is text): a bad one is a UsageError naming the setting.
    """
    out = dict(settings)
    for row in SETTINGS:
        value = settings.get(row.name)
        if value is None or value == "":  # not given
            value = row.default
        out[row.name] = parse_option(f"setting {row.name}", value, row.kind) if value is not None else None
    return out


def server_conf_lines(settings):
    """[(server.conf key, value)] for every setting of the table the server takes (pure)."""
    lines = []
    for row in SETTINGS:
        if row.server is None or row.server in _SERVER_KEYS_DERIVED:
            continue
        value = settings[row.name]
        if row.name == "max_body_mb":
            value = int(value) * 1024 * 1024
        lines.append((row.server, value))
    return lines


_SERVER_KEYS_DERIVED = ("listen", "server-name")  # rendered from more than the setting


def nginx_limits(nofile_hard):
    """worker_connections and worker_rlimit_nofile for the box's hard open-file limit (pure).

    nginx sets ``worker_rlimit_nofile`` as both the soft and the hard limit of
    its workers; a process that is not root cannot raise its hard limit, so
    over the box's hard limit nginx logs an alert and keeps the old limit. So
    the directive is set only to a value within the probed hard limit
    (``None``: unknown, not set), and worker_connections stays within it (over
    it nginx warns at every start).
    """
    text = str(nofile_hard if nofile_hard is not None else "").strip()
    if text == "unlimited":
        hard = NGINX_CONNECTIONS + NGINX_FILE_RESERVE
    elif text.isdigit():
        hard = int(text)
    else:
        return {"nginx_connections": NGINX_CONNECTIONS_UNKNOWN_LIMIT, "nginx_rlimit_nofile": None}
    rlimit = min(hard, NGINX_CONNECTIONS + NGINX_FILE_RESERVE)
    connections = rlimit - NGINX_FILE_RESERVE
    if connections < 256:  # a tiny hard limit: leave nginx's own default
        return {"nginx_connections": NGINX_CONNECTIONS_UNKNOWN_LIMIT, "nginx_rlimit_nofile": None}
    return {"nginx_connections": connections, "nginx_rlimit_nofile": rlimit}


def config_values(layout, host_name, settings, address=None, box_ids=None, tls_paths=None):
    """Template values from resolved settings (pure).

    ``address``: how this machine reaches the box (the default server name);
    ``box_ids``: the probe's report (``uid``/``user``/``group`` of the SSH
    user, ``nofile_hard``: its hard open-file limit); ``tls_paths``: the
    certificate and key on the box, ``{"cert": path, "key": path}``, when
    ``tls`` is not off (see :func:`tls_values`).
    """
    settings = typed_settings(settings)
    header_limit = max_response_header(settings)
    name = server_name(settings.get("server_name"), address or host_name)
    timeout_ms = int(settings["request_timeout_ms"])
    return {
        "layout": layout,
        "host_name": host_name,
        "http_port": int(settings["http_port"]),
        "server_port": int(settings["server_port"]),
        "listen_address": settings.get("listen_address") or "0.0.0.0",
        "nginx_workers": settings["nginx_workers"],
        "nginx_user": nginx_user(box_ids or {}),
        **nginx_limits((box_ids or {}).get("nofile_hard")),
        "workers": int(settings["workers"]),
        "request_timeout_ms": timeout_ms,
        "memory_limit_mb": int(settings["memory_limit_mb"]),
        "max_body_mb": int(settings["max_body_mb"]),
        "proxy_read_timeout_s": max(5, -(-timeout_ms // 1000) + 5),
        "server_name": name,
        "server_settings": server_conf_lines(settings),
        "x_accel_headers": X_ACCEL_HEADERS,
        "max_response_header": header_limit,
        **proxy_buffers(header_limit),
        **tls_values(layout, settings, name, tls_paths),
        **upstream_values(layout, settings),
    }


# A UNIX socket path fits in sockaddr_un.sun_path (108 bytes with its NUL);
# the server binds it as PATH.PID first (up to 8 more bytes), then renames it.
UNIX_SOCKET_PATH_MAX = 99


def upstream_values(layout, settings):
    """Template values for how nginx reaches the server (pure).

    ``upstream_socket``: the server's UNIX socket path (``upstream = unix``,
    ``<env>/run/server.sock``) or None (TCP on 127.0.0.1:server_port, which
    the server keeps listening on either way: admin API, health checks and
    `app.preview` use it); ``upstream = auto`` (the default) is unix when that
    path fits a UNIX socket address and tcp otherwise (the socket costs nginx
    and the server less CPU per request: BENCHMARKS.md);
    ``upstream_keepalive``: idle connections each nginx worker keeps to the
    server. UsageError when ``upstream = unix`` and the socket path is too
    long for a UNIX socket address (a long env_dir).
    """
    socket = None
    mode = settings["upstream"]
    if mode == "auto":
        fits = len(f"{layout.run}/server.sock".encode()) <= UNIX_SOCKET_PATH_MAX
        mode = "unix" if fits else "tcp"
    if mode == "unix":
        socket = f"{layout.run}/server.sock"
        if len(socket.encode()) > UNIX_SOCKET_PATH_MAX:
            raise UsageError(
                f"upstream unix: the socket path {socket} is {len(socket.encode())} bytes, over the "
                f"{UNIX_SOCKET_PATH_MAX} a UNIX socket address takes: use a shorter env_dir or upstream tcp"
            )
    return {"upstream_socket": socket, "upstream_keepalive": int(settings["upstream_keepalive"])}


def nginx_user(ids):
    """The nginx ``user`` directive's value, or None (pure).

    Only a master running as root switches its workers' user, and by default
    to ``nobody``, who cannot enter the 0700 env dir: client bodies and large
    responses (temp files) then fail. So on a root box the workers keep the
    box user's own identity, the same one custom_server and every file of the
    env dir have; nothing else needs access and the env dir stays 0700.
    Anywhere else nginx ignores the directive (with a warning), so it is left out.
    """
    if str(ids.get("uid", "")).strip() != "0":
        return None
    user = ids.get("user") or "root"
    return f"{user} {ids.get('group') or user}"


def server_name(value, fallback):
    """The name nginx gives requests without Host (and the server's SERVER_NAME) (pure).

    Default: the address this machine reaches the box at. Never empty and
    never ``_`` (nginx's catch-all), so ``$host`` is always a real name.
    """
    name = str(value if value not in (None, "") else (fallback or "")).strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if ":" in name:  # an IPv6 literal: Host needs brackets
        name = f"[{name}]"
    if not name or name == "_" or set(name) & _SERVER_NAME_BAD or name.startswith("~"):
        raise UsageError(
            f"server_name {value if value not in (None, '') else fallback!r} cannot be used "
            f"as a server name: set server_name to the box's DNS name or address"
        )
    return name


def max_response_header(settings):
    """The validated ``max_response_header`` setting in bytes (pure)."""
    raw = settings.get("max_response_header")
    low, high = MAX_RESPONSE_HEADER_RANGE
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise UsageError(f"max_response_header takes a number of bytes ({low}..{high}), not {raw!r}") from None
    if not low <= value <= high:
        raise UsageError(f"max_response_header takes a number of bytes ({low}..{high}), not {value}")
    return value


def proxy_buffers(header_limit):
    """nginx proxy buffer sizes that hold ``header_limit`` header bytes (pure).

    ``proxy_buffer_size`` holds the whole response head; nginx -t also wants
    busy >= max(buffer_size, one buffer) and busy < all buffers minus one.
    """
    head = -(-(header_limit + SERVER_HEADER_ROOM) // PAGE) * PAGE
    count = max(8, head // PAGE + 2)
    return {
        "proxy_buffer_size": head,
        "proxy_buffers_count": count,
        "proxy_buffers_size": PAGE,
        "proxy_busy_buffers_size": head,
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


# Mozilla's "intermediate" list: forward secrecy and AEAD only (TLS 1.3 suites
# are OpenSSL's defaults and not set by ssl_ciphers).
TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def tls_values(layout, settings, name, tls_paths):
    """The HTTPS, domain and public-face template values (pure; settings already typed).

    ``name``: the primary server name (:func:`server_name`); the ``domains``
    follow it in ``server_name``. UsageError when tls is on without
    ``tls_paths`` or when https_port equals another port.
    """
    from .tlsfiles import parse_domains

    mode = settings.get("tls") or "off"
    domains = parse_domains(settings.get("domains"))
    names = [name] + [d for d in domains if d != name]
    for bad in domains:
        if set(bad) & _SERVER_NAME_BAD:
            raise UsageError(f"domains: {bad!r} cannot be a server name")
    https_port = int(settings.get("https_port") or 8443)
    public = settings.get("tls_public_port") or https_port
    values = {
        "server_names": names,
        "tls": mode if mode != "off" else None,
        "acme": mode == "acme",
        "acme_challenges": layout.acme_challenges,
        "https_port": https_port,
        "https_port_suffix": "" if int(public) == 443 else f":{int(public)}",
        "tls_redirect": bool(settings.get("tls_redirect")),
        "hsts": bool(settings.get("hsts")),
        "tls_ciphers": TLS_CIPHERS,
        "tls_cert": None,
        "tls_key": None,
        "rate_limit": int(settings.get("rate_limit") or 0),
    }
    if mode == "off":
        return values
    taken = {"http_port": int(settings["http_port"]), "server_port": int(settings["server_port"])}
    for key, port in taken.items():
        if port == https_port:
            raise UsageError(f"https_port and {key} are both {port}: they must differ")
    if not tls_paths:
        raise UsageError(f"tls={mode} but no certificate to serve (a bug: tls.prepare makes one)")
    values.update(tls_cert=tls_paths["cert"], tls_key=tls_paths["key"])
    return values
