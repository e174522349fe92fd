"""``expected.json`` of wasm_examples/: requests to send an app and what must come back.

Format (every key but ``requests`` and each request's ``expect`` is optional)::

    {
      "description": "one line",
      "requests": [
        {
          "name": "create an item",            # readable test id
          "method": "POST",                    # default GET
          "path": "/items",                    # below the app's mount /<app>; default "/"
          "query": "a=1&b=2",                  # without "?"
          "headers": {"Content-Type": "application/json"},
          "body": "{\\"name\\": \\"tea\\"}",           # text (UTF-8)
          "expect": {
            "status": 201,
            "headers": {"Content-Type": "application/json"},   # first value contains this
                                                               # (names case-insensitive)
            "header_values": {"Set-Cookie": ["session=", "theme="]},  # all values, in order,
                                                               # each containing its item
            "absent_headers": ["X-Debug"],
            "body_contains": ["\\"name\\": \\"tea\\""],
            "body_equals": "exact body",
            "json": {"created": true}          # body parses as JSON and contains this subset
          }
        }
      ]
    }

The same file drives the local check (Python wasmtime) and, through a real
HTTP client, the server tests: the app is mounted at ``/<app>``, so a request
path ``/items`` is sent as ``/<app>/items``.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List

from ..errors import UsageError
from .wagi import Request, Response

REQUEST_KEYS = {"name", "method", "path", "query", "headers", "body", "expect"}
EXPECT_KEYS = {"status", "headers", "header_values", "absent_headers", "body_contains", "body_equals", "json"}


@dataclass
class Case:
    name: str
    request: Request
    expect: dict


def _fail(where, msg):
    raise UsageError(f"{where}: {msg}")


def parse_expected(data, where="expected.json") -> List[Case]:
    """Cases from the decoded JSON (pure); UsageError naming the bad key."""
    if not isinstance(data, dict) or not isinstance(data.get("requests"), list) or not data["requests"]:
        _fail(where, 'needs a non-empty "requests" list')
    cases = []
    for i, item in enumerate(data["requests"]):
        at = f"{where} requests[{i}]"
        if not isinstance(item, dict):
            _fail(at, "must be an object")
        unknown = set(item) - REQUEST_KEYS
        if unknown:
            _fail(at, f"unknown keys {sorted(unknown)}")
        expect = item.get("expect")
        if not isinstance(expect, dict) or not expect:
            _fail(at, 'needs an "expect" object')
        unknown = set(expect) - EXPECT_KEYS
        if unknown:
            _fail(at, f"unknown expect keys {sorted(unknown)}")
        headers = item.get("headers") or {}
        if not isinstance(headers, dict):
            _fail(at, '"headers" must be an object')
        path = item.get("path", "/")
        if path and not path.startswith("/"):
            _fail(at, f"path {path!r} must start with /")
        req = Request(
            method=str(item.get("method", "GET")).upper(),
            path=path,
            query=str(item.get("query", "")).lstrip("?"),
            headers=[(str(k), str(v)) for k, v in headers.items()],
            body=str(item.get("body", "")).encode("utf-8"),
        )
        name = item.get("name") or f"{req.method} {req.path}" + (f"?{req.query}" if req.query else "")
        cases.append(Case(name, req, expect))
    return cases


def load_expected(path) -> List[Case]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON: {exc}") from None
    return parse_expected(data, str(path))


def _json_subset(want, got, where="body"):
    """Mismatches between a wanted JSON subset and the actual value (pure)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{where}: expected an object, got {json.dumps(got)[:80]}"]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append(f"{where}.{k}: missing")
            else:
                out += _json_subset(v, got[k], f"{where}.{k}")
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{where}: expected {json.dumps(want)[:80]}, got {json.dumps(got)[:80]}"]
        out = []
        for i, (w, g) in enumerate(zip(want, got)):
            out += _json_subset(w, g, f"{where}[{i}]")
        return out
    if want != got or type(want) is not type(got):
        return [f"{where}: expected {json.dumps(want)}, got {json.dumps(got)[:80]}"]
    return []


def check_response(expect: dict, resp: Response) -> List[str]:
    """Every way ``resp`` differs from ``expect`` (empty list: it matches). Pure."""
    problems = []
    body = resp.body.decode("utf-8", "replace")
    if "status" in expect and resp.status != expect["status"]:
        problems.append(f"status: expected {expect['status']}, got {resp.status} (body: {body[:120]!r})")
    for name, want in (expect.get("headers") or {}).items():
        got = resp.header(name)
        if got is None:
            problems.append(f"header {name}: missing")
        elif str(want).lower() not in got.lower():
            problems.append(f"header {name}: expected to contain {want!r}, got {got!r}")
    for name, wants in (expect.get("header_values") or {}).items():
        got = resp.header_all(name)
        if len(got) != len(wants) or any(w not in g for w, g in zip(wants, got)):
            problems.append(f"header {name}: expected {len(wants)} values containing {wants}, got {got}")
    for name in expect.get("absent_headers") or []:
        if resp.header(name) is not None:
            problems.append(f"header {name}: expected absent, got {resp.header(name)!r}")
    for piece in expect.get("body_contains") or []:
        if piece not in body:
            problems.append(f"body: expected to contain {piece!r}, got {body[:200]!r}")
    if "body_equals" in expect and body != expect["body_equals"]:
        problems.append(f"body: expected {expect['body_equals']!r}, got {body[:200]!r}")
    if "json" in expect:
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            problems.append(f"body: not JSON ({exc}): {body[:120]!r}")
        else:
            problems += _json_subset(expect["json"], parsed)
    return problems
