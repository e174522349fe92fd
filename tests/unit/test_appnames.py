"""The app-name rule: Tiramisu's names are a subset of what the C server routes."""

import re

import pytest

from tiramisu_tasks.appnames import SERVER_APP_NAME_MAX, is_app_name, sanitize_app_name, server_accepts
from tiramisu_tasks.paths import repo_root

NAMES = [
    "hello",
    "a",
    "hello-c",
    "x_1",
    "9lives",
    "a" * 63,
    "a" * 64,
    "Hello",
    "a.b",
    ".hidden",
    "-x",
    "_x",
    "_tiramisu",
    "",
    "a/b",
    "a b",
    "é",
    "a" * 65,
]


@pytest.mark.parametrize("name", NAMES, ids=[n[:12] or "empty" for n in NAMES])
def test_every_name_tiramisu_accepts_the_server_routes(name):
    if is_app_name(name):
        assert server_accepts(name)


@pytest.mark.parametrize(
    "name, ours, server",
    [
        ("hello", True, True),
        ("Hello", False, True),
        ("a.b", False, True),
        ("-x", False, True),
        ("_tiramisu", False, False),
        (".hidden", False, False),
        ("a" * 64, False, True),
        ("a" * 65, False, False),
        ("a/b", False, False),
        ("", False, False),
    ],
    ids=["plain", "upper", "dot", "dash-first", "admin", "dot-first", "64", "65", "slash", "empty"],
)
def test_rule_table(name, ours, server):
    assert (is_app_name(name), server_accepts(name)) == (ours, server)


def test_server_limit_matches_the_c_header():
    header = (repo_root() / "cserver" / "ts_route.h").read_text()
    assert int(re.search(r"#define TS_APP_NAME_MAX (\d+)", header).group(1)) == SERVER_APP_NAME_MAX


def test_sanitized_names_follow_the_rule():
    for raw in ["Hello World!", "my.app", "--x--", "a" * 80]:
        assert is_app_name(sanitize_app_name(raw))
