"""The app-name rule, once for all of Python (build, deploy, rollback, remove, logs).

An app name becomes a file name on the box (``wasm_modules/<app>.wasm``), a
folder (``releases/<app>/``) and the first path segment (``/<app>``). The C
server has its own check, ``ts_app_name_valid`` in ``cserver/ts_route.c``
(letters of either case, digits, ``_``, ``-``, ``.``; not starting with ``.``;
1 to ``TS_APP_NAME_MAX`` = 64 bytes; not ``_tiramisu``). Tiramisu's rule is a
strict subset of it, so every name Tiramisu deploys is one the server
routes: lowercase letters, digits, ``_`` and ``-``, starting with a letter
or digit, at most 63 characters. :func:`server_accepts` mirrors the C
check, and a unit test holds the two together.
"""

import re

from .errors import UsageError

APP_NAME_MAX = 63
SERVER_APP_NAME_MAX = 64  # TS_APP_NAME_MAX in cserver/ts_route.h
APP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,%d}$" % (APP_NAME_MAX - 1))


def is_app_name(name):
    """Whether ``name`` follows Tiramisu's app-name rule."""
    return bool(APP_NAME_RE.match(name or ""))


def validate_app_name(name):
    """``name`` if valid, else UsageError (the message deploy, rollback, remove and logs give)."""
    if not is_app_name(name):
        raise UsageError(f"invalid app name {name!r}: use a-z, 0-9, '_' or '-' (start with a letter or digit)")
    return name


def sanitize_app_name(raw):
    """An app name from a file or dir name (``''`` if nothing usable is left)."""
    name = re.sub(r"[^a-z0-9_-]+", "-", (raw or "").lower())
    name = re.sub(r"-{2,}", "-", name).strip("-_")
    return name[:APP_NAME_MAX].rstrip("-_")


def server_accepts(name):
    """The C server's ``ts_app_name_valid``, in Python (for tests and diagnostics)."""
    raw = (name or "").encode("utf-8", "surrogatepass")
    if not raw or len(raw) > SERVER_APP_NAME_MAX or raw[:1] == b"." or raw == b"_tiramisu":
        return False
    return all(chr(b).isascii() and (chr(b).isalnum() or chr(b) in "_-.") for b in raw)
