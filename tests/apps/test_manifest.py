"""tiramisu.toml and WAGI modules.toml parsing: unit tables (pure, tmp folders only)."""

import os
import textwrap
from pathlib import Path

import pytest

from tiramisu_tasks.apps.manifest import find_app_file, parse_manifest, read_app
from tiramisu_tasks.apps.modulemap import parse_module_map
from tiramisu_tasks.apps.tomlsource import key_lines
from tiramisu_tasks.errors import UsageError

WAT = '(module (func (export "_start")))'


def write(folder: Path, files: dict):
    for rel, text in files.items():
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            p.mkdir(exist_ok=True)
        else:
            p.write_text(textwrap.dedent(text))
    return folder


# ------------------------------------------------------------ manifest ---

FULL = """\
[app]
name = "guestbook"

[build]
language = "c"

[[route]]
path = "/guestbook/..."

[[route]]
path = "/guestbook/admin"
entrypoint = "admin"
argv = "${SCRIPT_NAME} --admin ${ARGS}"
environment = { MODE = "admin" }

[environment]
GREETING = "Hello"
PAGE_SIZE = 20

[secrets]
ADMIN_TOKEN = "GB_TOKEN"
DB_KEY = { env_file = "OUTSIDE/gb.env", key = "KEY" }

[[volume]]
source = "templates"
guest = "/templates"

[[volume]]
guest = "/data"
writable = true
source = "seed"

[static]
folder = "static"
spa_fallback = "index.html"
not_found = "404.html"
cache_control = "public, max-age=60"

[health]
path = "/guestbook/"
body = "Guestbook"

[limits]
timeout = "2s"
memory = "32M"
body = 65536
"""


@pytest.fixture
def app(tmp_path):
    outside = tmp_path / "secrets"
    outside.mkdir()
    folder = tmp_path / "guestbook"
    write(
        folder,
        {
            "main.c": "int main(){return 0;}\n",
            "templates/page.html": "<html>{{x}}</html>",
            "seed/entries.txt": "",
            "static/index.html": "i",
            "static/404.html": "nf",
            "static/style.css": "body{}",
        },
    )
    return folder, outside


def manifest(folder, text, outside=None):
    if outside is not None:
        text = text.replace("OUTSIDE", str(outside))
    (folder / "tiramisu.toml").write_text(text)
    return folder / "tiramisu.toml"


def test_full_manifest_reads_every_table(app):
    folder, outside = app
    spec = parse_manifest(manifest(folder, FULL, outside))
    assert spec.name == "guestbook" and spec.kind == "manifest" and spec.build == {"language": "c"}
    assert [(r.pattern.text, r.entrypoint, r.argv) for r in spec.routes] == [
        ("/guestbook/...", "_start", None),
        ("/guestbook/admin", "admin", "${SCRIPT_NAME} --admin ${ARGS}"),
    ]
    assert spec.routes[1].environment == {"MODE": "admin"}
    assert spec.environment == {"GREETING": "Hello", "PAGE_SIZE": "20"}
    assert [(s.name, s.env, s.key) for s in spec.secrets] == [
        ("ADMIN_TOKEN", "GB_TOKEN", None),
        ("DB_KEY", None, "KEY"),
    ]
    assert spec.secrets[1].env_file == (outside / "gb.env").resolve()
    assert [(v.guest, v.writable, v.name) for v in spec.volumes] == [
        ("/templates", False, "templates"),
        ("/data", True, "data"),
    ]
    assert spec.static.route == "/guestbook/static" and spec.static.spa_fallback == "index.html"
    assert spec.static.not_found == "404.html" and spec.static.cache_control == "public, max-age=60"
    assert (spec.health.path, spec.health.status, spec.health.body) == ("/guestbook/", 200, "Guestbook")
    assert (spec.limits.timeout_ms, spec.limits.memory_bytes, spec.limits.body_bytes) == (2000, 32 << 20, 65536)
    red = spec.redacted()
    assert red["secrets"] == {"ADMIN_TOKEN": "***", "DB_KEY": "***"}


