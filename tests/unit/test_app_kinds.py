"""One app, one kind: a plain app and a manifest/module-map app of the same name
are refused before anything changes, and static files may not take over another
app's routes (pure parts, and the box commands in a real sh)."""

import subprocess
from pathlib import Path
from types import SimpleNamespace

from tiramisu_tasks import appdeploy as ad
from tiramisu_tasks import commands as cmd
from tiramisu_tasks.layout import RemoteLayout


def sh(command):
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


def test_prepare_marks_an_app_with_a_map(tmp_path):
    layout = RemoteLayout(str(tmp_path / "env"))
    Path(layout.modules).mkdir(parents=True)
    (Path(layout.app_releases("hello"))).mkdir(parents=True)
    (Path(layout.app_releases("hello")) / "CURRENT").write_text("R1\n")
    out = sh(cmd.prepare_release(layout, "hello")).stdout
    assert not cmd.prepare_saw_app_map(out) and cmd.parse_prepare(out)[0] == "R1"
    (Path(layout.modules) / "hello.map").write_text("tiramisu-appmap 1\n")
    out = sh(cmd.prepare_release(layout, "hello")).stdout
    assert cmd.prepare_saw_app_map(out) and cmd.parse_prepare(out)[0] == "R1"
    assert not cmd.prepare_saw_app_map(sh(cmd.prepare_release(layout, "other")).stdout)


def test_dump_lists_plain_apps_and_maps(tmp_path):
    layout = RemoteLayout(str(tmp_path / "env dir"))
    mods = Path(layout.modules)
    mods.mkdir(parents=True)
    for name in ("hello.wasm", "gb.main.wasm", "gb.api.wasm", "x_y-2.wasm"):
        (mods / name).write_bytes(b"\0asm")
    (mods / "gb.map").write_text("tiramisu-appmap 1\nroute\t/gb/...\tgb.main\t_start\n")
    out = sh(cmd.dump_app_maps(layout)).stdout
    assert ad.parse_plain_dump(out) == {"hello", "x_y-2"}
    assert ad.parse_maps_dump(out) == {"gb": "tiramisu-appmap 1\nroute\t/gb/...\tgb.main\t_start\n\n"}
    empty = sh(cmd.dump_app_maps(RemoteLayout(str(tmp_path / "none"))))
    assert empty.returncode == 0 and empty.stdout == ""


def spec_with_static(route, name="st"):
    return SimpleNamespace(name=name, static=SimpleNamespace(route=route))


def test_static_prefix_may_not_take_other_apps_routes():
    maps = {"hw": "tiramisu-appmap 1\nroute\t/hello\thw.a\t_start\nroute\t/hello/...\thw.b\t_start\n",
            "other": "tiramisu-appmap 1\nroute\t/elsewhere\tother.a\t_start\n"}  # fmt: skip
    assert ad.static_conflicts(spec_with_static("/hello"), maps, {"hello"}) == [
        ("/hello", "hello"),
        ("/hello", "hw"),
        ("/hello/...", "hw"),
    ]
    assert ad.static_conflicts(spec_with_static("/st/static"), maps, {"hello"}) == []
    assert ad.static_conflicts(spec_with_static("/hel"), maps, {"hello"}) == []  # not a path prefix
    assert ad.static_conflicts(spec_with_static("/hello", name="hw"), {"hw": maps["hw"]}, set()) == []  # its own
    assert ad.static_conflicts(SimpleNamespace(name="st", static=None), maps, {"hello"}) == []


def test_apps_listing_groups_a_map_apps_modules():
    from tiramisu_tasks.deploy import app_rows

    rec = {"sha256": "a" * 64, "state": "active", "error": None, "requests": 2, "kind": "module"}
    served = {
        "hello": {**rec, "loaded_at": "2026-11-30T10:00:00Z"},
        "toast.ui": {**rec, "loaded_at": "2026-11-30T10:00:01Z"},
        "toast.api": {**rec, "state": "failed", "error": "bad", "requests": 3, "loaded_at": "2026-11-30T10:00:02Z"},
    }
    maps = {"toast": "tiramisu-appmap 1\nroute\t/\ttoast.ui\t_start\nroute\t/api/...\ttoast.api\t_start\n"}
    rows = app_rows(served, "/h hello\n", {"hello": "R1", "toast": "R2"}, maps)
    assert [r["name"] for r in rows] == ["hello", "toast"]
    assert rows[0]["routes"] == ["/hello", "/h"] and "modules" not in rows[0]
    toast = rows[1]
    assert (toast["kind"], toast["routes"], toast["release"], toast["state"], toast["error"], toast["requests"]) == (
        "map",
        ["/", "/api/..."],
        "R2",
        "failed",
        "bad",
        5,
    )
    assert [m["name"] for m in toast["modules"]] == ["api", "ui"] and toast["loaded_at"] == "2026-11-30T10:00:02Z"
