"""The WAGI contract (CGI/1.1 for WASI command modules) as pure functions.

The server implements this in C (cserver/ts_wagi.c); this Python copy serves
the local runner (:mod:`localrun`) and the checks of wasm_examples/, so an app
can be tried before any box exists. The two must agree: the cases in
``cserver/contract/cgi_output.json`` and ``cgi_env.json`` are run against both
(tests/apps/test_wagi.py here, tests/cserver/test_contract.py for the C side).
Where they disagree, the server is right: it is what users hit.

* environment (RFC 3875 4.1): REQUEST_METHOD, QUERY_STRING, PATH_INFO
  (decoded), X_RAW_PATH_INFO, SCRIPT_NAME, X_MATCHED_ROUTE, CONTENT_TYPE,
  CONTENT_LENGTH ("0" without a body, as WAGI), SERVER_NAME (Host, else the configured
  name), SERVER_PORT (the port the request arrived on), SERVER_PROTOCOL,
  REMOTE_ADDR, GATEWAY_INTERFACE=CGI/1.1, HTTP_* per request header except
  credentials, Connection and the two CONTENT_* ones, X_FULL_URL;
* argv: the request path, then the query split on ``&`` (empty items kept);
* stdin: the body; stdout: CGI headers, a blank line, the body. ``Status:``
  (200-599) sets the status wherever it appears; ``Location:`` without
  ``Status:`` is a 302; none of Content-Type/Location/Status is an error (the
  server answers 500); repeated headers are kept in order; LF or CRLF both
  work; output that ends inside the head has no body; framing, hop-by-hop,
  Date and X-Accel-* fields are dropped; the kept header lines may take
  ``max_head`` bytes (name + value + 4 each).
"""

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple
from urllib.parse import unquote

Header = Tuple[str, str]

# Request headers that are not passed as HTTP_*: CONTENT_* carry two, and
# credentials and the connection's own field stay with the server.
_NOT_HTTP_VARS = {"content-type", "content-length", "authorization", "proxy-authorization", "connection"}
# Response fields a guest may not send (ts_cgi_header_dropped in ts_wagi.c).
DROPPED_RESPONSE_FIELDS = frozenset(
    {
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "date",
    }
)
DROPPED_RESPONSE_PREFIX = "x-accel-"
MAX_RESPONSE_HEADER = 16384  # bytes; the server's max-response-header default
_TCHAR = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STATUS = re.compile(r"^([2-5][0-9]{2})(?:[ \t](.*))?$")


class CgiError(Exception):
    """The module's output is not a valid CGI response (the server answers 500)."""