def test_minimal_manifest_gets_defaults(app):
    folder, _ = app
    spec = parse_manifest(manifest(folder, '[app]\nname = "gb"\n'))
    assert [r.pattern.text for r in spec.routes] == ["/gb/..."]
    assert spec.health.path == "/gb/" and spec.modules == {"gb": None}
    assert parse_manifest(manifest(folder, "")).name == "guestbook"  # the folder's name
    assert parse_manifest(manifest(folder, '[app]\nname = "gb"\n'), name="other").name == "other"


BAD_MANIFESTS = [
    ("toml-syntax", '[app]\nname = "x\n', r"tiramisu.toml:2: invalid TOML"),
    ("unknown-top", '[app]\nname = "x"\n\n[extras]\na = 1\n', r"tiramisu.toml:4: extras: unknown key"),
    ("unknown-app-key", '[app]\nname = "x"\nnmae = "y"\n', r"tiramisu.toml:3: app.nmae: unknown key"),
    ("bad-name", '[app]\nname = "Bad Name"\n', r"tiramisu.toml:2: app.name: invalid app name"),
    ("route-reserved", '[[route]]\npath = "/_tiramisu/x"\n', r"tiramisu.toml:2: route.path: .*/_tiramisu"),
    ("route-reserved-wild", '[[route]]\npath = "/_TIRAMISU/..."\n', r"route.path: .*/_tiramisu"),
    ("route-relative", '[[route]]\npath = "a/b"\n', r"tiramisu.toml:2: route.path: 'a/b' must start with '/'"),
    ("route-dots", '[[route]]\npath = "/a/../b"\n', r"route.path: .*'\.\.'"),
    ("route-dup", '[[route]]\npath = "/a"\n[[route]]\npath = "/a"\n', r"tiramisu.toml:4: route.path: /a is already"),
    ("route-no-path", '[[route]]\nentrypoint = "x"\n', r"tiramisu.toml:1: route: route\[0\] has no 'path'"),
    ("route-bad-ep", '[[route]]\npath = "/a"\nentrypoint = "a b"\n', r"tiramisu.toml:3: route.entrypoint"),
    ("argv-bad", '[[route]]\npath = "/a"\nargv = "${PATH}"\n', r"tiramisu.toml:3: route.argv: .*unknown placeholder"),
    ("env-cgi", '[environment]\nPATH_INFO = "x"\n', r"tiramisu.toml:2: environment.PATH_INFO: .*set by the server"),
    ("env-type", "[environment]\nA = [1]\n", r"tiramisu.toml:2: environment.A: .*one-line string"),
    (
        "secret-in-env",
        '[environment]\nA = "1"\n[secrets]\nA = "B"\n',
        r"tiramisu.toml:4: secrets.A: .*also in \[environment\]",
    ),
    ("secret-bad-ref", '[secrets]\nA = "not a var"\n', r"tiramisu.toml:2: secrets.A"),
    (
        "secret-env-file-inside",
        '[secrets]\nA = { env_file = ".env" }\n',
        r"secrets.A: env_file '.env' is inside the app folder",
    ),
    (
        "volume-escape",
        '[[volume]]\nsource = "../x"\nguest = "/x"\n',
        r"tiramisu.toml:2: volume.source: '../x' leads outside",
    ),
    ("volume-abs-escape", '[[volume]]\nsource = "/etc"\nguest = "/x"\n', r"volume.source: '/etc' leads outside"),
    (
        "volume-guest-rel",
        '[[volume]]\nsource = "templates"\nguest = "x"\n',
        r"tiramisu.toml:3: volume.guest: guest path must be absolute",
    ),
    ("volume-ro-no-source", '[[volume]]\nguest = "/x"\n', r"volume.source: volume\[0\] is read-only"),
    ("volume-missing", '[[volume]]\nsource = "nope"\nguest = "/x"\n', r"volume.source: 'nope' does not exist"),
    ("static-escape", '[static]\nfolder = "../"\n', r"tiramisu.toml:2: static.folder: '../' leads outside"),
    ("static-wild", '[static]\nfolder = "static"\nroute = "/s/..."\n', r"tiramisu.toml:3: static.route"),
    (
        "static-no-404",
        '[static]\nfolder = "static"\nnot_found = "x.html"\n',
        r"static.not_found: 'x.html' does not exist",
    ),
    ("limits-unit", '[limits]\nmemory = "lots"\n', r"tiramisu.toml:2: limits.memory: 'lots' is not a size"),
    ("limits-range", "[limits]\ntimeout = 0\n", r"tiramisu.toml:2: limits.timeout: 0 is out of range"),
    ("health-status", "[health]\nstatus = 99\n", r"tiramisu.toml:2: health.status"),
    ("not-a-table", "environment = 3\n", r"tiramisu.toml:1: environment: must be a table"),
]


