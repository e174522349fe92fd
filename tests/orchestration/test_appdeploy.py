"""deploy of a tiramisu.toml app over a FakeBox: the order of effects, secrets never in a command,
nothing on the box touched when the app is refused, a rejected module never gets its map live."""

import json

import pytest

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


def script_box(fake, other_maps=""):
    fake.on(r"for f in \*\.map", other_maps)
    fake.on(r"^mkdir -p -m 700 ")
    fake.on(r"tar -xf ")
    fake.on(r"\{ ln -f ")
    fake.on(r"kill -HUP|custom_server")
    fake.on(r"conf/apps")
    fake.on(r"CURRENT")
    fake.on(r"ls -1d \*\.d")


def test_order_of_effects_and_no_secret_in_any_command(fake, open_fake, spec, monkeypatch):
    from tests.orchestration.test_app_gate import SimMaps

    SimMaps(fake, monkeypatch)
    fake.on(r"^test -f .*nginx\.conf")
    fake.on(r"conf/apps")
    fake.on(r"^ln -sfn ")
    box = open_fake()
    fake.on_http("/gb/static/a.css", 200, "body{}", port=8080)
    summary = ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert summary["secrets"] == {"TOKEN": "***"} and SECRET not in json.dumps(summary)
    assert all(SECRET not in c for c in fake.commands)
    (batch,) = fake.uploads
    remotes = [f["remote"] for f in batch["files"]]
    rid = summary["release"]
    assert remotes == [f"{ROOT}/releases/gb/{rid}.d.tar", f"{ROOT}/secrets/gb/{rid}.env"]
    cmds = fake.commands
    preview_at = next(i for i, c in enumerate(cmds) if ".preview" in c and "gb.gb.wasm" in c)
    module_at = next(i for i, c in enumerate(cmds) if "for f in *.wasm" in c)
    map_at = next(i for i, c in enumerate(cmds) if "wasm_modules/gb.map" in c and "ln -f" in c)
    nginx_at = next(i for i, c in enumerate(cmds) if "conf/apps" in c and "nginx" in c and "test -f" not in c)
    link_at = next(i for i, c in enumerate(cmds) if "static-live" in c)
    assert preview_at < module_at < map_at < link_at < nginx_at


def test_missing_secret_or_route_clash_changes_nothing(fake, open_fake, spec):
    with pytest.raises(UsageError, match="GB_T is not set"):
        ad.deploy_app(None, spec, environ={})
    script_box(fake, other_maps="==tiramisu-map== other\ntiramisu-appmap 1\nroute\t/gb/...\tother.x\t_start\n")
    box = open_fake()
    with pytest.raises(UsageError, match=r"route /gb/\.\.\. is already served by app other"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert fake.uploads == [] and not fake.ran(r"ln -f|tar -xf|mv -f")


def test_rejected_module_never_goes_live(fake, open_fake, spec, monkeypatch):
    from tests.orchestration.test_app_gate import SimMaps

    sim = SimMaps(fake, monkeypatch)
    bad = {"name": "gb.gb", "sha256": None, "state": "failed", "error": "link failed: x"}
    real = sim.apps
    sim.apps = lambda: {**real(), "previews": [dict(bad, file_sha256=sim.preview_mod)] if sim.preview_mod else []}
    box = open_fake()
    with pytest.raises(RemoteError, match="rejected the new gb.gb module: link failed"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert not fake.ran(r"wasm_modules/gb\.map|for f in \*\.wasm|CURRENT\.new") and fake.ran(r"\.failed")
