"""WAGI routes as pure functions: patterns, ``_routes`` lines, matching, CGI path variables.

The contract (deislabs/wagi ``docs/configuring_and_running.md``,
``docs/writing_modules.md``, ``docs/environment_variables.md``):

* ``/a`` is exact: it matches ``/a`` only (not ``/a/``, not ``/a/b``);
* ``/a/...`` is a wildcard: it matches ``/a`` and everything below ``/a/``
  (not ``/ab``); ``/...`` matches every path; ``/`` alone is exact;
* ``X_MATCHED_ROUTE`` is the route as written (``/a/...``); ``SCRIPT_NAME`` is
  the route without ``/...`` (``/`` for ``/...``); ``X_RAW_PATH_INFO`` is the
  rest of the request path after it, as sent (``""`` for an exact match, ``/``
  for ``/`` under ``/...``), ``PATH_INFO`` and ``PATH_TRANSLATED`` the same
  percent-decoded;
* a module exporting ``_routes`` prints lines ``SUBROUTE ENTRYPOINT``; each
  sub-route is appended to its parent route (``/example`` + ``/hello`` =
  ``/example/hello``, one slash between), and when two wildcard sub-routes
  match, the one listed last wins.

Choosing among several matches, Tiramisu takes the most specific: an exact
match first, else the longest wildcard prefix; between equal patterns the one
earlier in WAGI's own table order (per module: its ``_routes`` entries last
line first, then the module's own route; modules in file order). Where WAGI
itself took the first match in file order, this gives the same answer for
every map whose routes do not shadow each other.

The C server implements the same (``cserver/ts_appmap.c``); both run the cases
in ``cserver/contract/wagi_routes.json``.
"""

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence
from urllib.parse import unquote

WILDCARD = "/..."
RESERVED_PREFIX = "/_tiramisu"
DEFAULT_ENTRYPOINT = "_start"
DEFAULT_ARGV = "${SCRIPT_NAME} ${ARGS}"
# Printable ASCII path characters without space, '?' or '#' (routes are
# compared with the raw request path, as WAGI compares them).
_ROUTE_CHARS = re.compile(r"^/[!$&'()*+,;=:@A-Za-z0-9._~%/-]*$")
ENTRYPOINT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.$-]{0,127}$")


class RouteError(ValueError):
    """A route, a ``_routes`` line or an argv template is not valid (message says why)."""


@dataclass(frozen=True)
class Pattern:
    """A parsed route: ``base`` is the path without ``/...``; ``wildcard`` says which kind."""

    base: str
    wildcard: bool

    @property
    def text(self) -> str:
        """The route as written (what X_MATCHED_ROUTE carries)."""
        return self.base + WILDCARD if self.wildcard else self.base

    @property
    def script_name(self) -> str:
        if self.wildcard and not self.base.startswith("/"):
            return "/" + self.base
        return self.base

    def matches(self, path: str) -> bool:
        if not self.wildcard:
            return path == self.base
        return path == self.base or path.startswith(self.base + "/")

    def relative(self, path: str) -> str:
        """The raw request path after the route's base (``""`` for an exact match)."""
        return path[len(self.base) :] if path.startswith(self.base) else ""

    def append(self, sub: "Pattern") -> "Pattern":
        """``sub`` (a ``_routes`` line's route) below this route, one slash between."""
        left = self.base[:-1] if self.base.endswith("/") else self.base
        right = sub.base[1:] if sub.base.startswith("/") else sub.base
        return Pattern(f"{left}/{right}", sub.wildcard)


def parse_pattern(text: str) -> Pattern:
    """``/a`` or ``/a/...`` as a Pattern (pure, no checks; see :func:`check_route`)."""
    if text.endswith(WILDCARD):
        return Pattern(text[: -len(WILDCARD)], True)
    return Pattern(text, False)


def check_route(text, reserved=True) -> Pattern:
    """A route from a manifest or module map, checked; RouteError says what is wrong.

    Must be a string starting with ``/``, with no spaces, ``?`` or ``#``, no
    ``.``/``..`` segments, ``...`` only as the last segment, and not under
    ``/_tiramisu`` (the server's own admin paths; ``reserved=False`` skips
    that check, for ``_routes`` sub-routes, which the parent route prefixes).
    """
    if not isinstance(text, str):
        raise RouteError(f'must be a string like "/a" or "/a/...", not {type(text).__name__}')
    if not text.startswith("/"):
        raise RouteError(f"{text!r} must start with '/'")
    if not _ROUTE_CHARS.match(text):
        raise RouteError(f"{text!r} has a character a route cannot have (space, '?', '#', control)")
    pat = parse_pattern(text)
    segments = pat.base.split("/")[1:]
    for seg in segments:
        if seg in (".", "..", "..."):
            raise RouteError(f"{text!r}: '{seg}' is only allowed as the final '/...' of a wildcard route")
    if "//" in pat.base:
        raise RouteError(f"{text!r} has an empty path segment ('//')")
    low = pat.base.lower()
    if reserved and (low == RESERVED_PREFIX or low.startswith(RESERVED_PREFIX + "/")):
        raise RouteError(f"{text!r} is under /_tiramisu, which the server keeps for itself")
    return pat


