"""On real hosts: deploy, redeploy, rollback, remove on both arches; a
bad module keeps the old version serving; zero failed requests under load; the
three front ends; chained scripts stop at the first failure; every example
answers its expected.json through the real server behind nginx."""

import subprocess
import urllib.error
import urllib.request

import pytest

from tests.helpers import BIN, REPO, cli, host_result, one_line_error
from tests.integration.test_lifecycle import Load, get

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "wasm_examples"


def wat_app(path, text):
    """A libc-free WAGI app printing ``text`` (one fd_write)."""
    body = f"Content-Type: text/plain\n\n{text}\n"
    data = body.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    path.write_text(f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(body.encode())}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
""")
    return path


@pytest.fixture(scope="module")
def served(any_host, tmp_path_factory):
    """A set-up host (module-wide inventory), for the deploy tests of one arch."""
    import os

    home = tmp_path_factory.mktemp(f"deploy-{any_host.arch}")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    any_host.register(home / "tiramisu.yaml", "box")
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    yield any_host
    cli("tiramisu", "teardown", "--host", "box", "--yes")
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def url(host, path):
    return f"http://{host.hostname}:8080{path}"


def deploy_json(*args, front="tiramisu"):
    if front == "fab":
        proc = cli("fab", "-H", "box", "deploy", *args, "--json")
    else:
        proc = cli(front, "deploy", *args, "--host", "box", "--json")
    return proc, (host_result(proc) if proc.returncode == 0 else None)


def test_deploy_redeploy_rollback_remove(served, tmp_path):
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1 = wat_app(tmp_path / "v1" / "greeter.wat", "greeter v1")
    v2 = wat_app(tmp_path / "v2" / "greeter.wat", "greeter v2")
    proc, s1 = deploy_json(v1)
    assert proc.returncode == 0, proc.stderr
    assert s1["changed"] and s1["status"] == 200 and s1["url"].endswith("/greeter/")
    assert get(url(served, "/greeter/")) == (200, b"greeter v1\n")
    proc, s2 = deploy_json(v2)
    assert proc.returncode == 0, proc.stderr
    assert s2["previous"] == s1["release"] and get(url(served, "/greeter/x"))[1] == b"greeter v2\n"
    proc, same = deploy_json(v2)
    assert proc.returncode == 0 and same["changed"] is False  # same bytes: nothing to do
    listed = host_result(cli("tiramisu", "apps", "--host", "box", "--json"))
    (app,) = [a for a in listed["apps"] if a["name"] == "greeter"]
    assert app["release"] == s2["release"] and app["state"] == "active" and app["requests"] >= 1
    back = cli("tiramisu", "rollback", "greeter", "--host", "box", "--json")
    assert back.returncode == 0, back.stderr
    assert host_result(back)["to"] == s1["release"]
    assert get(url(served, "/greeter/"))[1] == b"greeter v1\n"
    fwd = cli("tiramisu", "rollback", "greeter", "--host", "box", "--to", s2["release"])
    assert fwd.returncode == 0 and get(url(served, "/greeter/"))[1] == b"greeter v2\n"
    nosuch = cli("tiramisu", "rollback", "greeter", "--host", "box", "--to", "nope")
    assert "not found" in one_line_error(nosuch)
    assert "--yes" in one_line_error(cli("tiramisu", "remove", "greeter", "--host", "box"))
    rm = cli("tiramisu", "remove", "greeter", "--host", "box", "--yes", "--json")
    assert rm.returncode == 0, rm.stderr
    removed = host_result(rm)
    assert removed["app"] == "greeter" and removed["removed"] is True and removed["purged_data"] is False
    assert get(url(served, "/greeter/"))[0] == 404
    names = [a["name"] for a in host_result(cli("tiramisu", "apps", "--host", "box", "--json"))["apps"]]
    assert "greeter" not in names


def test_route_prefix(served, tmp_path):
    app = wat_app(tmp_path / "rooted.wat", "at the root")
    proc, s = deploy_json(app, "--route", "/")
    assert proc.returncode == 0, proc.stderr
    assert get(url(served, "/"))[1] == b"at the root\n"
    assert get(url(served, "/anything/else"))[1] == b"at the root\n"
    assert get(url(served, "/rooted/"))[1] == b"at the root\n"
    assert cli("tiramisu", "remove", "rooted", "--host", "box", "--yes").returncode == 0
    assert get(url(served, "/"))[0] == 404


def test_bad_module_keeps_the_old_version_serving(served, tmp_path):
    good = wat_app(tmp_path / "steady.wat", "steady v1")
    assert deploy_json(good)[0].returncode == 0
    # A module with a shared memory (the threads proposal): a valid WASI command
    # for local checks, but the box's engine runs without threads and refuses it.
    bad = tmp_path / "bad" / "steady.wat"
    bad.parent.mkdir()
    bad.write_text("""(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1 1 shared)
  (func (export "_start")))
