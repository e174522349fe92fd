"""appdeploy's pure parts: secrets resolved locally (names in errors, never values), the app map text,
route conflicts between apps, the env listing, and the command builders it uses."""

import subprocess
from pathlib import Path

import pytest

from tiramisu_tasks import appdeploy as ad
from tiramisu_tasks import commands as cmd
from tiramisu_tasks.apps.manifest import parse_manifest
from tiramisu_tasks.errors import UsageError


@pytest.fixture
def spec(tmp_path):
    folder = tmp_path / "gb"
    (folder / "templates").mkdir(parents=True)
    (folder / "seed").mkdir()
    (folder / "app.wasm").write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / "outside.env").write_text("# local secrets\nexport DB='db value'\nOTHER=x\n")
    (folder / "tiramisu.toml").write_text(
        '[app]\nname = "gb"\n[build]\nmodule = "app.wasm"\n'
        '[[route]]\npath = "/gb/..."\n[[route]]\npath = "/gb/admin"\nentrypoint = "admin"\n'
        'argv = "${SCRIPT_NAME} ${ARGS}"\nenvironment = { MODE = "admin" }\n'
        '[environment]\nGREETING = "Hello there"\n'
        f'[secrets]\nTOKEN = "GB_TOKEN"\nDB = {{ env_file = "{tmp_path}/outside.env" }}\n'
        '[[volume]]\nsource = "templates"\nguest = "/templates"\n'
        '[[volume]]\nguest = "/data"\nwritable = true\nsource = "seed"\n'
        '[limits]\ntimeout = "2s"\nmemory = "32M"\n'
    )
    return parse_manifest(folder / "tiramisu.toml")


def test_secrets_resolve_from_env_and_file(spec):
    assert ad.resolve_secrets(spec, {"GB_TOKEN": "t0k"}) == {"TOKEN": "t0k", "DB": "db value"}


def test_missing_secret_names_the_variable_not_a_value(spec):
    with pytest.raises(UsageError, match="secret TOKEN: the environment variable GB_TOKEN is not set"):
        ad.resolve_secrets(spec, {})
    with pytest.raises(UsageError, match=r"secret DB: .*outside.env has no DB") as exc:
        ad.resolve_secrets(spec, {"GB_TOKEN": "t0k"}, read_text=lambda p: "OTHER=secretvalue\n")
    assert "secretvalue" not in exc.value.message
    with pytest.raises(UsageError, match="must be one line"):
        ad.resolve_secrets(spec, {"GB_TOKEN": "a\nb"})


def test_env_file_errors_name_the_line():
    with pytest.raises(UsageError, match=r"x.env:2: expected NAME=VALUE"):
        ad.parse_env_text("A=1\nnot a pair\n", "x.env")


def test_app_map_text(spec):
    names = ad.module_names(spec)
    assert names == {"gb": "gb.gb"}
    text = ad.app_map_text(spec, names, "/e/releases/gb/R.d", "/e/data/gb", "/e/secrets/gb.env")
    assert text.splitlines() == [
        "tiramisu-appmap 1",
        "# gb: written by tiramisu deploy from tiramisu.toml",
        "env\tGREETING\tHello there",
        "envfile\t/e/secrets/gb.env",
        "dir\t/templates\t/e/releases/gb/R.d/ro/templates\tro",
        "dir\t/data\t/e/data/gb/data\trw",
        "limit\ttimeout-ms\t2000",
        "limit\tmemory-mb\t32",
        "route\t/gb/...\tgb.gb\t_start",
        "route\t/gb/admin\tgb.gb\tadmin\t${SCRIPT_NAME} ${ARGS}",
        "env\tMODE\tadmin",
    ]
    assert "t0k" not in text and "db value" not in text


def test_route_conflicts_and_env_listing(spec):
    dump = "==tiramisu-map== other\ntiramisu-appmap 1\nroute\t/gb/admin\tother.x\t_start\n==tiramisu-map== gb\nx\n"
    maps = ad.parse_maps_dump(dump)
    assert set(maps) == {"other", "gb"}
    assert ad.route_conflicts(spec, maps) == [("/gb/admin", "other")]
    text = ad.app_map_text(spec, ad.module_names(spec), "/r", "/d", "/s")
    assert ad.env_listing(text, ["TOKEN", "DB"]) == [
        ("GREETING", "Hello there", "*"),
        ("MODE", "admin", "/gb/admin"),
        ("TOKEN", "***", "secret"),
        ("DB", "***", "secret"),
    ]
    assert '"TOKEN": "***"' in __import__("json").dumps(spec.redacted())


