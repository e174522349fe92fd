"""The WAGI reference functions and the expected.json checker (pure)."""

import json
import re
from pathlib import Path

import pytest

from tiramisu_tasks.apps.expect import check_response, parse_expected
from tiramisu_tasks.apps.wagi import CgiError, Request, Response, cgi_argv, cgi_environ, parse_cgi_output
from tiramisu_tasks.errors import UsageError


def test_environ_has_the_cgi_variables():
    req = Request(
        "POST",
        "/a%20b/c",
        "x=1&y=2",
        [
            ("Content-Type", "application/json"),
            ("User-Agent", "t/1"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("Content-Length", "2"),
        ],
        b"{}",
    )
    env = cgi_environ(req, script_name="/api", server_name="box", server_port=8080)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/a b/c" and env["X_RAW_PATH_INFO"] == "/a%20b/c"
    assert env["SCRIPT_NAME"] == "/api" and env["QUERY_STRING"] == "x=1&y=2"
    assert env["CONTENT_TYPE"] == "application/json" and env["CONTENT_LENGTH"] == "2"
    assert env["HTTP_USER_AGENT"] == "t/1" and env["HTTP_X_MULTI"] == "a, b"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["X_FULL_URL"] == "http://box:8080/api/a%20b/c?x=1&y=2"


def test_get_without_body_has_content_length_0():
    assert cgi_environ(Request())["CONTENT_LENGTH"] == "0"  # as WAGI (its build_headers)


# The one contract: the same case files the server's C functions are tested
# with (tests/cserver/test_contract.py).
CONTRACT = Path(__file__).resolve().parents[2] / "cserver" / "contract"
OUTPUT_CASES = json.loads((CONTRACT / "cgi_output.json").read_text())["cases"]
ENV_CASES = json.loads((CONTRACT / "cgi_env.json").read_text())["cases"]


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c["id"] for c in OUTPUT_CASES])
def test_cgi_output_contract_in_python(case):
    data = case["output"].encode("latin-1")
    max_head = case.get("max_head", 16384)
    if "error" in case:
        with pytest.raises(CgiError, match=re.escape(case["error"])):
            parse_cgi_output(data, max_head)
    else:
        resp = parse_cgi_output(data, max_head)
        assert (resp.status, [list(h) for h in resp.headers], resp.body) == (
            case["status"],
            case["headers"],
            case["body"].encode("latin-1"),
        )


@pytest.mark.parametrize("case", ENV_CASES, ids=[c["id"] for c in ENV_CASES])
def test_cgi_env_contract_in_python(case):
    r = case["request"]
    script = r["script_name"]
    assert r["path"].startswith(script)
    body = b"x" * r["content_length"] if r["has_body"] else b""
    req = Request(
        r["method"],
        r["path"][len(script) :],
        r["query"],
        [tuple(h) for h in r["headers"]],
        body,
        minor=r.get("minor", 1),
    )
    env = cgi_environ(
        req,
        script_name=script,
        server_name=r["server_name"],
        server_port=r["server_port"],
        remote_addr=r["remote_addr"],
        matched_route=r["matched_route"],
    )
    for name, want in case["expect"].items():
        assert env.get(name) == want, (name, env.get(name), want)


@pytest.mark.parametrize(
    "path,query,argv",
    [
        ("/", "", ["/app/"]),
        ("/x", "a=1&b&&c=%20", ["/app/x", "a=1", "b", "", "c=%20"]),
        ("", "", ["/app"]),
    ],
    ids=["root", "query-items", "bare-mount"],
)
def test_argv(path, query, argv):
    assert cgi_argv(Request(path=path, query=query), "/app") == argv


RESP = Response(
    201,
    [("Content-Type", "application/json"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")],
    b'{"ok": true, "n": 3, "list": [1, {"x": "y"}]}',
)

CHECK_CASES = [
    (
        "all match",
        {
            "status": 201,
            "headers": {"content-type": "JSON"},
            "header_values": {"Set-Cookie": ["a=1", "b=2"]},
            "absent_headers": ["X-No"],
            "body_contains": ['"ok"'],
            "json": {"ok": True, "list": [1, {"x": "y"}]},
        },
        [],
    ),
    ("wrong status", {"status": 200}, ["status: expected 200, got 201"]),
    ("missing header", {"headers": {"Location": "/"}}, ["header Location: missing"]),
    ("cookie count", {"header_values": {"Set-Cookie": ["a=1"]}}, ["header Set-Cookie: expected 1 values"]),
    ("cookie order", {"header_values": {"Set-Cookie": ["b=2", "a=1"]}}, ["header Set-Cookie: expected 2 values"]),
    ("present header", {"absent_headers": ["Content-Type"]}, ["header Content-Type: expected absent"]),
    ("json value", {"json": {"n": 4}}, ["body.n: expected 4, got 3"]),
    ("json bool is not int", {"json": {"ok": 1}}, ["body.ok: expected 1, got true"]),
    ("json missing key", {"json": {"gone": 1}}, ["body.gone: missing"]),
    ("body equals", {"body_equals": "x"}, ["body: expected 'x'"]),
]


@pytest.mark.parametrize("expect,problems", [c[1:] for c in CHECK_CASES], ids=[c[0] for c in CHECK_CASES])
def test_check_response(expect, problems):
    got = check_response(expect, RESP)
    assert len(got) == len(problems)
    for g, p in zip(got, problems):
        assert g.startswith(p), g


def test_check_response_on_non_json_body():
    got = check_response({"json": {}}, Response(200, [], b"<html>"))
    assert got and got[0].startswith("body: not JSON")


def test_parse_expected_defaults():
    cases = parse_expected(
        {
            "requests": [
                {"expect": {"status": 200}},
                {
                    "method": "post",
                    "path": "/x",
                    "query": "?a=1",
                    "headers": {"A": 1},
                    "body": "é",
                    "expect": {"status": 201},
                },
            ]
        }
    )
    first, second = cases
    assert (first.name, first.request.method, first.request.path, first.request.body) == ("GET /", "GET", "/", b"")
    assert second.request.method == "POST" and second.request.query == "a=1"
    assert second.request.headers == [("A", "1")] and second.request.body == "é".encode()
    assert second.name == "POST /x?a=1"


@pytest.mark.parametrize(
    "data,msg",
    [
        ({}, 'non-empty "requests"'),
        ({"requests": []}, 'non-empty "requests"'),
        ({"requests": [{}]}, 'needs an "expect"'),
        ({"requests": [{"expect": {"stat": 1}}]}, "unknown expect keys"),
        ({"requests": [{"pth": "/", "expect": {"status": 1}}]}, "unknown keys"),
        ({"requests": [{"path": "x", "expect": {"status": 1}}]}, "must start with /"),
    ],
    ids=["no-requests", "empty", "no-expect", "typo-expect", "typo-request", "relative-path"],
)
def test_parse_expected_errors(data, msg):
    with pytest.raises(UsageError, match=msg):
        parse_expected(data)
