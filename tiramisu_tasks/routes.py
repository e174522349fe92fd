"""Extra route prefixes of the box's ``conf/routes.conf`` (``PREFIX APP`` lines): pure text edits.

``/<app>`` always routes to the app (the server does that itself); this file
maps other prefixes (e.g. ``/`` or ``/api``); the longest prefix wins, a
prefix maps to exactly one app, ``#`` lines are comments.
"""

import re

from .errors import UsageError

ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")


def validate_route(route):
    """The normalized prefix (no trailing slash, except ``/``), None for None; UsageError if bad."""
    if route is None:
        return None
    if not ROUTE_RE.match(route) or "//" in route or "/../" in route + "/" or route.startswith("/_tiramisu"):
        raise UsageError(f"invalid route {route!r}: a path prefix like / or /api (not under /_tiramisu)")
    return route.rstrip("/") or "/"


def _entries(text):
    """(line, [prefix, app, ...] or None for comments/blank lines) for each line."""
    for line in (text or "").splitlines():
        parts = line.split()
        is_route = parts and not line.lstrip().startswith("#") and len(parts) >= 2
        yield line, (parts if is_route else None)


def routes_update(text, app, route):
    """New routes file text with ``route`` pointing at ``app``; any older line for that prefix goes."""
    lines = [line for line, parts in _entries(text) if not (parts and parts[0] == route)]
    lines.append(f"{route} {app}")
    return "\n".join(lines).rstrip("\n") + "\n"


def routes_without_app(text, app):
    """The routes file text without ``app``'s lines ('' when nothing is left)."""
    out = [line for line, parts in _entries(text) if not (parts and parts[1] == app)]
    return "\n".join(out).rstrip("\n") + "\n" if out else ""


def routes_for(text, app):
    """The extra prefixes that route to ``app``."""
    return [parts[0] for _, parts in _entries(text) if parts and parts[1] == app]
