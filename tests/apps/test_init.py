"""`tiramisu init`: each starter builds with the real toolchain and answers as CGI;
tiramisu.toml's `name` is the one key build reads; a non-empty dir is refused."""

import json

import pytest

from tests.helpers import cli, one_line_error
from tiramisu_tasks.apps.build import build_app
from tiramisu_tasks.apps.localrun import run_request
from tiramisu_tasks.apps.starter import STARTER_LANGUAGES, manifest_name, plan_starter, starters_dir
from tiramisu_tasks.apps.wagi import Request
from tiramisu_tasks.errors import UsageError

from .test_build import need


@pytest.mark.parametrize("lang", STARTER_LANGUAGES)
def test_each_starter_builds_and_answers(tmp_path, apps_cache, lang):
    need(lang)
    proc = cli("tiramisu", "init", "my-app", "--lang", lang, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["name"], doc["language"]) == ("my-app", lang)
    assert "my-app/tiramisu.toml" in doc["files"]
    result = build_app(tmp_path / "my-app", cache_root=apps_cache)
    assert (result.name, result.language) == ("my-app", lang)
    response = run_request(result.wasm_path, Request(path="/x")).response
    assert response.status == 200 and b"Hello from my-app!" in response.body


def test_a_non_empty_dir_is_refused_unless_forced(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "notes.txt").write_text("mine\n")
    proc = cli("tiramisu", "init", "app", cwd=tmp_path)
    assert proc.returncode == 2 and "is not empty (use --force" in one_line_error(proc)
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["notes.txt"]
    proc = cli("tiramisu", "init", "app", "--force", "--name", "svc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "app").iterdir()) == ["main.c", "notes.txt", "tiramisu.toml"]
    assert manifest_name(tmp_path / "app") == "svc"
    for dry in (["init", "fresh", "--dry"], ["--dry", "init", "fresh"]):  # its own flag and the core one
        proc = cli("tiramisu", *dry, cwd=tmp_path)
        assert proc.returncode == 0 and "would write" in proc.stderr, proc.stderr
        assert not (tmp_path / "fresh").exists()
    for args, message in [
        (["init", "x", "--lang", "cobol"], "--lang cobol: no starter for it (starters: c, zig, wat, rust)"),
        (["init", "x", "--name", "Bad Name"], "--name 'Bad Name': use lowercase"),
        (["init", "app/notes.txt"], "exists and is not a directory"),
    ]:
        proc = cli("tiramisu", *args, cwd=tmp_path)
        assert proc.returncode == 2 and message in one_line_error(proc), proc.stderr


def test_the_manifest_name_is_honoured_and_checked(tmp_path, apps_cache):
    plan = plan_starter(tmp_path / "Some Dir", language="wat")
    assert plan.name == "some-dir" and plan.paths() == ["main.wat", "tiramisu.toml"]
    app = tmp_path / "app"
    app.mkdir()
    for rel, text in plan.files.items():
        (app / rel).write_text(text.replace('name = "some-dir"', 'name = "greeter"'))
    assert build_app(app, cache_root=apps_cache).name == "greeter"
    assert build_app(app, name="explicit", cache_root=apps_cache).name == "explicit"
    (app / "tiramisu.toml").write_text("# only comments\nlanguage = 'wat'\n")
    assert build_app(app, cache_root=apps_cache).name == "app"
    for text, message in [('name = "Not Valid"\n', "is not an app name"), ("name = [\n", "not valid TOML")]:
        (app / "tiramisu.toml").write_text(text)
        with pytest.raises(UsageError, match=message):
            build_app(app, cache_root=apps_cache)


def test_starters_ship_as_package_data():
    """setup.cfg's package_data globs must cover every starter file (the wheel test installs them)."""
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    globs = [g.strip() for g in cfg["options.package_data"]["tiramisu_tasks"].split(",")]
    package = starters_dir().parent
    for path in starters_dir().rglob("*"):
        if path.is_file():
            assert any(path.relative_to(package).match(g) for g in globs), path