@pytest.mark.parametrize("text,error", [c[1:] for c in BAD_MANIFESTS], ids=[c[0] for c in BAD_MANIFESTS])
def test_bad_manifest_names_file_line_and_key(app, text, error):
    folder, _ = app
    with pytest.raises(UsageError, match=error) as exc:
        parse_manifest(manifest(folder, text))
    assert exc.value.code == 2 and "\n" not in exc.value.message


def test_static_folder_with_symlink_outside_is_refused(app, tmp_path):
    folder, _ = app
    (tmp_path / "private.txt").write_text("secret")
    os.symlink(tmp_path / "private.txt", folder / "static" / "leak.txt")
    with pytest.raises(UsageError, match=r"static.folder: static/leak.txt is a symlink leading outside"):
        parse_manifest(manifest(folder, '[static]\nfolder = "static"\n'))


def test_symlink_inside_the_folder_is_fine(app):
    folder, _ = app
    os.symlink("style.css", folder / "static" / "alias.css")
    assert parse_manifest(manifest(folder, '[static]\nfolder = "static"\n')).static is not None


# ----------------------------------------------------------- module map ---

MAP = """\
# WAGI's own example layout
[[module]]
route = "/"
module = "hello.wat"

[[module]]
route = "/hello/..."
module = "file:FOLDER/bin/hello.wasm"
entrypoint = "hello"
environment.TEST_NAME = "test value"

[[module]]
route = "/files/..."
module = "bin/hello.wasm"
volumes = { "/data" = "data" }
argv = "${SCRIPT_NAME} ${ARGS}"
allowed_hosts = []
repository = "reserved"
"""


@pytest.fixture
def wagi(tmp_path):
    folder = write(tmp_path / "wagi-app", {"hello.wat": WAT, "bin/hello.wasm": "", "data/x.txt": "1"})
    return folder


def module_map(folder, text):
    (folder / "modules.toml").write_text(text.replace("FOLDER", str(folder)))
    return folder / "modules.toml"


def test_module_map_as_wagi_wrote_it(wagi):
    spec = parse_module_map(module_map(wagi, MAP))
    assert spec.kind == "modulemap" and spec.name == "wagi-app"
    assert [(r.pattern.text, r.module, r.entrypoint) for r in spec.routes] == [
        ("/", "hello", "_start"),
        ("/hello/...", "hello-1", "hello"),
        ("/files/...", "hello-1", "_start"),
    ]
    assert spec.modules[spec.routes[0].module] == (wagi / "hello.wat").resolve()
    assert spec.modules[spec.routes[1].module] == (wagi / "bin/hello.wasm").resolve()
    assert spec.routes[1].module == spec.routes[2].module  # the same file is one module
    assert spec.routes[1].environment == {"TEST_NAME": "test value"}
    assert [(v.guest, v.writable, v.name) for v in spec.routes[2].volumes] == [("/data", True, "data")]
    assert spec.routes[2].argv == "${SCRIPT_NAME} ${ARGS}" and spec.routes[0].line == 3