def sh(command, cwd):
    return subprocess.run(["sh", "-c", command], cwd=cwd, capture_output=True, text=True)


def test_unpack_seeds_data_once_and_never_overwrites(tmp_path):
    import tarfile

    rel = tmp_path / "rel dir" / "R.d"
    rel.parent.mkdir()
    src = tmp_path / "src"
    (src / "seed" / "data").mkdir(parents=True)
    (src / "seed" / "data" / "x.txt").write_text("seed v1")
    (src / "app.map").write_text("m")
    with tarfile.open(f"{rel}.tar", "w") as tar:
        tar.add(src / "seed", arcname="seed")
        tar.add(src / "app.map", arcname="app.map")
    data = tmp_path / "data" / "gb"
    data.mkdir(parents=True)
    (tmp_path / "s.env.new").write_text("A=1\n")
    c = cmd.unpack_app_release(str(rel), str(data), ["data", "empty"], str(tmp_path / "s.env"))
    assert sh(c, tmp_path).returncode == 0
    assert (data / "data" / "x.txt").read_text() == "seed v1" and (data / "empty").is_dir()
    assert (tmp_path / "s.env").read_text() == "A=1\n" and not Path(f"{rel}.tar").exists()
    (data / "data" / "x.txt").write_text("the app wrote this")
    with tarfile.open(f"{rel}.tar", "w") as tar:
        tar.add(src / "seed", arcname="seed")
    assert sh(c, tmp_path).returncode == 0
    assert (data / "data" / "x.txt").read_text() == "the app wrote this"


def test_install_beside_and_env_sources(tmp_path):
    (tmp_path / "a").write_text("new")
    (tmp_path / "b").write_text("old")
    assert sh(cmd.install_beside(str(tmp_path / "a"), str(tmp_path / "b")), tmp_path).returncode == 0
    assert (tmp_path / "b").read_text() == "new"

    class L:
        root = str(tmp_path)
        modules = str(tmp_path / "wasm_modules")

    (tmp_path / "wasm_modules").mkdir()
    (tmp_path / "secrets" / "gb").mkdir(parents=True)
    (tmp_path / "secrets" / "gb.env").write_text("OLD=x\n")  # not named by the live map: not listed
    (tmp_path / "secrets" / "gb" / "R 1.env").write_text("TOKEN=secretvalue\nDB=x\n")
    live = f"env\tA\t1\nenvfile\t{tmp_path}/secrets/gb/R 1.env\n"
    (tmp_path / "wasm_modules" / "gb.map").write_text(live)
    out = sh(cmd.app_env_sources(L, "gb"), tmp_path).stdout
    assert out == live + "==tiramisu-secrets==\nTOKEN\nDB\n" and "secretvalue" not in out
    (tmp_path / "wasm_modules" / "gb.map").write_text("env\tA\t1\n")  # no secrets
    assert sh(cmd.app_env_sources(L, "gb"), tmp_path).stdout == "env\tA\t1\n==tiramisu-secrets==\n"


def test_static_nginx_conf(tmp_path):
    folder = tmp_path / "spa"
    (folder / "dist").mkdir(parents=True)
    (folder / "dist" / "index.html").write_text("i")
    (folder / "tiramisu.toml").write_text(
        '[app]\nname = "spa"\n[static]\nfolder = "dist"\nroute = "/spa/app"\nspa_fallback = "index.html"\n'
    )
    conf = ad.static_nginx_conf(parse_manifest(folder / "tiramisu.toml"), "/e/releases/spa/R.d")
    assert "location ^~ /spa/app/ {" in conf and "root /e/releases/spa/static-live/www;" in conf
    assert "try_files $uri /spa/app/index.html =404;" in conf and "error_page" not in conf
    assert 'add_header Cache-Control "public, max-age=300" always;' in conf and "text/css css;" in conf
    # release folders are immutable: cached open files, sendfile (bench/static_bench.py)
    # no open_file_cache: the root is a link switched without a reload, a by-path cache would serve old files
    assert "open_file_cache" not in conf and "sendfile on;" in conf and "tcp_nopush on;" in conf
    # the location's own add_header drops the server's: the public-face headers are repeated
    assert "add_header X-Content-Type-Options nosniff always;" in conf and "X-Frame-Options SAMEORIGIN" in conf


