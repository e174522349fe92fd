"""The WAGI reference functions and the expected.json checker (pure)."""

import pytest

from tiramisu_tasks.apps.expect import check_response, parse_expected
from tiramisu_tasks.apps.wagi import CgiError, Request, Response, cgi_argv, cgi_environ, parse_cgi_output
from tiramisu_tasks.errors import UsageError


def test_environ_has_the_cgi_variables():
    req = Request("post", "/a%20b/c", "x=1&y=2",
                  [("Content-Type", "application/json"), ("User-Agent", "t/1"), ("X-Multi", "a"),
                   ("X-Multi", "b"), ("Content-Length", "2")], b"{}")
    env = cgi_environ(req, script_name="/api", server_name="box", server_port=8080)
    assert env["REQUEST_METHOD"] == "POST"
    assert env["PATH_INFO"] == "/a b/c" and env["X_RAW_PATH_INFO"] == "/a%20b/c"
    assert env["SCRIPT_NAME"] == "/api" and env["QUERY_STRING"] == "x=1&y=2"
    assert env["CONTENT_TYPE"] == "application/json" and env["CONTENT_LENGTH"] == "2"
    assert env["HTTP_USER_AGENT"] == "t/1" and env["HTTP_X_MULTI"] == "a, b"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["X_FULL_URL"] == "http://box:8080/api/a%20b/c?x=1&y=2"


def test_get_without_body_has_empty_content_length():
    assert cgi_environ(Request())["CONTENT_LENGTH"] == ""


@pytest.mark.parametrize("path,query,argv", [
    ("/", "", ["/app/"]),
    ("/x", "a=1&b&&c=%20", ["/app/x", "a=1", "b", "c=%20"]),
    ("", "", ["/app"]),
], ids=["root", "query-items", "bare-mount"])
def test_argv(path, query, argv):
    assert cgi_argv(Request(path=path, query=query), "/app") == argv


PARSE_CASES = [
    ("lf", b"Content-Type: text/plain\n\nhi", 200, [("Content-Type", "text/plain")], b"hi"),
    ("crlf", b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nhi\r\n", 200,
     [("Content-Type", "text/plain"), ("X-A", "1")], b"hi\r\n"),
    ("status anywhere", b"Content-Type: a/b\nStatus: 404 Not Found\n\n", 404, [("Content-Type", "a/b")], b""),
    ("status alone", b"Status: 204\n\n", 204, [], b""),
    ("location means 302", b"Location: /x\n\n", 302, [("Location", "/x")], b""),
    ("location with status", b"Location: /x\nStatus: 301 Moved\n\n", 301, [("Location", "/x")], b""),
    ("repeated headers kept in order", b"Content-Type: t/p\nSet-Cookie: a=1\nSet-Cookie: b=2\n\nx", 200,
     [("Content-Type", "t/p"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")], b"x"),
    ("body keeps blank lines", b"Content-Type: t/p\n\n\n\nbody\n\n", 200, [("Content-Type", "t/p")],
     b"\n\nbody\n\n"),
]


@pytest.mark.parametrize("data,status,headers,body", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_cgi_output(data, status, headers, body):
    resp = parse_cgi_output(data)
    assert (resp.status, resp.headers, resp.body) == (status, headers, body)


@pytest.mark.parametrize("data,msg", [
    (b"Content-Type: text/plain", "no blank line"),
    (b"X-Only: 1\n\nbody", "no Content-Type, Location or Status"),
    (b"Status: abc\n\n", "bad Status"),
    (b"Status: 999 Nope\n\n", "bad Status"),
    (b"not a header\n\n", "malformed header line"),
    (b"Bad Name: 1\nContent-Type: t/p\n\n", "malformed header name"),
    (b"", "no blank line"),
], ids=["no-blank-line", "no-required-header", "status-text", "status-range", "no-colon",
        "space-in-name", "empty"])
def test_parse_cgi_output_errors(data, msg):
    with pytest.raises(CgiError, match=msg):
        parse_cgi_output(data)


RESP = Response(201, [("Content-Type", "application/json"), ("Set-Cookie", "a=1; Path=/"),
                      ("Set-Cookie", "b=2")], b'{"ok": true, "n": 3, "list": [1, {"x": "y"}]}')

CHECK_CASES = [
    ("all match", {"status": 201, "headers": {"content-type": "JSON"},
                   "header_values": {"Set-Cookie": ["a=1", "b=2"]}, "absent_headers": ["X-No"],
                   "body_contains": ['"ok"'], "json": {"ok": True, "list": [1, {"x": "y"}]}}, []),
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
    cases = parse_expected({"requests": [{"expect": {"status": 200}},
                                         {"method": "post", "path": "/x", "query": "?a=1",
                                          "headers": {"A": 1}, "body": "é", "expect": {"status": 201}}]})
    first, second = cases
    assert (first.name, first.request.method, first.request.path, first.request.body) == ("GET /", "GET", "/", b"")
    assert second.request.method == "POST" and second.request.query == "a=1"
    assert second.request.headers == [("A", "1")] and second.request.body == "é".encode()
    assert second.name == "POST /x?a=1"


@pytest.mark.parametrize("data,msg", [
    ({}, "non-empty \"requests\""),
    ({"requests": []}, "non-empty \"requests\""),
    ({"requests": [{}]}, "needs an \"expect\""),
    ({"requests": [{"expect": {"stat": 1}}]}, "unknown expect keys"),
    ({"requests": [{"pth": "/", "expect": {"status": 1}}]}, "unknown keys"),
    ({"requests": [{"path": "x", "expect": {"status": 1}}]}, "must start with /"),
], ids=["no-requests", "empty", "no-expect", "typo-expect", "typo-request", "relative-path"])
def test_parse_expected_errors(data, msg):
    with pytest.raises(UsageError, match=msg):
        parse_expected(data)
