"""commands.current_releases run by a real sh over a real releases folder: one
grep for every app's CURRENT (issue 16: a `cat` per app took seconds at a
thousand apps on a busy box), the same ``APP ID`` lines as before."""

import subprocess

import pytest

from tiramisu_tasks import commands as cmd
from tiramisu_tasks.deploy import current_releases
from tiramisu_tasks.layout import RemoteLayout


class _Box:
    def __init__(self, layout):
        self.layout = layout

    def run(self, command, **_kw):
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)


@pytest.mark.parametrize("apps", [0, 1, 3, 300])
def test_current_releases_lists_every_app_with_a_current_file(tmp_path, apps):
    layout = RemoteLayout(str(tmp_path / "env"))
    releases = tmp_path / "env" / "releases"
    releases.mkdir(parents=True)
    want = {}
    for i in range(apps):
        d = releases / f"app{i}"
        d.mkdir()
        rid = f"20260101T000000Z-{i:010d}"
        (d / f"{rid}.wasm").write_bytes(b"\0asm")
        (d / "CURRENT").write_text(rid + "\n")
        want[f"app{i}"] = rid
    (releases / "nocurrent").mkdir()  # an app whose first deploy never finished
    (releases / "nocurrent" / "x.wasm").write_bytes(b"")
    assert current_releases(_Box(layout)) == want


def test_current_releases_without_a_releases_folder(tmp_path):
    layout = RemoteLayout(str(tmp_path / "missing"))
    assert current_releases(_Box(layout)) == {}
    assert "grep '' /dev/null */CURRENT" in cmd.current_releases(layout)
