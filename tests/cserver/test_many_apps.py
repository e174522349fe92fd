"""The real custom_server with many apps (issue 16: a thousand apps on one box).

What a thousand apps need from the server: a name lookup that does not depend
on the number of apps, a full rescan (SIGHUP, the deploy's "make sure") that
finds every added, changed and removed module, one app's admin record without
the whole list, and more app names than the old limit of 1,024.
"""

import json
import os
import signal
import time

from tests.fixtures.server import install_module, sha256_bytes


def _all_active(srv, names, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        apps = {a["name"]: a for a in srv.apps()["apps"]}
        if set(apps) == set(names) and all(a["state"] == "active" for a in apps.values()):
            return apps
        time.sleep(0.05)
    raise AssertionError(f"not all of {len(names)} apps active: {sorted(set(names) ^ set(apps))[:10]}")


def test_many_apps_route_and_rescan_finds_every_change(run_server, text_module, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    names = [f"app{i:03d}" for i in range(300)]
    for n in names:
        (mods / f"{n}.wasm").write_bytes(text_module(n))
    srv = run_server(mods)
    _all_active(srv, names)
    for n in ("app000", "app150", "app299"):
        assert srv.get(f"/{n}/x")[2] == f"{n}\n".encode()
    assert srv.get("/app300")[0] == 404

    # Changes behind the server's back, then one SIGHUP: the rescan alone must find them.
    srv.signal(signal.SIGSTOP)  # no inotify event is read while stopped; the rescan catches up
    try:
        for n in ("app001", "app002"):
            os.unlink(mods / f"{n}.wasm")
        install_module(mods, "new1", text_module("new1"))
        changed = text_module("app003 v2")
        install_module(mods, "app003", changed)
    finally:
        srv.signal(signal.SIGCONT)
    srv.signal(signal.SIGHUP)
    want = [n for n in names if n not in ("app001", "app002")] + ["new1"]
    apps = _all_active(srv, want)
    assert apps["app003"]["sha256"] == sha256_bytes(changed)
    assert srv.get("/app001")[0] == 404 and srv.get("/new1")[2] == b"new1\n"
    assert srv.get("/app003")[2] == b"app003 v2\n"


def test_one_apps_record(run_server, text_module, tmp_path):
    mods = tmp_path / "mods"
    mods.mkdir()
    for n in ("alpha", "beta", "gamma"):
        install_module(mods, n, text_module(n))
    srv = run_server(mods)
    srv.wait_app("beta")
    status, _, body = srv.get("/_tiramisu/apps/beta")
    doc = json.loads(body)
    assert status == 200 and [a["name"] for a in doc["apps"]] == ["beta"]
    assert doc["apps"][0]["state"] == "active" and doc["apps"][0]["sha256"] == srv.app("beta")["sha256"]
    assert doc["server"]["pid"] and "routes" in doc and doc["previews"] == []
    # an app it does not have: an empty list, as deploy expects of an app never deployed
    status, _, body = srv.get("/_tiramisu/apps/nosuch")
    assert status == 200 and json.loads(body)["apps"] == []
    # only one path segment; anything deeper is no admin endpoint
    assert srv.get("/_tiramisu/apps/beta/x")[0] == 404


def test_more_app_names_than_1024_over_time(run_server, text_module, tmp_path):
    """Names once seen keep their slot (requests may hold them): 1,100 names come and go."""
    mods = tmp_path / "mods"
    mods.mkdir()
    srv = run_server(mods)
    data = text_module("x")
    for batch in range(11):
        for f in mods.glob("*.wasm"):
            f.unlink()
        for i in range(100):
            (mods / f"b{batch}x{i}.wasm").write_bytes(data)
        srv.signal(signal.SIGHUP)
    last = [f"b10x{i}" for i in range(100)]
    _all_active(srv, last, timeout=120)
    assert srv.get("/b10x99")[2] == b"x\n"
