"""On real hosts (x86_64 and aarch64): a WAGI module map and a tiramisu.toml app deployed with `tiramisu deploy DIR`.

The module map runs as WAGI would (exact, wildcard and root routes, entry
points, `_routes` sub-routes, a volume that is the app's data folder); the
manifest app gets its environment, a secret (never in any output or log),
read-only templates and a data folder that survives a redeploy; a bad
manifest is refused before anything changes and the old release keeps serving.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.helpers import REPO, cli, host_result, one_line_error
from tests.integration.test_lifecycle import get

pytestmark = pytest.mark.slow
GUEST = REPO / "tests" / "cserver" / "guests" / "wagimap.c"
HELLO_WAT = """(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\\n\\nroot\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const 31))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""
SECRET = "s3cret-value-9f1c"


@pytest.fixture(scope="module")
def served(any_host, tmp_path_factory):
    x86_host = any_host  # both arches (aarch64 under qemu-user)
    home = tmp_path_factory.mktemp(f"appmanifest-{any_host.arch}")
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(home / "tiramisu.yaml")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    x86_host.register(home / "tiramisu.yaml", "box")
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    yield x86_host
    cli("tiramisu", "teardown", "--host", "box", "--yes")
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def wagimap_wasm(tmp_path_factory):
    out = tmp_path_factory.mktemp("guest") / "wagimap.wasm"
    cc = [sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-wasi", "-Os", "-s"]
    subprocess.run(cc + [str(GUEST), "-o", str(out)], check=True, capture_output=True)
    return out


def url(host, path):
    return f"http://{host.hostname}:8080{path}"


def fields(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)


def test_wagi_module_map_deploys_unchanged(served, wagimap_wasm, tmp_path):
    app = tmp_path / "wagi-demo"
    (app / "bin").mkdir(parents=True)
    (app / "files").mkdir()
    (app / "files" / "log.txt").write_text("seeded\n")
    shutil.copy(wagimap_wasm, app / "bin" / "handlers.wasm")
    (app / "root.wat").write_text(HELLO_WAT)
    (app / "modules.toml").write_text(
        '[[module]]\nroute = "/"\nmodule = "root.wat"\n\n'
        '[[module]]\nroute = "/ex"\nmodule = "file:bin/handlers.wasm"\n\n'
        '[[module]]\nroute = "/bye"\nmodule = "bin/handlers.wasm"\nentrypoint = "goodbye"\n'
        'environment.GREETING = "from the map"\n\n'
        '[[module]]\nroute = "/files/..."\nmodule = "bin/handlers.wasm"\nvolumes = { "/data" = "files" }\n'
    )
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = host_result(proc)
    assert summary["app"] == "wagi-demo" and summary["kind"] == "modulemap"
    assert get(url(served, "/")) == (200, b"root\n")
    f = fields(get(url(served, "/ex"))[1])
    assert f["handler"] == "main" and f["X_MATCHED_ROUTE"] == "/ex"
    assert fields(get(url(served, "/ex/hello"))[1])["handler"] == "hello"  # from _routes
    f = fields(get(url(served, "/ex/goodbye/a/b"))[1])
    assert (f["handler"], f["SCRIPT_NAME"], f["PATH_INFO"]) == ("goodbye", "/ex/goodbye", "/a/b")
    f = fields(get(url(served, "/bye"))[1])
    assert f["handler"] == "goodbye" and f["GREETING"] == "from the map"
    assert get(url(served, "/ex/nothing"))[0] == 404
    assert get(url(served, "/files?read=/data/log.txt"))[1].endswith(b"read: seeded\n")
    assert b"write: ok" in get(url(served, "/files?write=kept"))[1]
    # a redeploy keeps the data folder as the app left it
    (app / "files" / "log.txt").write_text("local change\n")
    proc = cli("tiramisu", "deploy", app, "--host", "box")
    assert proc.returncode == 0, proc.stderr
    assert get(url(served, "/files?read=/data/log.txt"))[1].endswith(b"read: seeded\nkept\n")


def test_manifest_app_env_secret_volumes(served, wagimap_wasm, tmp_path):
    app = tmp_path / "gb"
    (app / "templates").mkdir(parents=True)
    (app / "templates" / "page.html").write_text("<h1>{{entries}}</h1>\n")
    shutil.copy(wagimap_wasm, app / "app.wasm")
    (app / "tiramisu.toml").write_text(
        '[app]\nname = "gb"\n\n[build]\nmodule = "app.wasm"\n\n'
        '[[route]]\npath = "/gb/..."\n\n'
        '[[route]]\npath = "/gb/admin"\nentrypoint = "goodbye"\nenvironment = { MODE = "admin" }\n\n'
        '[environment]\nGREETING = "Hello"\n\n[secrets]\nADMIN_TOKEN = "GB_TEST_TOKEN"\n\n'
        '[[volume]]\nsource = "templates"\nguest = "/templates"\n\n'
        '[[volume]]\nguest = "/data"\nwritable = true\n\n'
        '[health]\npath = "/gb/"\nbody = "handler=main"\n'
    )
    env = {"GB_TEST_TOKEN": SECRET}
    missing = cli("tiramisu", "deploy", app, "--host", "box")
    assert missing.returncode == 2 and "GB_TEST_TOKEN" in one_line_error(missing)
    dry = cli("tiramisu", "deploy", app, "--host", "box", "--dry", "--json", env=env)
    assert dry.returncode == 0, dry.stderr
    assert SECRET not in dry.stdout + dry.stderr and '"ADMIN_TOKEN": "***"' in dry.stdout
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    f = fields(get(url(served, "/gb/"))[1])
    assert (f["GREETING"], f["ADMIN_TOKEN"], f["MODE"]) == ("Hello", SECRET, "(unset)")
    assert fields(get(url(served, "/gb/admin"))[1])["MODE"] == "admin"
    assert b"read: <h1>" in get(url(served, "/gb/x?read=/templates/page.html"))[1]
    assert b"write: ok" in get(url(served, "/gb/x?write=entry1"))[1]
    listing = cli("tiramisu", "env", "gb", "--host", "box", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = {e["name"]: e["value"] for e in host_result(listing)["env"]}
    assert rows == {"GREETING": "Hello", "MODE": "admin", "ADMIN_TOKEN": "***"}
    # redeploy: the data folder keeps what the app wrote
    (app / "templates" / "page.html").write_text("<h2>v2</h2>\n")
    proc = cli("tiramisu", "deploy", app, "--host", "box", env=env)
    assert proc.returncode == 0, proc.stderr
    assert b"read: entry1\n" in get(url(served, "/gb/x?read=/data/log.txt"))[1]
    assert b"read: <h2>v2" in get(url(served, "/gb/x?read=/templates/page.html"))[1]
    # rollback: the previous bundle's templates again, the data as the app left it
    back = cli("tiramisu", "rollback", "gb", "--host", "box")
    assert back.returncode == 0, back.stderr
    assert b"read: <h1>" in get(url(served, "/gb/x?read=/templates/page.html"))[1]
    assert b"read: entry1\n" in get(url(served, "/gb/x?read=/data/log.txt"))[1]
    logs = served.ssh("cat ~/tiramisu-env/logs/*.log ~/tiramisu-env/logs/apps/*.log 2>/dev/null; true")
    assert SECRET not in logs.stdout
    perms = served.ssh(
        "stat -c %a ~/tiramisu-env/secrets/gb/*.env | sort -u; grep -rl " + SECRET + " ~/tiramisu-env/releases; true"
    )
    assert perms.stdout.split() == ["600"]  # 0600 (one file per release), and no release holds it
    # a bad manifest is refused before anything changes; the release keeps serving
    (app / "tiramisu.toml").write_text('[app]\nname = "gb"\n\n[[route]]\npath = "/_tiramisu/x"\n')
    bad = cli("tiramisu", "deploy", app, "--host", "box", env=env)
    assert bad.returncode == 2 and "tiramisu.toml:5: route.path" in one_line_error(bad)
    assert fields(get(url(served, "/gb/"))[1])["GREETING"] == "Hello"


EXAMPLES = REPO / "wasm_examples"


def request(url_, data=None, headers=None):
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None

    req = urllib.request.Request(url_, data=data, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=20) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_wagi_map_example(served):
    # "/" is wagi-demo's (first test): a second app may not claim it; nothing changes
    proc = cli("tiramisu", "deploy", EXAMPLES / "wagi-map", "--host", "box")
    assert proc.returncode == 2 and "route / is already served by app wagi-demo" in one_line_error(proc)
    assert get(url(served, "/")) == (200, b"root\n")
    proc = cli("tiramisu", "remove", "wagi-demo", "--host", "box", "--yes", "--purge-data")
    assert proc.returncode == 0, proc.stderr
    assert get(url(served, "/ex"))[0] == 404
    assert served.ssh("test -e ~/tiramisu-env/data/wagi-demo && echo left; true").stdout.strip() == ""
    proc = cli("tiramisu", "deploy", EXAMPLES / "wagi-map", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    assert b"<h1>wagi-map</h1>" in get(url(served, "/"))[1]
    assert get(url(served, "/hello/x/y")) == (200, b"hello handler\n")
    assert get(url(served, "/bye")) == (200, b"goodbye handler\n")
    assert get(url(served, "/api")) == (200, b"main handler (_start)\n")
    assert get(url(served, "/api/hello")) == (200, b"hello handler\n")
    assert get(url(served, "/api/goodbye/a/b")) == (200, b"goodbye handler\n")
    assert get(url(served, "/api/other"))[0] == 404
    assert get(url(served, "/bye/x"))[0] == 404


def test_one_name_one_kind_and_static_files_take_no_other_apps_routes(served, tmp_path):
    # a single module may not replace the module-map app of the same name; nothing changes
    (tmp_path / "wagi-map.wat").write_text(HELLO_WAT)
    proc = cli("tiramisu", "deploy", tmp_path / "wagi-map.wat", "--host", "box")
    assert proc.returncode == 2 and "is an app with a manifest or module map" in one_line_error(proc)
    assert get(url(served, "/hello/x/y")) == (200, b"hello handler\n")
    # nor a manifest the single-module app of the same name
    (tmp_path / "plainy.wat").write_text(HELLO_WAT)
    proc = cli("tiramisu", "deploy", tmp_path / "plainy.wat", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    app = tmp_path / "plainy"
    (app / "static").mkdir(parents=True)
    (app / "static" / "index.html").write_text("<p>static</p>\n")
    (app / "m.wat").write_text(HELLO_WAT)
    (app / "tiramisu.toml").write_text(
        '[app]\nname = "plainy"\n[build]\nmodule = "m.wat"\n[[route]]\npath = "/plainy-two"\n'
    )
    proc = cli("tiramisu", "deploy", app, "--host", "box")
    assert proc.returncode == 2 and "plainy on box is a single-module app" in one_line_error(proc)
    assert get(url(served, "/plainy/")) == (200, b"root\n")
    # static files may not take over another app's routes (a plain app's /APP, a map's routes)
    for taken, owner in (("/plainy", "plainy"), ("/hello", "wagi-map")):
        (app / "tiramisu.toml").write_text(
            '[app]\nname = "stapp"\n[build]\nmodule = "m.wat"\n[[route]]\npath = "/stapp"\n'
            f'[static]\nfolder = "static"\nroute = "{taken}"\n'
        )
        proc = cli("tiramisu", "deploy", app, "--host", "box")
        assert proc.returncode == 2 and f"is already served by app {owner}" in one_line_error(proc), proc.stderr
    assert get(url(served, "/plainy/")) == (200, b"root\n")
    assert get(url(served, "/hello/x/y")) == (200, b"hello handler\n")
    assert get(url(served, "/stapp"))[0] == 404
    assert cli("tiramisu", "remove", "plainy", "--host", "box", "--yes").returncode == 0


SECRET_V1, SECRET_V2 = "gate-secret-one-4d2a", "gate-secret-two-7be9"


def _gate_app(folder, wasm, greeting, static_text):
    (folder / "static").mkdir(parents=True, exist_ok=True)
    (folder / "static" / "v.txt").write_text(static_text)
    shutil.copy(wasm, folder / "app.wasm")
    (folder / "tiramisu.toml").write_text(
        '[app]\nname = "sg"\n\n[build]\nmodule = "app.wasm"\n\n[[route]]\npath = "/sg/..."\n\n'
        f'[environment]\nGREETING = "{greeting}"\n\n[secrets]\nADMIN_TOKEN = "SG_TOKEN"\n\n'
        '[static]\nfolder = "static"\nroute = "/sg-static/"\n\n[health]\npath = "/sg/"\nbody = "handler=main"\n'
    )


def _live_state(host):
    """(body of /sg/, static file, live module sha256) as a client and the box see them."""
    module = host.ssh("sha256sum ~/tiramisu-env/wasm_modules/sg.sg.wasm | cut -c1-64").stdout.strip()
    return get(url(host, "/sg/"))[1], get(url(host, "/sg-static/v.txt"))[1], module


def test_manifest_health_gate_history_rollback(served, wagimap_wasm, tmp_path):
    import hashlib

    app = tmp_path / "sg"
    v2_wasm = tmp_path / "wagimap-v2.wasm"  # same behaviour, other bytes (a custom section): a module change
    name = b"tiramisu-test-v2"
    v2_wasm.write_bytes(wagimap_wasm.read_bytes() + bytes([0, len(name) + 1, len(name)]) + name)
    _gate_app(app, wagimap_wasm, "one", "static one\n")
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--json", env={"SG_TOKEN": SECRET_V1})
    assert proc.returncode == 0, proc.stderr
    v1 = host_result(proc)
    assert v1["health"]["preview"]["ok"] and v1["health"]["live"]["ok"]
    before = _live_state(served)
    f = fields(before[0])
    assert (f["GREETING"], f["ADMIN_TOKEN"]) == ("one", SECRET_V1) and before[1] == b"static one\n"
    assert before[2] == hashlib.sha256(wagimap_wasm.read_bytes()).hexdigest()

    # v2 fails its check on the preview: nothing switched (modules, map, secrets, static: same bytes)
    _gate_app(app, v2_wasm, "two", "static two\n")
    outputs = []
    for flags in (["--health-path", "/not-a-route"], ["--health-body", "not in the answer"]):
        bad = cli("tiramisu", "deploy", app, "--host", "box", *flags, env={"SG_TOKEN": SECRET_V2})
        outputs.append(bad.stdout + bad.stderr)
        assert bad.returncode == 1, bad.stderr
        assert "failed its health check before going live" in one_line_error(bad)
        assert f"release {v1['release']} keeps serving" in one_line_error(bad)
        assert _live_state(served) == before
    # the server's own gate on the box: the preview folder is empty again
    assert served.ssh("ls -A ~/tiramisu-env/wasm_modules/.preview").stdout.strip() == ""

    # a good v2: new module, environment, secret and static files together
    proc = cli("tiramisu", "deploy", app, "--host", "box", "--json", "--keep-release", env={"SG_TOKEN": SECRET_V2})
    assert proc.returncode == 0, proc.stderr
    v2 = host_result(proc)
    body, static, module = _live_state(served)
    f = fields(body)
    assert (f["GREETING"], f["ADMIN_TOKEN"], static) == ("two", SECRET_V2, b"static two\n")
    assert module == hashlib.sha256(v2_wasm.read_bytes()).hexdigest()

    # history: every attempt of sg, no secret value in it, the CLI output or the box's history file
    hist = cli("tiramisu", "history", "sg", "--host", "box", "--json")
    assert hist.returncode == 0, hist.stderr
    records = host_result(hist)["records"]
    assert [(r["action"], r["result"]) for r in records] == [
        ("deploy", "ok"),
        ("deploy", "failed"),
        ("deploy", "failed"),
        ("deploy", "ok"),
    ]
    assert records[0]["release"] == v1["release"] and records[-1]["release"] == v2["release"]
    assert records[-1]["previous"] == v1["release"]
    text = cli("tiramisu", "history", "sg", "--host", "box")
    outputs += [hist.stdout + hist.stderr, text.stdout + text.stderr, proc.stdout + proc.stderr]
    remote = served.ssh(
        "cat ~/tiramisu-env/state/history.jsonl; cat ~/tiramisu-env/logs/*.log ~/tiramisu-env/logs/apps/*.log; "
        "grep -rl -e " + SECRET_V1 + " -e " + SECRET_V2 + " ~/tiramisu-env/releases ~/tiramisu-env/state "
        "~/tiramisu-env/wasm_modules ~/tiramisu-env/conf; true"
    )
    for out in outputs + [remote.stdout]:
        assert SECRET_V1 not in out and SECRET_V2 not in out

    # rollback: v1's module, map, secret and static files again
    back = cli("tiramisu", "rollback", "sg", "--host", "box")
    assert back.returncode == 0, back.stderr
    assert _live_state(served) == before
    assert fields(get(url(served, "/sg/"))[1])["ADMIN_TOKEN"] == SECRET_V1
    last = cli("tiramisu", "history", "sg", "--host", "box", "--json")
    assert host_result(last)["records"][-1]["action"] == "rollback"
    assert cli("tiramisu", "remove", "sg", "--host", "box", "--yes", "--purge-data").returncode == 0
    assert served.ssh("ls ~/tiramisu-env/secrets/sg 2>/dev/null; true").stdout.strip() == ""


def test_guestbook_example(served):
    env = {"GUESTBOOK_ADMIN_TOKEN": SECRET}
    proc = cli("tiramisu", "deploy", EXAMPLES / "guestbook", "--host", "box", env=env)
    assert proc.returncode == 0, proc.stderr
    status, _, body = request(url(served, "/guestbook/"))
    assert status == 200 and b"Welcome! Leave a note." in body and b"<b>Ada</b>: First!" in body
    status, headers, _ = request(url(served, "/guestbook/"), data=b"name=Bo&message=hi+%3Cthere%3E")
    assert status == 303 and headers["Location"] == "/guestbook/"
    assert b"<b>Bo</b>: hi &lt;there&gt;" in request(url(served, "/guestbook/"))[2]
    assert request(url(served, "/guestbook/admin"))[0] == 403
    status, _, body = request(url(served, "/guestbook/admin"), headers={"X-Admin-Token": SECRET})
    assert status == 200 and json.loads(body) == {"entries": 2}
    # static files: nginx, with validators, cache policy, gzip, custom 404
    status, headers, body = request(url(served, "/guestbook/static/style.css"), headers={"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    assert headers["Cache-Control"] == "public, max-age=600" and "ETag" in headers and "Last-Modified" in headers
    assert headers.get("Content-Encoding") == "gzip"
    status, _, _ = request(url(served, "/guestbook/static/style.css"), headers={"If-None-Match": headers["ETag"]})
    assert status == 304
    status, _, body = request(url(served, "/guestbook/static/nope.css"))
    assert status == 404 and b"No such file in the guestbook" in body
    # redeploy keeps the entries
    proc = cli("tiramisu", "deploy", EXAMPLES / "guestbook", "--host", "box", env=env)
    assert proc.returncode == 0, proc.stderr
    assert b"<b>Bo</b>" in request(url(served, "/guestbook/"))[2]
    # remove: routes, static files and map go; the data stays unless --purge-data
    proc = cli("tiramisu", "remove", "guestbook", "--host", "box", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert request(url(served, "/guestbook/"))[0] == 404
    assert request(url(served, "/guestbook/static/style.css"))[0] == 404
    assert "Bo\thi <there>" in served.ssh("cat ~/tiramisu-env/data/guestbook/data/entries.txt").stdout