def check_entrypoint(name) -> str:
    """An export name to call instead of ``_start``; RouteError if not a plausible export name."""
    if not isinstance(name, str) or not ENTRYPOINT_RE.match(name):
        raise RouteError(f"entrypoint {name!r} is not an export name (letters, digits, '_', '.', '$', '-')")
    return name


def parse_dynamic_routes(text: str) -> List[tuple]:
    """A ``_routes`` export's output as ``[(Pattern, entrypoint), ...]`` in listed order (pure).

    Blank lines are skipped; every other line must be exactly two
    whitespace-separated fields, the first a route (a missing leading ``/`` is
    added, as WAGI's concatenation does). Empty output is an error, as in WAGI.
    RouteError names the line.
    """
    if not text.strip():
        raise RouteError("_routes printed nothing")
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise RouteError(f"_routes line {n}: expected 'SUBROUTE ENTRYPOINT', got {line.strip()[:80]!r}")
        route = fields[0] if fields[0].startswith("/") else "/" + fields[0]
        try:
            pat = check_route(route, reserved=False)
            check_entrypoint(fields[1])
        except RouteError as exc:
            raise RouteError(f"_routes line {n}: {exc}") from None
        out.append((pat, fields[1]))
    return out


@dataclass(frozen=True)
class Entry:
    """One row of an app's routing table: a pattern, what runs, and which declared route it came from."""

    pattern: Pattern
    entrypoint: str = DEFAULT_ENTRYPOINT
    owner: int = 0  # index of the declared route (module map entry) this came from
    dynamic: bool = False


def expand(declared: Sequence[tuple], dynamic: Optional[dict] = None) -> List[Entry]:
    """The routing table in WAGI's order (pure).

    ``declared`` is ``[(Pattern, entrypoint), ...]`` as written; ``dynamic``
    maps a declared index to its ``_routes`` output (already parsed). Per
    declared route: its sub-routes last-listed first, then the route itself.
    """
    table: List[Entry] = []
    for i, (pat, ep) in enumerate(declared):
        for sub, sub_ep in reversed((dynamic or {}).get(i, [])):
            table.append(Entry(pat.append(sub), sub_ep, i, True))
        table.append(Entry(pat, ep, i, False))
    return table


def match(table: Sequence[Entry], path: str) -> Optional[Entry]:
    """The entry serving ``path`` (raw, no query), or None for a 404 (pure).

    An exact match wins; otherwise the longest wildcard base; ties go to the
    earlier entry.
    """
    best = None
    best_key = None
    for e in table:
        if not e.pattern.matches(path):
            continue
        key = (0 if e.pattern.wildcard else 1, len(e.pattern.base))
        if best_key is None or key > best_key:
            best, best_key = e, key
    return best


def route_environ(pattern: Pattern, path: str) -> dict:
    """The CGI path variables WAGI sets for ``path`` served by ``pattern`` (pure)."""
    raw = pattern.relative(path)
    decoded = unquote(raw).replace("\x00", "")
    return {
        "X_MATCHED_ROUTE": pattern.text,
        "SCRIPT_NAME": pattern.script_name,
        "X_RAW_PATH_INFO": raw,
        "PATH_INFO": decoded,
        "PATH_TRANSLATED": decoded,
    }


def check_argv_template(template) -> str:
    """An ``argv`` template (WAGI/Spin form, e.g. ``"${SCRIPT_NAME} ${ARGS}"``), checked.

    Placeholders allowed: ``${SCRIPT_NAME}`` and ``${ARGS}``, anywhere in a
    word, as WAGI allows them. RouteError for anything else written as
    ``${...}`` (WAGI would pass it on literally; here it is taken for a typo).
    """
    if not isinstance(template, str) or not template.strip():
        raise RouteError('argv must be a non-empty string such as "${SCRIPT_NAME} ${ARGS}"')
    for ph in re.findall(r"\$\{([^}]*)\}", template):
        if ph not in ("SCRIPT_NAME", "ARGS"):
            raise RouteError(f"argv: unknown placeholder ${{{ph}}} (use ${{SCRIPT_NAME}} or ${{ARGS}})")
    return template


_ARGV_SPACE = re.compile(r"[ \t\n\v\f\r]+")


def expand_argv(template: Optional[str], script_name: str, path: str, query: str) -> List[str]:
    """argv for one request, as WAGI builds it (deislabs/wagi handlers.rs ``build_argv``; pure).

    Without a template: the request path, then the query split on ``&``
    (empty items kept). With one: every ``${SCRIPT_NAME}`` replaced by the
    request path (WAGI uses the full path, not SCRIPT_NAME, so
    ``script_name`` is unused), then every ``${ARGS}`` by the raw query with
    ``&`` as a space, then split on whitespace. Nothing is percent-decoded.
    """
    del script_name
    if template is None:
        return [path] + (query.split("&") if query else [])
    text = template.replace("${SCRIPT_NAME}", path).replace("${ARGS}", query.replace("&", " "))
    return [word for word in _ARGV_SPACE.split(text) if word]