BAD_MAPS = [
    ("no-modules", "title = 1\n", r"modules.toml:1: title: unknown key"),
    ("empty", "", r"modules.toml: no \[\[module\]\] entries"),
    (
        "unknown-key",
        '[[module]]\nroute = "/"\nmodule = "hello.wat"\nroutes = "/x"\n',
        r"modules.toml:4: module.routes: unknown key",
    ),
    ("no-route", '[[module]]\nmodule = "hello.wat"\n', r"modules.toml:1: module: module\[0\] has no 'route'"),
    (
        "missing-file",
        '[[module]]\nroute = "/"\nmodule = "nope.wasm"\n',
        r"modules.toml:3: module.module: 'nope.wasm': no such file",
    ),
    (
        "bad-suffix",
        '[[module]]\nroute = "/"\nmodule = "data/x.txt"\n',
        r"modules.toml:3: module.module: .*not a .wasm or .wat",
    ),
    (
        "oci",
        '[[module]]\nroute = "/"\nmodule = "oci:foo/bar:1"\n',
        r"modules.toml:3: module.module: .*oci: references are not supported",
    ),
    ("bindle", '[[module]]\nroute = "/"\nmodule = "bindle:example.com/x/1.0"\n', r"bindle: references"),
    (
        "allowed-hosts",
        '[[module]]\nroute = "/"\nmodule = "hello.wat"\nallowed_hosts = ["https://api.example.com"]\n',
        r"modules.toml:4: module.allowed_hosts: outbound HTTP is not available",
    ),
    (
        "volume-escape",
        '[[module]]\nroute = "/"\nmodule = "hello.wat"\nvolumes = { "/d" = "/etc" }\n',
        r"modules.toml:4: module.volumes: '/etc' leads outside",
    ),
    (
        "second-module-bad",
        '[[module]]\nroute = "/"\nmodule = "hello.wat"\n\n[[module]]\nroute = "/_tiramisu/..."\nmodule = "hello.wat"\n',
        r"modules.toml:6: module.route: .*/_tiramisu",
    ),
    (
        "dup-route",
        '[[module]]\nroute = "/a"\nmodule = "hello.wat"\n[[module]]\nroute = "/a"\nmodule = "hello.wat"\n',
        r"modules.toml:5: module.route: /a is already the route of module\[0\]",
    ),
    (
        "env-not-string",
        '[[module]]\nroute = "/"\nmodule = "hello.wat"\nenvironment = { A = [1] }\n',
        r"modules.toml:4: module.environment",
    ),
]


@pytest.mark.parametrize("text,error", [c[1:] for c in BAD_MAPS], ids=[c[0] for c in BAD_MAPS])
def test_bad_module_map_names_file_line_and_key(wagi, text, error):
    with pytest.raises(UsageError, match=error) as exc:
        parse_module_map(module_map(wagi, text))
    assert exc.value.code == 2 and "\n" not in exc.value.message


def test_find_and_read_app_prefers_the_manifest(wagi):
    module_map(wagi, MAP)
    assert find_app_file(wagi).name == "modules.toml"
    assert read_app(wagi).kind == "modulemap"
    (wagi / "tiramisu.toml").write_text('[app]\nname = "m"\n')
    assert read_app(wagi).kind == "manifest"
    assert read_app(wagi / "bin") is None


def test_key_lines_tracks_arrays_and_multiline_values():
    text = '[[module]]\nroute = "/"\nargs = [\n  "[x]",\n]\n\n[[module]]\n"route" = "/b"\nenvironment.A = "1"\n'
    lines, tables = key_lines(text)
    assert lines[(("module",), 0, "route")] == 2
    assert lines[(("module",), 1, "route")] == 8
    assert lines[(("module",), 1, "environment")] == 9
    assert tables[(("module",), 1)] == 7