""")
    proc = cli("tiramisu", "deploy", bad, "--host", "box")
    line = one_line_error(proc)
    assert "threads must be enabled" in line and "keeps serving" in line
    assert get(url(served, "/steady/")) == (200, b"steady v1\n")
    listed = host_result(cli("tiramisu", "apps", "--host", "box", "--json"))
    (app,) = [a for a in listed["apps"] if a["name"] == "steady"]
    assert app["state"] == "active"


def test_chained_script_stops_at_the_first_failure(served, tmp_path):
    good = wat_app(tmp_path / "chain.wat", "chain ok")
    bad = tmp_path / "broken.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    marker = tmp_path / "reached"
    script = (
        f"set -e; cd {REPO}; {BIN}/tiramisu setup --host box; "
        f"{BIN}/tiramisu deploy {bad} --host box --name chain; "
        f"{BIN}/tiramisu deploy {good} --host box; touch {marker}"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode != 0 and not marker.exists()
    assert "Traceback" not in proc.stderr
    assert get(url(served, "/chain/"))[0] == 404  # the good deploy after it never ran


def test_fab_and_inv_deploy(served, tmp_path):
    a = wat_app(tmp_path / "fronts.wat", "from fab")
    proc, s = deploy_json(a, front="fab")
    assert proc.returncode == 0, proc.stderr
    assert get(url(served, "/fronts/"))[1] == b"from fab\n"
    wat_app(a, "from inv")
    proc, s = deploy_json(a, front="inv")
    assert proc.returncode == 0, proc.stderr
    assert get(url(served, "/fronts/"))[1] == b"from inv\n"


def test_zero_failed_requests_while_deploying(served, tmp_path):
    if served.arch != "x86_64":
        pytest.skip("load runs on the x86_64 host (emulated aarch64 is too slow to load meaningfully)")
    app = tmp_path / "busy.wat"
    wat_app(app, "busy 0")
    assert deploy_json(app)[0].returncode == 0
    with Load(url(served, "/busy/"), ok=(200,)) as load:
        for i in range(1, 6):
            wat_app(app, f"busy {i}")
            proc, s = deploy_json(app)
            assert proc.returncode == 0, proc.stderr
            assert s["changed"]
    assert load.sent > 20 and load.failed == 0, load.errors[:5]
    assert get(url(served, "/busy/"))[1] == b"busy 5\n"


def _cases(example):
    from tiramisu_tasks.apps.expect import load_expected

    return load_expected(example / "expected.json")


def _request(host, app, case):
    req = case.request
    path = f"/{app}{req.path}" + (f"?{req.query}" if req.query else "")
    r = urllib.request.Request(url(host, path), data=req.body or None, method=req.method, headers=dict(req.headers))
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, list(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, list(exc.headers.items()), exc.read()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "expected.json").exists()))
def test_example_answers_through_the_server(served, example):
    from tiramisu_tasks.apps.build import build_app
    from tiramisu_tasks.apps.expect import check_response
    from tiramisu_tasks.apps.wagi import Response
    from tiramisu_tasks.errors import ToolMissing

    if served.arch != "x86_64" and example not in ("hello-c", "json-api", "hello-component"):
        pytest.skip("aarch64 runs two examples; the full set runs on x86_64")
    try:
        built = build_app(str(EXAMPLES / example))
    except ToolMissing as exc:
        pytest.skip(f"{example}: {exc.message}")
    proc = cli("tiramisu", "deploy", EXAMPLES / example, "--host", "box")
    assert proc.returncode == 0, proc.stderr
    urllib.request.install_opener(urllib.request.build_opener(_NoRedirect))
    problems = []
    for case in _cases(EXAMPLES / example):
        status, headers, body = _request(served, built.name, case)
        for p in check_response(case.expect, Response(status, headers, body)):
            problems.append(f"{case.name}: {p}")
    assert not problems, problems


def test_aot_ships_a_precompiled_module_or_says_why(served, tmp_path):
    import platform

    app = wat_app(tmp_path / "ahead.wat", "compiled ahead")
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--aot", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = host_result(proc)
    assert get(url(served, "/ahead/"))[1] == b"compiled ahead\n"
    if served.arch == platform.machine():
        assert "precompiling locally" in proc.stderr
        assert summary["code"] in ("precompiled", "cache")  # the box did not compile it
    else:
        assert f"cannot compile for {served.arch}" in proc.stderr
        assert summary["code"] in ("compiled", "cache")


def test_boot_persistence_line_starts_the_services(served):
    has_crontab = served.ssh("command -v crontab").returncode == 0
    proc = cli("tiramisu", "webserv.enable-boot", "--host", "box")
    if not has_crontab:  # the minbase arm64 root has no cron: a clear refusal
        assert "no crontab" in one_line_error(proc)
        return
    assert proc.returncode == 0, proc.stderr
    assert cli("tiramisu", "webserv.enable-boot", "--host", "box").returncode == 0  # idempotent
    lines = [ln for ln in served.ssh("crontab -ln", check=True).stdout.splitlines() if "# tiramisu:" in ln]
    assert len(lines) == 1 and lines[0].startswith("@reboot ")
    # What cron would run at boot, run now with the services stopped: they come up.
    assert cli("tiramisu", "webserv.stop", "--host", "box").returncode == 0
    command = lines[0][len("@reboot ") :].rsplit(" # tiramisu:", 1)[0]
    served.ssh(command, check=True)
    import time

    deadline = time.monotonic() + 60
    while _health(served) != 200:
        assert time.monotonic() < deadline, "services did not come up from the @reboot line"
        time.sleep(0.5)
    status = host_result(cli("tiramisu", "webserv.status", "--host", "box", "--json"))
    assert status["healthy"]
    assert cli("tiramisu", "webserv.disable-boot", "--host", "box").returncode == 0
    assert "# tiramisu:" not in served.ssh("crontab -l 2>/dev/null; true").stdout


def _health(host):
    try:
        return get(url(host, "/.well-known/tiramisu/health"), timeout=2)[0]
    except Exception:  # noqa: BLE001 - not up yet
        return None
