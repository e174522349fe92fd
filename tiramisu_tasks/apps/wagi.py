"""The WAGI contract (CGI/1.1 for WASI command modules) as pure functions.

The server implements this in C; this Python copy serves the local runner
(:mod:`localrun`) and the tests of wasm_examples/, so an app can be checked
before any box exists. It follows /work/shared/DESIGN.md "The server":

* environment: REQUEST_METHOD, QUERY_STRING, PATH_INFO (decoded),
  X_RAW_PATH_INFO, SCRIPT_NAME (``/<app>``), CONTENT_TYPE, CONTENT_LENGTH,
  SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, REMOTE_ADDR,
  GATEWAY_INTERFACE=CGI/1.1, HTTP_* per request header, X_FULL_URL,
  X_MATCHED_ROUTE;
* argv: the request path, then the ``&``-separated query items;
* stdin: the body; stdout: CGI headers, a blank line, the body. ``Status:``
  sets the status wherever it appears; ``Location:`` without ``Status:`` is a
  302; none of Content-Type/Location/Status is an error (the server answers
  500); repeated headers are all kept in order; LF or CRLF both work.
"""

import re
from dataclasses import dataclass, field
from typing import List, Optional, Tuple
from urllib.parse import unquote

Header = Tuple[str, str]

# Request headers that CGI passes as CONTENT_* rather than HTTP_*.
_CGI_CONTENT_HEADERS = {"content-type", "content-length"}
_STATUS = re.compile(r"^\s*(\d{3})(?:\s+(.*))?$")


class CgiError(Exception):
    """The module's output is not a valid CGI response (the server answers 500)."""


@dataclass
class Request:
    method: str = "GET"
    path: str = "/"  # below the app's mount point, as sent on the wire (percent-encoded)
    query: str = ""
    headers: List[Header] = field(default_factory=list)
    body: bytes = b""

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


def cgi_environ(req: Request, script_name="/app", server_name="localhost", server_port=8080,
                remote_addr="127.0.0.1", scheme="http"):
    """The environment for one request (pure)."""
    raw_path = req.path or ""
    env = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_SOFTWARE": "tiramisu-local",
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "REMOTE_ADDR": remote_addr,
        "REQUEST_METHOD": req.method.upper(),
        "SCRIPT_NAME": script_name,
        "PATH_INFO": unquote(raw_path),
        "X_RAW_PATH_INFO": raw_path,
        "QUERY_STRING": req.query or "",
        "X_MATCHED_ROUTE": script_name + "/...",
        "X_FULL_URL": f"{scheme}://{server_name}:{server_port}{script_name}{raw_path}"
                      + (f"?{req.query}" if req.query else ""),
        "CONTENT_TYPE": req.header("content-type") or "",
        "CONTENT_LENGTH": str(len(req.body)) if req.body or req.method.upper() in ("POST", "PUT", "PATCH") else "",
    }
    for name, value in req.headers:
        if name.lower() in _CGI_CONTENT_HEADERS:
            continue
        key = "HTTP_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
        env[key] = f"{env[key]}, {value}" if key in env else value
    return env


def cgi_argv(req: Request, script_name="/app"):
    """argv: the request path, then each `&`-separated query item as sent (pure)."""
    argv = [script_name + (req.path or "")]
    if req.query:
        argv += [item for item in req.query.split("&") if item]
    return argv


def parse_cgi_output(data: bytes) -> Response:
    """Status, headers and body from a module's stdout (pure); CgiError if malformed."""
    lf = data.find(b"\n\n")
    crlf = data.find(b"\r\n\r\n")
    if lf < 0 and crlf < 0:
        raise CgiError("no blank line after the CGI headers")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        head, body = data[:crlf], data[crlf + 4:]
    else:
        head, body = data[:lf], data[lf + 2:]
    headers: List[Header] = []
    status = None
    for raw in head.split(b"\n"):
        line = raw.rstrip(b"\r").decode("latin-1")
        if not line.strip():
            continue
        if ":" not in line:
            raise CgiError(f"malformed header line {line[:60]!r}")
        name, value = line.split(":", 1)
        name, value = name.strip(), value.strip()
        if not name or re.search(r"[\s()<>@,;:\\\"/\[\]?={}]", name):
            raise CgiError(f"malformed header name {name[:60]!r}")
        if name.lower() == "status":
            m = _STATUS.match(value)
            if not m or not 100 <= int(m.group(1)) <= 599:
                raise CgiError(f"bad Status header {value[:60]!r}")
            status = int(m.group(1))
            continue
        headers.append((name, value))
    names = {k.lower() for k, _ in headers}
    if status is None:
        if "location" in names:
            status = 302
        elif "content-type" in names:
            status = 200
        else:
            raise CgiError("no Content-Type, Location or Status header")
    return Response(status, headers, body)
