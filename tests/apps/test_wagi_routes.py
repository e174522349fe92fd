"""WAGI routing and CGI path variables in Python (wagiroutes.py), from the shared case file.

tests/cserver/test_wagi_routes_c.py runs the same cases against the server's C
functions (ts_appmap.c).
"""

import json
from pathlib import Path

import pytest

from tiramisu_tasks.apps.wagiroutes import (
    RouteError,
    check_argv_template,
    check_route,
    expand,
    expand_argv,
    match,
    parse_dynamic_routes,
    parse_pattern,
    route_environ,
)

CASES = json.loads((Path(__file__).resolve().parents[2] / "cserver/contract/wagi_routes.json").read_text())
REQUESTS = [(t, r) for t in CASES["tables"] for r in t["requests"]]


def table_of(t):
    declared = [(parse_pattern(r["route"]), r["entrypoint"]) for r in t["routes"]]
    dynamic = {i: parse_dynamic_routes(r["dynamic"]) for i, r in enumerate(t["routes"]) if "dynamic" in r}
    return expand(declared, dynamic)


@pytest.mark.parametrize("table,req", REQUESTS, ids=[f"{t['id']}:{r['path']}" for t, r in REQUESTS])
def test_route_contract_in_python(table, req):
    hit = match(table_of(table), req["path"])
    if req["expect"] is None:
        assert hit is None, hit
        return
    want = req["expect"]
    assert hit is not None
    env = route_environ(hit.pattern, req["path"])
    got = {
        "route": hit.pattern.text,
        "entrypoint": hit.entrypoint,
        **{k: env[k] for k in ("SCRIPT_NAME", "X_RAW_PATH_INFO", "PATH_INFO")},
    }
    assert got == want
    assert env["X_MATCHED_ROUTE"] == want["route"] and env["PATH_TRANSLATED"] == want["PATH_INFO"]


@pytest.mark.parametrize("case", CASES["dynamic_errors"], ids=[c["id"] for c in CASES["dynamic_errors"]])
def test_bad_dynamic_routes_in_python(case):
    with pytest.raises(RouteError) as exc:
        parse_dynamic_routes(case["text"])
    assert case["error"] in str(exc.value)


@pytest.mark.parametrize("case", CASES["argv"], ids=[c["id"] for c in CASES["argv"]])
def test_argv_contract_in_python(case):
    if case["template"] is not None:
        check_argv_template(case["template"])
    assert expand_argv(case["template"], case["script_name"], case["path"], case["query"]) == case["argv"]


@pytest.mark.parametrize(
    "route",
    ["", "a", "/a b", "/a?x", "/a#b", "/a/../b", "/./a", "/a/.../b", "//a", "/_tiramisu", "/_tiramisu/...", 3],
)
def test_bad_routes(route):
    with pytest.raises(RouteError):
        check_route(route)


@pytest.mark.parametrize("route", ["/", "/...", "/a", "/a/", "/a/...", "/a-b_c.d/~x/%20", "/_tiramisux"])
def test_good_routes(route):
    assert check_route(route).text == route


@pytest.mark.parametrize("template", ["", "  ", "${X}", "--x=${ARGS} ${PATH}", 5])
def test_bad_argv_templates(template):
    with pytest.raises(RouteError):
        check_argv_template(template)
