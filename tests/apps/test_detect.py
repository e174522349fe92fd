"""Language detection: pure classification tables, then real directories."""

import pytest

from tiramisu_tasks.apps.detect import choose, classify_dir, classify_file, detect, uses_emscripten
from tiramisu_tasks.errors import UsageError

FILE_CASES = [
    ("app.wasm", "", "wasm"),
    ("hello.wat", "", "wat"),
    ("spec.wast", "", "wat"),
    ("hello.c", "#include <stdio.h>\n", "c"),
    ("hello.c", "#include <emscripten.h>\n", "emscripten"),
    ("hello.c", '  #  include "emscripten/html5.h"\n', "emscripten"),
    ("hello.cpp", "#include <string>\n", "cpp"),
    ("main.zig", "", "zig"),
    ("main.rs", "", "rust"),
    ("main.go", "", "go"),
    ("index.ts", "", "assemblyscript"),
    ("HELLO.C", "", "c"),
]


@pytest.mark.parametrize("name,head,language", FILE_CASES, ids=[f"{n}-{lang}" for n, _, lang in FILE_CASES])
def test_classify_file(name, head, language):
    assert classify_file(name, head)[0].language == language


def test_classify_file_unknown_suffix():
    assert classify_file("notes.txt") == []


def _heads(mapping):
    return lambda rel: mapping.get(rel, "")


DIR_CASES = [
    ("cargo", ["Cargo.toml", "src/main.rs"], {}, "rust", None),
    ("cargo wins over a C helper", ["Cargo.toml", "src/main.rs", "csrc/x.c"], {}, "rust", None),
    ("go module", ["go.mod", "main.go"], {}, "go", None),
    ("zig build", ["build.zig", "src/main.zig"], {}, "zig", None),
    ("zig main", ["src/main.zig", "src/util.zig"], {}, "zig", "src/main.zig"),
    ("single zig", ["hello.zig"], {}, "zig", "hello.zig"),
    ("asconfig", ["asconfig.json", "assembly/index.ts"], {}, "assemblyscript", "assembly/index.ts"),
    (
        "package.json with assemblyscript",
        ["package.json", "assembly/index.ts"],
        {"package.json": '{"devDependencies": {"assemblyscript": "0.28.20"}}'},
        "assemblyscript",
        "assembly/index.ts",
    ),
    ("assembly layout", ["assembly/index.ts"], {}, "assemblyscript", "assembly/index.ts"),
    (
        "plain package.json is not AS",
        ["package.json", "hello.wat"],
        {"package.json": '{"name": "x"}'},
        "wat",
        "hello.wat",
    ),
    ("c files", ["a.c", "b.c", "include/a.h"], {}, "c", None),
    ("cpp files", ["a.c", "b.cpp"], {}, "cpp", None),
    ("emscripten header", ["a.c", "b.c"], {"b.c": "#include <emscripten.h>"}, "emscripten", None),
    ("one wat", ["hello.wat", "README.md"], {}, "wat", "hello.wat"),
    ("main.wat among several", ["main.wat", "lib.wat"], {}, "wat", "main.wat"),
    ("ready wasm", ["app.wasm", "README.md"], {}, "wasm", "app.wasm"),
]


@pytest.mark.parametrize("files,heads,language,entry", [c[1:] for c in DIR_CASES], ids=[c[0] for c in DIR_CASES])
def test_classify_dir(files, heads, language, entry):
    best, reasons = choose(classify_dir(files, _heads(heads)), "dir")
    assert (best.language, best.entry) == (language, entry)
    assert reasons and all(isinstance(r, str) for r in reasons)


def test_nothing_buildable_is_a_clear_error():
    with pytest.raises(UsageError, match="cannot tell the language of dir"):
        choose(classify_dir(["README.md", "notes.txt"], _heads({})), "dir")


def test_two_wat_files_without_main_are_ambiguous():
    assert classify_dir(["a.wat", "b.wat"], _heads({})) == []


def test_forced_language_and_missing_forced_language():
    cands = classify_dir(["a.c"], _heads({}))
    best, reasons = choose(cands, "d", "emscripten")
    assert best.language == "emscripten" and "--lang emscripten" in reasons
    with pytest.raises(UsageError, match="--lang rust: no rust source in d"):
        choose(cands, "d", "rust")
    with pytest.raises(UsageError, match="unknown language 'cobol'"):
        choose(cands, "d", "cobol")


def test_ambiguity_is_reported_but_generic_emscripten_fallback_is_not():
    _, reasons = choose(classify_dir(["Cargo.toml", "go.mod"], _heads({})), "d")
    assert any("also looks like go" in r for r in reasons)
    _, reasons = choose(classify_dir(["a.c"], _heads({})), "d")
    assert not any("also looks like" in r for r in reasons)


def test_uses_emscripten():
    assert uses_emscripten("#include <emscripten/emscripten.h>")
    assert not uses_emscripten("// #include <emscripten.h> is mentioned in a comment only\nint x;")


# ------------------------------------------------------------ real paths ---


def test_detect_project_dir_ignores_build_outputs(tmp_path):
    (tmp_path / "hello.wat").write_text("(module)")
    for junk in ("node_modules/x/y.c", "target/debug/z.c", ".git/objects/q.c", "build/out.wasm"):
        p = tmp_path / junk
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("int x;")
    det = detect(tmp_path)
    assert (det.language, det.entry, det.single_file) == ("wat", "hello.wat", False)


def test_detect_manifest_file_means_its_project(tmp_path):
    (tmp_path / "Cargo.toml").write_text("[package]\nname='x'\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.rs").write_text("fn main(){}")
    det = detect(tmp_path / "Cargo.toml")
    assert det.language == "rust" and det.root == tmp_path.resolve() and not det.single_file


def test_detect_single_file(tmp_path):
    f = tmp_path / "api.c"
    f.write_text("#include <stdio.h>\nint main(void){return 0;}\n")
    det = detect(f)
    assert (det.language, det.entry, det.single_file, det.root) == ("c", "api.c", True, tmp_path.resolve())


@pytest.mark.parametrize(
    "name,msg",
    [
        ("missing", "no such file or directory"),
        ("notes.txt", "unknown kind of source"),
    ],
    ids=["missing", "unknown-suffix"],
)
def test_detect_errors(tmp_path, name, msg):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(UsageError, match=msg):
        detect(tmp_path / name)
