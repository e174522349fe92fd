"""HTTP requests to a box's loopback ports, tunnelled through the SSH session.

The box may have no curl/wget and its public port may be firewalled from us;
a ``direct-tcpip`` channel reaches 127.0.0.1:PORT on the box through the SSH
connection we already have. Used for health checks (through nginx), the
server's admin API (never exposed by nginx) and deploy verification.
"""

import json
import time
from dataclasses import dataclass, field
from typing import List, Tuple

from .errors import ConnectError


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: List[Tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    seconds: float = 0.0

    def header(self, name, default=None):
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return default

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")


def build_request(method, path, host="localhost", headers=None, body=b""):
    """Raw HTTP/1.1 request bytes with Connection: close (pure)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", "User-Agent: tiramisu"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def _dechunk(data):
    out = b""
    while data:
        size_line, _, rest = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def parse_response(raw):
    """Parse a complete HTTP/1.x response read until EOF (pure)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete HTTP response")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    headers = []
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers.append((key.strip(), value.strip()))
    resp = HttpResponse(status, reason, headers, body)
    if (resp.header("transfer-encoding") or "").lower() == "chunked":
        resp.body = _dechunk(body)
    elif resp.header("content-length") is not None:
        resp.body = body[: int(resp.header("content-length"))]
    return resp


def request(conn, port, path, method="GET", body=b"", headers=None, timeout=10.0, host="localhost"):
    """One HTTP request to 127.0.0.1:port on the box; raises ConnectError if unreachable."""
    from .remote import ensure_open

    transport = ensure_open(conn)
    started = time.monotonic()
    try:
        chan = transport.open_channel("direct-tcpip", ("127.0.0.1", int(port)), ("127.0.0.1", 0), timeout=timeout)
    except Exception as exc:  # paramiko.ChannelException: connect refused / forwarding off
        raise ConnectError(f"nothing answers on 127.0.0.1:{port} on the box ({exc})", code=1) from exc
    try:
        chan.settimeout(timeout)
        chan.sendall(build_request(method, path, host, headers, body))
        raw = b""
        while True:
            chunk = chan.recv(65536)
            if not chunk:
                break
            raw += chunk
    except OSError as exc:
        raise ConnectError(f"HTTP request to 127.0.0.1:{port}{path} on the box failed: {exc}", code=1) from exc
    finally:
        chan.close()
    try:
        resp = parse_response(raw)
    except ValueError as exc:
        raise ConnectError(f"bad HTTP answer from 127.0.0.1:{port}{path} on the box: {exc}", code=1) from exc
    resp.seconds = time.monotonic() - started
    return resp
