"""The app examples (wasm_examples/guestbook, wasm_examples/wagi-map) read, assemble and build.

Their behaviour on a box is checked in tests/integration/test_app_manifest.py.
"""

import wasmtime

from tiramisu_tasks.apps.build import build_app
from tiramisu_tasks.apps.manifest import read_app

from .conftest import EXAMPLES


def test_wagi_map_example():
    spec = read_app(EXAMPLES / "wagi-map")
    assert spec.kind == "modulemap" and spec.name == "wagi-map"
    assert [(r.pattern.text, r.entrypoint) for r in spec.routes] == [
        ("/", "_start"),
        ("/hello/...", "hello"),
        ("/bye", "goodbye"),
        ("/api", "_start"),
    ]
    engine = wasmtime.Engine()
    exports = {
        key: {e.name for e in wasmtime.Module(engine, wasmtime.wat2wasm(path.read_text())).exports}
        for key, path in spec.modules.items()
    }
    assert exports["handlers"] >= {"_start", "hello", "goodbye", "_routes"}


def test_guestbook_example_reads_and_builds(apps_cache):
    spec = read_app(EXAMPLES / "guestbook")
    assert spec.name == "guestbook" and [s.name for s in spec.secrets] == ["ADMIN_TOKEN"]
    assert spec.static.route == "/guestbook/static" and spec.static.not_found == "404.html"
    assert {(v.guest, v.writable) for v in spec.volumes} == {("/templates", False), ("/data", True)}
    built = build_app(EXAMPLES / "guestbook", name="guestbook", language="c", cache_root=apps_cache)
    assert built.language == "c" and built.size > 0
