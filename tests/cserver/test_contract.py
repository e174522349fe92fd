"""The one CGI contract (cserver/contract/*.json) against the server's own C functions.

tests/apps/test_wagi.py runs the same cases against the local runner's Python
copy, so a check on the local machine predicts what the box answers.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "cserver"
CONTRACT = SRC / "contract"
OUTPUT_CASES = json.loads((CONTRACT / "cgi_output.json").read_text())["cases"]
ENV_CASES = json.loads((CONTRACT / "cgi_env.json").read_text())["cases"]


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    cc = shutil.which("clang") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    out = tmp_path_factory.mktemp("contract") / "contract_runner"
    argv = [
        cc,
        "-std=c11",
        "-D_GNU_SOURCE",
        "-g",
        "-O1",
        "-Wall",
        "-I",
        str(SRC),
        str(REPO / "tests/cserver/c/contract_runner.c"),
        str(SRC / "ts_wagi.c"),
        str(SRC / "ts_http.c"),
        str(SRC / "ts_util.c"),
        str(SRC / "ts_route.c"),
        "-o",
        str(out),
    ]
    if "clang" in cc:
        argv[1:1] = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def run_output(runner, output, max_head):
    proc = subprocess.run(
        [str(runner), "output", str(max_head)],
        input=output,
        capture_output=True,
        timeout=30,
        env={"ASAN_OPTIONS": "detect_leaks=0"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode("latin-1").splitlines()
    if lines[0].startswith("error "):
        return {"error": lines[0][6:]}
    status = int(lines[0].split()[1])
    headers = [ln[7:].split("\t", 1) for ln in lines if ln.startswith("header ")]
    body_off = int(lines[-1].split()[1])
    return {"status": status, "headers": headers, "body": output[body_off:]}


@pytest.mark.parametrize("case", OUTPUT_CASES, ids=[c["id"] for c in OUTPUT_CASES])
def test_cgi_output_contract_in_c(runner, case):
    got = run_output(runner, case["output"].encode("latin-1"), case.get("max_head", 16384))
    if "error" in case:
        assert "error" in got, got
        assert case["error"] in got["error"]
    else:
        assert got == {"status": case["status"], "headers": case["headers"], "body": case["body"].encode("latin-1")}


def env_input(req):
    lines = [f"{k}\t{'1' if v is True else '0' if v is False else v}" for k, v in req.items() if k != "headers"]
    lines += [f"header\t{k}\t{v}" for k, v in req["headers"]]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("case", ENV_CASES, ids=[c["id"] for c in ENV_CASES])
def test_cgi_env_contract_in_c(runner, case):
    proc = subprocess.run(
        [str(runner), "env"],
        input=env_input(case["request"]),
        capture_output=True,
        timeout=30,
        env={"ASAN_OPTIONS": "detect_leaks=0"},
    )
    assert proc.returncode == 0, proc.stderr
    env = {}
    for line in proc.stdout.decode().splitlines():
        if not line.startswith("argv\t"):
            k, _, v = line.partition("=")
            env[k] = v
    for name, want in case["expect"].items():
        assert env.get(name) == want, (name, env.get(name), want)


def test_app_names_tiramisu_accepts_are_names_the_server_routes(runner):
    """One app-name rule: every name Tiramisu accepts is one the C server's own
    ts_app_name_valid accepts, and the Python mirror of that check agrees with it."""
    from tests.unit.test_appnames import NAMES
    from tiramisu_tasks.appnames import is_app_name, server_accepts

    names = NAMES + ["a.b.c", "A-Z_0", "x" * 63, "-", "..", "a\nb"]
    data = "".join(n.encode().hex() + "\n" for n in names).encode()
    proc = subprocess.run(
        [str(runner), "names"], input=data, capture_output=True, timeout=30, env={"ASAN_OPTIONS": "detect_leaks=0"}
    )
    assert proc.returncode == 0, proc.stderr
    c_says = [line == "1" for line in proc.stdout.decode().split()]
    assert len(c_says) == len(names)
    for name, routed in zip(names, c_says):
        assert server_accepts(name) == routed, name
        if is_app_name(name):
            assert routed, name
