"""WAGI routing, `_routes`, argv templates and app maps against the server's C functions (ts_appmap.c).

The route cases come from cserver/contract/wagi_routes.json, which
tests/apps/test_wagi_routes.py runs against the Python copy (wagiroutes.py).
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "cserver"
CASES = json.loads((SRC / "contract/wagi_routes.json").read_text())
TABLES = CASES["tables"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    cc = shutil.which("clang") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("wroutes") / "wagi_routes_runner"
    argv = [cc, "-std=c11", "-D_GNU_SOURCE", "-g", "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter"]
    if "clang" in cc:
        argv += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    argv += ["-I", str(SRC), str(REPO / "tests/cserver/c/wagi_routes_runner.c")]
    argv += [str(SRC / f) for f in ("ts_appmap.c", "ts_http.c", "ts_util.c")] + ["-o", str(out)]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def run(runner, commands):
    proc = subprocess.run(
        [str(runner)],
        input="".join("\t".join(c) + "\n" for c in commands).encode(),
        capture_output=True,
        timeout=30,
        env={"ASAN_OPTIONS": "detect_leaks=1"},
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return [ln.split("\t") for ln in proc.stdout.decode().splitlines()]


def hx(text):
    return text.encode().hex()


@pytest.mark.parametrize("table", TABLES, ids=[t["id"] for t in TABLES])
def test_route_contract_in_c(runner, table):
    cmds = []
    for r in table["routes"]:
        cmds.append(["route", r["route"], r["entrypoint"]])
        if "dynamic" in r:
            cmds.append(["dynamic", hx(r["dynamic"])])
    cmds += [["match", q["path"]] for q in table["requests"]]
    out = run(runner, cmds)
    assert len(out) == len(table["requests"]), out
    for q, line in zip(table["requests"], out):
        if q["expect"] is None:
            assert line == ["miss"], (q["path"], line)
        else:
            e = q["expect"]
            want = ["hit", e["route"], e["entrypoint"], e["SCRIPT_NAME"], e["X_RAW_PATH_INFO"], e["PATH_INFO"]]
            assert line == want, q["path"]


@pytest.mark.parametrize("case", CASES["dynamic_errors"], ids=[c["id"] for c in CASES["dynamic_errors"]])
def test_bad_dynamic_routes_in_c(runner, case):
    (line,) = run(runner, [["dyncheck", hx(case["text"])]])
    assert line[0] == "dynerr" and case["error"] in line[1], line


@pytest.mark.parametrize("case", CASES["argv"], ids=[c["id"] for c in CASES["argv"]])
def test_argv_contract_in_c(runner, case):
    tmpl = "-" if case["template"] is None else hx(case["template"])
    (line,) = run(runner, [["argv", tmpl, case["script_name"], case["path"], case["query"]]])
    assert line == ["argv"] + case["argv"]


GOOD_MAP = (
    "tiramisu-appmap 1\n# written by deploy\nenv\tGREETING\tHello world\n"
    "dir\t/templates\treleases/a/1/ro/templates\tro\n"
    "envfile\tsecrets/a.env\nlimit\ttimeout-ms\t2000\nlimit\tmemory-mb\t32\n"
    "route\t/a/...\ta\t_start\nroute\t/a/admin\ta.admin\tadmin\t${SCRIPT_NAME} ${ARGS}\n"
    "env\tMODE\tadmin\ndir\t/data\tdata/a/data\trw\n"
)


def test_app_map_parses(runner):
    out = run(runner, [["appmap", hx(GOOD_MAP)]])
    assert out == [
        ["appenv", "GREETING", "Hello world"],
        ["appdir", "/templates", "releases/a/1/ro/templates", "ro"],
        ["route", "/a/...", "a", "_start", ""],
        ["route", "/a/admin", "a.admin", "admin", "${SCRIPT_NAME} ${ARGS}"],
        ["env", "MODE", "admin"],
        ["dir", "/data", "data/a/data", "rw"],
        ["limits", "2000", "32", "0", "secrets/a.env"],
        ["end"],
    ]


BAD_MAPS = [
    ("no-header", "route\t/a\ta\t_start\n", "line 1: expected 'tiramisu-appmap 1'"),
    ("empty", "", "empty app map"),
    ("no-routes", "tiramisu-appmap 1\n", "no routes"),
    ("reserved", "tiramisu-appmap 1\nroute\t/_tiramisu/x\ta\t_start\n", "line 2: '/_tiramisu/x' is under /_tiramisu"),
    ("bad-entry", "tiramisu-appmap 1\nroute\t/a\ta\t9x\n", "line 2: invalid entrypoint"),
    ("dup", "tiramisu-appmap 1\nroute\t/a\ta\t_start\nroute\t/a\ta\tx\n", "line 3: duplicate route /a"),
    ("bad-dir", "tiramisu-appmap 1\nroute\t/a\ta\t_start\ndir\trel\tx\tro\n", "line 3: invalid dir entry"),
    ("bad-limit", "tiramisu-appmap 1\nlimit\tcpu\t3\nroute\t/a\ta\t_start\n", "line 2: invalid limit"),
    ("unknown", "tiramisu-appmap 1\nmodule\tx\nroute\t/a\ta\t_start\n", "line 2: unknown entry 'module'"),
    ("bad-module", "tiramisu-appmap 1\nroute\t/a\t../x\t_start\n", "line 2: invalid module name"),
    ("bad-env", "tiramisu-appmap 1\nenv\t1X\tv\nroute\t/a\ta\t_start\n", "line 2: invalid env entry"),
]


@pytest.mark.parametrize("text,error", [c[1:] for c in BAD_MAPS], ids=[c[0] for c in BAD_MAPS])
def test_bad_app_maps(runner, text, error):
    out = run(runner, [["appmap", hx(text)]])
    assert out[0][0] == "maperr" and error in out[0][1], out


def test_env_file(runner):
    text = "# secrets\nADMIN_TOKEN=s3cr=et\nexport Q='quoted value'\n\n  B=\"x\"\n"
    assert run(runner, [["envfile", hx(text)]]) == [
        ["env", "ADMIN_TOKEN", "s3cr=et"],
        ["env", "Q", "quoted value"],
        ["env", "B", "x"],
        ["end"],
    ]
    out = run(runner, [["envfile", hx("A=1\nnot a line\n")]])
    assert out[1] == ["enverr", "env file line 2: expected NAME=VALUE"]
