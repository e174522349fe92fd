"""deploy of a tiramisu.toml app over a FakeBox: the order of effects, secrets never in a command,
nothing on the box touched when the app is refused, a rejected module never gets its map live."""

import json

import pytest

from tests.fakebox import http_response
from tests.orchestration.conftest import ROOT
from tiramisu_tasks import appdeploy as ad
from tiramisu_tasks.apps.manifest import parse_manifest
from tiramisu_tasks.errors import RemoteError, UsageError

SECRET = "very-secret-value"
WAT = '(module (func (export "_start")))'


@pytest.fixture
def spec(tmp_path):
    folder = tmp_path / "gb"
    (folder / "static").mkdir(parents=True)
    (folder / "static" / "a.css").write_text("body{}")
    (folder / "app.wat").write_text(WAT)
    (folder / "tiramisu.toml").write_text(
        '[app]\nname = "gb"\n[build]\nmodule = "app.wat"\n[secrets]\nTOKEN = "GB_T"\n'
        '[[volume]]\nguest = "/data"\nwritable = true\n[static]\nfolder = "static"\n'
        '[health]\npath = "/gb/"\nbody = "ok"\n'
    )
    return parse_manifest(folder / "tiramisu.toml")


def apps(*records):
    return http_response(200, {"apps": list(records)})


def script_box(fake, other_maps=""):
    fake.on(r"for f in \*\.map", other_maps)
    fake.on(r"^mkdir -p -m 700 ")
    fake.on(r"tar -xf ")
    fake.on(r"\{ ln -f ")
    fake.on(r"kill -HUP|custom_server")
    fake.on(r"conf/apps")
    fake.on(r"CURRENT")
    fake.on(r"ls -1d \*\.d")


def test_order_of_effects_and_no_secret_in_any_command(fake, open_fake, spec):
    script_box(fake)
    box = open_fake()

    fake.on_http("/_tiramisu/apps", reply=lambda _port, _path: apps(*_live(fake)))
    fake.on_http("/gb/", 200, "ok page", port=8080)
    fake.on_http("/gb/static/a.css", 200, "body{}", port=8080)
    summary = ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert summary["secrets"] == {"TOKEN": "***"} and SECRET not in json.dumps(summary)
    assert all(SECRET not in c for c in fake.commands)
    (batch,) = fake.uploads
    remotes = [f["remote"] for f in batch["files"]]
    assert remotes == [f"{ROOT}/releases/gb/{summary['release']}.d.tar", f"{ROOT}/secrets/gb.env.new"]
    # the modules go live in one command (commands.switch_bundle_modules: every modules/*.wasm)
    switch = f"{summary['release']}.d/modules && for f in *.wasm"
    order = [i for i, c in enumerate(fake.commands) if switch in c or "gb.map" in c or "conf/apps" in c]
    module_at, map_at, nginx_at = (
        next(i for i in order if switch in fake.commands[i]),
        next(i for i in order if "gb.map" in fake.commands[i] and "ln -f" in fake.commands[i]),
        next(i for i in order if "conf/apps" in fake.commands[i]),
    )
    assert module_at < map_at < nginx_at


def _live(fake):
    """The server lists gb.gb with the sha of the module the box received (from the tar upload)."""
    import hashlib

    import wasmtime

    return [{"name": "gb.gb", "sha256": hashlib.sha256(wasmtime.wat2wasm(WAT)).hexdigest(), "state": "active"}]


def test_missing_secret_or_route_clash_changes_nothing(fake, open_fake, spec):
    with pytest.raises(UsageError, match="GB_T is not set"):
        ad.deploy_app(None, spec, environ={})
    script_box(fake, other_maps="==tiramisu-map== other\ntiramisu-appmap 1\nroute\t/gb/...\tother.x\t_start\n")
    box = open_fake()
    with pytest.raises(UsageError, match=r"route /gb/\.\.\. is already served by app other"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert fake.uploads == [] and not fake.ran(r"ln -f|tar -xf|mv -f")


def test_rejected_module_never_gets_its_map(fake, open_fake, spec):
    script_box(fake)
    box = open_fake()
    bad = {"name": "gb.gb", "sha256": None, "state": "failed", "error": "link failed: x", "failed_sha256": None}

    def answer(_port, _path):
        rec = dict(bad, failed_sha256=_live(fake)[0]["sha256"])
        return apps(rec)

    fake.on_http("/_tiramisu/apps", reply=answer)
    with pytest.raises(RemoteError, match="rejected the new gb.gb module: link failed"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert not fake.ran(r"gb\.map")