def test_the_init_stub_form_is_read(tmp_path):
    folder = write(tmp_path / "stub", {"main.wat": WAT})
    (folder / "tiramisu.toml").write_text('# made by tiramisu init\nname = "stub-app"\nlanguage = "wat"\n')
    spec = parse_manifest(folder / "tiramisu.toml")
    assert (spec.name, spec.build, spec.routes_declared) == ("stub-app", {"language": "wat"}, False)
    assert [r.pattern.text for r in spec.routes] == ["/stub-app/..."]
    (folder / "tiramisu.toml").write_text('name = "a"\n[app]\nname = "b"\n')
    with pytest.raises(UsageError, match=r"tiramisu.toml:1: name: differs from \[app\] name"):
        parse_manifest(folder / "tiramisu.toml")


def test_only_more_than_the_init_stub_takes_the_app_path(tmp_path):
    """A stub-only tiramisu.toml deploys like a project folder (health gate, history, every flag)."""
    from tiramisu_tasks.apps.manifest import needs_app_deploy

    (tmp_path / "plain").mkdir()
    assert not needs_app_deploy(tmp_path / "plain")
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "tiramisu.toml").write_text('# starter\nname = "hello"\nlanguage = "c"\n')
    assert not needs_app_deploy(stub)
    full = tmp_path / "full"
    full.mkdir()
    (full / "tiramisu.toml").write_text('name = "hello"\n[environment]\nGREETING = "hi"\n')
    assert needs_app_deploy(full)
    wagi = tmp_path / "wagi"
    wagi.mkdir()
    (wagi / "modules.toml").write_text('[[module]]\nroute = "/"\nmodule = "a.wasm"\n')
    assert needs_app_deploy(wagi)


def test_module_file_names_become_box_safe_keys(wagi):
    (wagi / "my mod.v2.wat").write_text(WAT)
    spec = parse_module_map(module_map(wagi, '[[module]]\nroute = "/s"\nmodule = "my mod.v2.wat"\n'))
    assert list(spec.modules) == ["my-mod-v2"]
    assert spec.modules["my-mod-v2"] == (wagi / "my mod.v2.wat").resolve()


def test_wagi_default_host_is_accepted(wagi):
    spec = parse_module_map(
        module_map(wagi, 'default_host = "example.com:3000"\n[[module]]\nroute = "/"\nmodule = "hello.wat"\n')
    )
    assert [r.pattern.text for r in spec.routes] == ["/"]


def test_relative_module_path_falls_back_to_the_working_directory(wagi, tmp_path, monkeypatch):
    # WAGI's own examples/modules.toml names "examples/hello.wat", relative to where wagi ran
    examples = write(tmp_path / "repo" / "examples", {"hello.wat": WAT})
    (examples / "modules.toml").write_text('[[module]]\nroute = "/"\nmodule = "examples/hello.wat"\n')
    monkeypatch.chdir(tmp_path / "repo")
    spec = parse_module_map(examples / "modules.toml")
    assert spec.modules["hello"] == (examples / "hello.wat").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="'examples/hello.wat': no such file"):
        parse_module_map(examples / "modules.toml")


def test_a_map_file_under_another_name_is_a_module_map(wagi):
    (wagi / "example-wagi.toml").write_text('[[module]]\nroute = "/"\nmodule = "hello.wat"\n')
    assert find_app_file(wagi / "example-wagi.toml") == wagi / "example-wagi.toml"
    spec = read_app(wagi / "example-wagi.toml")
    assert spec.kind == "modulemap" and spec.name == "wagi-app"


@pytest.mark.parametrize("bad", ["../trav", "Bad Name", "a/b"])
def test_name_flag_is_checked_before_reading(wagi, bad):
    module_map(wagi, MAP)
    with pytest.raises(UsageError, match="invalid app name") as exc:
        read_app(wagi, bad)
    assert exc.value.code == 2