def test_app_preview_bundle_pruning_commands_in_real_sh(tmp_path):
    """place_app_preview / remove_app_preview / delete_app_bundles on a real folder (paths with spaces)."""
    root = tmp_path / "env dir"

    class L:
        modules = str(root / "wasm_modules")

        @staticmethod
        def app_releases(app):
            return str(root / "releases" / app)

        @staticmethod
        def app_log(app):
            return str(root / "logs" / "apps" / f"{app}.log")

        @staticmethod
        def log_file(name):
            return str(root / "logs" / name)

    L.root = str(root)
    rel = root / "releases" / "gb" / "R1.d"
    (rel / "modules").mkdir(parents=True)
    (root / "wasm_modules").mkdir()
    (rel / "modules" / "gb.a.wasm").write_bytes(b"a")
    (rel / "modules" / "gb.b.wasm").write_bytes(b"b")
    (rel / "app.map").write_text("tiramisu-appmap 1\n")
    out = sh(cmd.place_app_preview(L, "gb", str(rel), ["gb.a", "gb.b"]), tmp_path)
    assert out.returncode == 0 and cmd.parse_log_offsets(out.stdout) == (0, 0)
    pdir = root / "wasm_modules" / ".preview"
    assert sorted(p.name for p in pdir.iterdir()) == ["gb.a.wasm", "gb.b.wasm", "gb.map"]
    (pdir / "gbx.wasm").write_bytes(b"other app")
    assert sh(cmd.remove_app_preview(L, "gb"), tmp_path).returncode == 0
    assert [p.name for p in pdir.iterdir()] == ["gbx.wasm"]
    # pruning takes the bundle, its markers and its secrets file, nothing else
    (root / "secrets" / "gb").mkdir(parents=True)
    for name in ("R1.env", "R2.env"):
        (root / "secrets" / "gb" / name).write_text("T=x\n")
    (root / "releases" / "gb" / "R1.failed").write_text("why\n")
    (root / "releases" / "gb" / "R2.d").mkdir()
    listing = sh(cmd.list_releases(L, "gb"), tmp_path).stdout
    assert cmd.parse_bundle_listing(listing) == (("R2", "R1"), ("R1",), ())
    assert sh(cmd.delete_app_bundles(L, "gb", ["R1"]), tmp_path).returncode == 0
    assert sorted(p.name for p in (root / "releases" / "gb").iterdir()) == ["R2.d"]
    assert [p.name for p in (root / "secrets" / "gb").iterdir()] == ["R2.env"]


def test_static_link_switch_and_conf_only_when_changed(tmp_path):
    from tiramisu_tasks.layout import RemoteLayout

    lay = RemoteLayout(str(tmp_path / "env dir"))
    rel = Path(lay.app_releases("gb"))
    for rid in ("R1", "R2"):
        (rel / f"{rid}.d" / "www").mkdir(parents=True)
        (rel / f"{rid}.d" / "www" / "v.txt").write_text(rid)
    for rid in ("R1", "R2", "R1"):
        assert sh(cmd.switch_static_link(lay, "gb", str(rel / f"{rid}.d")), tmp_path).returncode == 0
        assert (rel / "static-live" / "www" / "v.txt").read_text() == rid
    assert sorted(p.name for p in rel.iterdir()) == ["R1.d", "R2.d", "static-live"]
    live = Path(lay.conf) / "apps" / "gb.conf"
    live.parent.mkdir(parents=True)
    live.write_text("same\n")
    (rel / "R1.d" / "nginx.conf").write_text("same\n")
    # the same text: nothing to do (else it would run nginx -t, which is not here)
    assert (
        sh(cmd.apply_app_nginx_conf_if_changed(lay, "gb", str(rel / "R1.d" / "nginx.conf")), tmp_path).returncode == 0
    )
    (rel / "R2.d" / "nginx.conf").write_text("other\n")
    assert sh(cmd.apply_app_nginx_conf_if_changed(lay, "gb", str(rel / "R2.d" / "nginx.conf")), tmp_path).returncode


def test_removing_an_absent_static_include_runs_no_nginx(tmp_path):
    """A warm deploy of an app without static files: nothing to remove, so no nginx -t and no reload
    (here the box has no nginx at all: running it would fail)."""
    from tiramisu_tasks.layout import RemoteLayout

    layout = RemoteLayout(str(tmp_path / "env"))
    c = cmd.apply_app_nginx_conf(layout, "gb", None)
    assert sh(c, tmp_path).returncode == 0
    live = Path(layout.conf) / "apps" / "gb.conf"
    live.parent.mkdir(parents=True)
    live.write_text("# old include\n")
    res = sh(c, tmp_path)  # a live include: removed, nginx -t fails here, so it comes back
    assert res.returncode == 1 and live.read_text() == "# old include\n"
