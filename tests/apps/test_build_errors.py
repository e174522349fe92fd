"""Compiler errors as a user sees them: every error line (bounded), naming the user's
own file (never the scratch copy under the cache), one `tiramisu:` line last, exit 4.
Real compilers; the pure parts by table."""

import pytest

from tests.helpers import cli, one_line_error
from tiramisu_tasks.apps.build import path_fixer, user_path_display
from tiramisu_tasks.apps.toolrun import BuildFailed, count_errors, error_excerpt

from .test_build import need

CLANG_TWO_ERRORS = """\
In file included from x.c:1:
/scratch/src/two.c:3:12: error: use of undeclared identifier 'missing_one'
    3 |     return missing_one;
      |            ^
/scratch/src/two.c:6:5: error: call to undeclared function 'nope'
    6 |     nope();
      |     ^
2 errors generated.
"""


def test_error_excerpt_keeps_every_error_and_is_bounded():
    lines = error_excerpt("warning: unused\n" + CLANG_TWO_ERRORS)
    assert lines[0].startswith("/scratch/src/two.c:3:12: error") and lines[-1] == "2 errors generated."
    assert count_errors(CLANG_TWO_ERRORS) == 2
    assert count_errors("error[E0425]: cannot find value `x`\nerror: aborting due to 1 previous error\n") == 2
    many = "\n".join(f"f.c:{i}:1: error: e{i}" for i in range(100))
    got = error_excerpt(many, limit=40)
    assert len(got) == 41 and got[-1] == "... (60 more lines of compiler output)"
    assert error_excerpt("no diagnostics\njust text\n", limit=1) == ["just text"]
    assert error_excerpt("\x1b[1;31merror:\x1b[0m bad\n") == ["error: bad"]


@pytest.mark.parametrize(
    "shown, text, expected",
    [
        ("app", "/scratch/src/two.c:3:12: error: x", "app/two.c:3:12: error: x"),
        (".", "/scratch/src/two.c:3:12: error: x", "two.c:3:12: error: x"),
        ("/home/u/app", "cd /scratch/src && make", "cd /home/u/app && make"),
        ("app", "  --> src/main.rs:2:5", "  --> app/src/main.rs:2:5"),
        ("app", "  --> /rustc/library/core.rs:1:1", "  --> /rustc/library/core.rs:1:1"),
        ("app", "  --> src/absent.rs:2:5", "  --> src/absent.rs:2:5"),
        ("app", "src/main.rs:4:5: error: x", "app/src/main.rs:4:5: error: x"),
        ("app", "note: src/main.rs:4:5", "note: src/main.rs:4:5"),
    ],
)
def test_paths_point_at_the_users_files(tmp_path, shown, text, expected):
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    (root / "src" / "main.rs").write_text("fn main() {}\n")
    assert path_fixer("/scratch/src", shown, root)(text) == expected
    failed = BuildFailed("C: " + text, text).rewrite(path_fixer("/scratch/src", shown, root))
    assert failed.details == [expected] and failed.log == expected
    assert failed.message == "C: " + path_fixer("/scratch/src", shown)(text)


def test_user_path_display(tmp_path):
    (tmp_path / "app").mkdir()
    assert user_path_display(tmp_path / "app", cwd=tmp_path) == "app"
    assert user_path_display(tmp_path, cwd=tmp_path) == "."
    assert user_path_display(tmp_path / "app", cwd=tmp_path / "app" / "..") == "app"
    assert user_path_display("/", cwd=tmp_path) == "/"


def _failing_build(tmp_path, rel, text, language):
    need(language)
    project = tmp_path / "proj"
    (project / rel).parent.mkdir(parents=True, exist_ok=True)
    (project / rel).write_text(text)
    cache = tmp_path / "cache"
    proc = cli("tiramisu", "build", "proj", env={"TIRAMISU_CACHE": str(cache)}, cwd=tmp_path, timeout=900)
    assert proc.returncode == 4, proc.stderr
    last = one_line_error(proc)
    # the command line the progress shows runs in the copy; no diagnostic names it
    shown = [ln for ln in proc.stderr.splitlines() if not ln.startswith("$ ")]
    assert not [ln for ln in shown if "app-scratch" in ln or str(cache) in ln], proc.stderr
    return proc.stderr, last


def test_two_c_errors_are_both_shown_at_the_users_file(tmp_path):
    source = "int main(void) {\n    int a = missing_one;\n    int b = missing_two;\n    return a + b;\n}\n"
    stderr, last = _failing_build(tmp_path, "two.c", source, "c")
    assert "proj/two.c:2:13: error" in stderr and "missing_one" in stderr
    assert "proj/two.c:3:13: error" in stderr and "missing_two" in stderr
    assert last.startswith("tiramisu: ") and "proj/two.c:2:13: error" in last and "1 more error" in last


def test_zig_error_is_shown_at_the_users_file(tmp_path):
    source = "pub fn main() void {\n    const x: u8 = 300;\n    _ = x;\n    undefined_thing();\n}\n"
    stderr, last = _failing_build(tmp_path, "main.zig", source, "zig")
    assert "proj/main.zig:" in stderr and "error" in last


def test_rust_errors_are_shown_at_the_users_file(tmp_path):
    need("rust")
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "Cargo.toml").write_text('[package]\nname = "oops"\nversion = "0.1.0"\nedition = "2021"\n')
    source = "fn main() {\n    let a: u32 = missing_one;\n    nope();\n}\n"
    stderr, last = _failing_build(tmp_path, "src/main.rs", source, "rust")
    assert "--> proj/src/main.rs:2:18" in stderr and "--> proj/src/main.rs:3:5" in stderr
    assert "more error" in last
