"""Fifty apps on a real box (issue 16: a thousand apps): `apps` lists every one
with its release, a restart brings every one back from the compiled cache, and
a real deploy among them works.

Forty-nine apps are put in place the way deploy leaves them (a release file,
its CURRENT, a hard link renamed into wasm_modules/), written into the test
host's home from here: fifty CLI deploys would take minutes on this machine.
One more app goes through `tiramisu deploy`.
"""

import hashlib
import os
import pwd
from pathlib import Path

import pytest

from tests.helpers import cli, host_result
from tests.integration.test_deploy import wat_app
from tests.integration.test_lifecycle import get
from tiramisu_tasks.plans import release_id

pytestmark = pytest.mark.slow


def _text_module(text):
    import wasmtime

    body = f"Content-Type: text/plain\n\n{text}\n"
    data = body.replace("\n", "\\n")
    return wasmtime.wat2wasm(f"""(module
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{data}")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (i32.const {len(body)}))
    (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))""")


def _install(host, apps):
    """{name: bytes} as deploy leaves them; {name: (release id, sha256)}."""
    pw = pwd.getpwnam(host.user)
    root = Path(host.home) / "tiramisu-env"
    out = {}
    for name, data in apps.items():
        sha = hashlib.sha256(data).hexdigest()
        rid = release_id(sha)
        d = root / "releases" / name
        d.mkdir(mode=0o700)
        rel = d / f"{rid}.wasm"
        rel.write_bytes(data)
        (d / "CURRENT").write_text(rid + "\n")
        for p in (d, rel, d / "CURRENT"):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        tmp = root / "wasm_modules" / f".{name}.wasm.tiramisu-new"
        os.link(rel, tmp)
        os.replace(tmp, root / "wasm_modules" / f"{name}.wasm")
        out[name] = (rid, sha)
    return out


def _apps_json():
    proc = cli("tiramisu", "apps", "--host", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    return {a["name"]: a for a in host_result(proc)["apps"]}


def _until_all_active(want, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while True:
        apps = _apps_json()
        if set(apps) == set(want) and all(a["state"] == "active" for a in apps.values()):
            return apps
        assert time.monotonic() < deadline, {n: a["state"] for n, a in apps.items() if a["state"] != "active"}
        time.sleep(0.5)


def test_fifty_apps_listed_restarted_and_deployed(x86_host, tmp_inventory, tmp_path):
    host = x86_host
    host.register(tmp_inventory, "box")
    try:
        setup = cli("tiramisu", "setup", "--host", "box", "--json")
        assert setup.returncode == 0, setup.stderr
        placed = _install(host, {f"many{i:02d}": _text_module(f"many {i}") for i in range(49)})
        app = wat_app(tmp_path / "deployed.wat", "deployed among many")
        dep = cli("tiramisu", "deploy", app, "--host", "box", "--json")
        assert dep.returncode == 0, dep.stderr
        deployed = host_result(dep)

        apps = _until_all_active([*placed, "deployed"])
        for name, (rid, sha) in placed.items():
            assert (apps[name]["release"], apps[name]["sha256"]) == (rid, sha), name
            assert apps[name]["routes"] == [f"/{name}"]
        assert apps["deployed"]["release"] == deployed["release"]
        table = cli("tiramisu", "apps", "--host", "box")
        assert table.returncode == 0, table.stderr
        rows = table.stdout.strip().splitlines()
        assert rows[0].split()[:2] == ["APP", "ROUTES"] and len(rows) == 51
        assert any(r.split()[0] == "many07" and rid in r for r in rows for rid in [placed["many07"][0]])

        pid_before = host.ssh("cat ~/tiramisu-env/run/server.pid").stdout.strip()
        restart = cli("tiramisu", "webserv.restart", "--host", "box")
        assert restart.returncode == 0, restart.stderr
        assert host.ssh("cat ~/tiramisu-env/run/server.pid").stdout.strip() != pid_before
        after = _until_all_active(apps, timeout=30)
        assert {n: a["sha256"] for n, a in after.items()} == {n: a["sha256"] for n, a in apps.items()}
        # every module came back from the compiled cache (the server log's load lines), none compiled again
        log = host.ssh("cat ~/tiramisu-env/logs/server.log", check=True).stdout
        restarted = [line for line in log.splitlines() if ": loaded " in line][-50:]
        assert len(restarted) == 50 and all("(from cache in" in line for line in restarted), restarted[-3:]
        for name in ("many00", "many48"):
            assert get(f"http://{host.hostname}:8080/{name}") == (200, f"many {int(name[4:])}\n".encode())
        assert get(f"http://{host.hostname}:8080/deployed/") == (200, b"deployed among many\n")
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