@dataclass
class Request:
    method: str = "GET"
    path: str = "/"  # below the app's mount point, as sent on the wire (percent-encoded)
    query: str = ""
    headers: List[Header] = field(default_factory=list)
    body: bytes = b""
    minor: int = 1  # HTTP/1.<minor>

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class Response:
    status: int
    headers: List[Header]
    body: bytes

    def header(self, name) -> Optional[str]:
        values = self.header_all(name)
        return values[0] if values else None

    def header_all(self, name) -> List[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def has_body(req: Request) -> bool:
    """Whether the request carried a body: a Content-Length (even 0), chunked framing or bytes."""
    return bool(req.body) or req.header("content-length") is not None or req.header("transfer-encoding") is not None


def response_field_dropped(name: str) -> bool:
    """Whether a guest's response field is dropped (framing, hop-by-hop, Date, X-Accel-*)."""
    low = name.lower()
    return low in DROPPED_RESPONSE_FIELDS or low.startswith(DROPPED_RESPONSE_PREFIX)


def _host_name(host: str) -> str:
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end >= 0 else host
    return host.split(":", 1)[0]


def cgi_environ(
    req: Request,
    script_name="/app",
    server_name="localhost",
    server_port=8080,
    remote_addr="127.0.0.1",
    scheme="http",
    matched_route=None,
):
    """The environment for one request (pure).

    ``req.path`` is below the mount point ``script_name``; ``server_port`` is
    the port the request arrived on; ``server_name`` stands in when there is
    no Host header. Returns a dict of variable -> value (unset ones absent).
    """
    raw_path = req.path or ""
    host = req.header("host") or ""
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "REQUEST_METHOD": req.method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": unquote(raw_path).replace("\x00", ""),
        "X_RAW_PATH_INFO": raw_path,
        "QUERY_STRING": req.query or "",
        "X_MATCHED_ROUTE": matched_route if matched_route is not None else script_name + "/...",
        "CONTENT_TYPE": req.header("content-type") or "",
        "SERVER_NAME": _host_name(host) if host else server_name,
        "SERVER_PORT": str(server_port),
        "SERVER_PROTOCOL": "HTTP/1.1" if req.minor else "HTTP/1.0",
        "SERVER_SOFTWARE": "tiramisu-local",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_HOST": remote_addr,
        "AUTH_TYPE": "",
        "REMOTE_USER": "",
        "X_FULL_URL": f"{scheme}://{host or f'{server_name}:{server_port}'}{script_name}{raw_path}"
        + (f"?{req.query}" if req.query else ""),
    }
    env["PATH_TRANSLATED"] = env["PATH_INFO"]
    # Always set, "0" without a body, as WAGI does (RFC 3875 4.1.2 would leave it unset).
    env["CONTENT_LENGTH"] = str(len(req.body)) if has_body(req) else "0"
    for name, value in req.headers:
        # Proxy -> HTTP_PROXY is read by CGI libraries as their outgoing proxy
        # ("httpoxy"); a name with "_" would collide with a "-" name.
        if name.lower() in _NOT_HTTP_VARS or name.lower() == "proxy" or "_" in name:
            continue
        key = "HTTP_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        sep = "; " if name.lower() == "cookie" else ", "
        env[key] = f"{env[key]}{sep}{value}" if key in env else value
    return env


def cgi_argv(req: Request, script_name="/app"):
    """argv: the request path, then the query split on `&` as sent, empty items kept, as WAGI (pure)."""
    argv = [script_name + (req.path or "")]
    if req.query:
        argv += req.query.split("&")
    return argv


def parse_cgi_output(data: bytes, max_head: int = MAX_RESPONSE_HEADER) -> Response:
    """Status, headers and body from a module's stdout (pure); CgiError if malformed.

    Line by line, like the server: the head ends at the first empty line (LF
    or CRLF) or at the end of the output.
    """
    headers: List[Header] = []
    connection: List[str] = []  # the guest's Connection values: the fields they name are dropped too
    status = None
    pos, head_bytes = 0, 0
    while True:
        if pos >= len(data):
            body = b""
            break
        eol = data.find(b"\n", pos)
        nxt = len(data) if eol < 0 else eol + 1
        end = len(data) if eol < 0 else eol
        if end > pos and data[end - 1 : end] == b"\r":
            end -= 1
        if end == pos:
            body = data[nxt:]
            break
        line = data[pos:end].decode("latin-1")
        pos = nxt
        name, colon, value = line.partition(":")
        if not colon or not _TCHAR.match(name):
            raise CgiError(f"malformed header line in guest output: {line[:60]!r}")
        value = value.strip(" \t")
        if any((ord(c) < 0x20 and c != "\t") or ord(c) == 0x7F for c in value):
            raise CgiError("control character in guest header value")
        if name.lower() == "status":
            if status is not None:
                raise CgiError("more than one Status header in guest output")
            m = _STATUS.match(value)
            if not m:
                raise CgiError(f"invalid Status header in guest output: {value[:60]!r}")
            status = int(m.group(1))
            continue
        if response_field_dropped(name):
            if name.lower() == "connection":
                connection.append(value)
            continue
        head_bytes += len(name) + len(value) + 4
        if head_bytes > max_head:
            raise CgiError(f"guest response headers over the max-response-header limit ({max_head} bytes)")
        headers.append((name, value))
    nominated = {t.strip().lower() for v in connection for t in v.split(",") if t.strip()}
    if nominated:  # RFC 9110 7.6.1
        headers = [(k, v) for k, v in headers if k.lower() not in nominated]
    names = {k.lower() for k, _ in headers}
    if status is None:
        if "location" in names:
            status = 302
        elif "content-type" in names:
            status = 200
        else:
            raise CgiError("guest output has none of Content-Type, Location, Status")
    return Response(status, headers, body)
