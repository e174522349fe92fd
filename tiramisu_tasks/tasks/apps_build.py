"""build: an application's source → a validated WASI command module (.wasm).

tiramisu build app/                   # language detected from the source
tiramisu build app/ --out dist --json
tiramisu build-languages              # which toolchains work on this machine
"""

from ..apps.build import build_app, languages_report
from ..taskkit import emit_json, note, table, task
from ..taskkit import out as say


def _human_size(n):
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


@task(
    help={
        "source": "app source: a project dir (Cargo.toml, go.mod, build.zig, AssemblyScript, "
        "C files, .wat) or one file (.c .cpp .zig .rs .go .ts .wat .wasm)",
        "out": "also copy the module to DIR/<name>.wasm (default: leave it in the cache)",
        "name": "app name (default: the source dir or file name, sanitized to [a-z0-9][a-z0-9_-]*)",
        "lang": "force the language: rust, go, c, cpp, zig, wat, assemblyscript, emscripten, wasm",
        "toolchain": "force the toolchain, e.g. zig or clang for C, tinygo or go for Go",
        "json": "print the result as JSON",
    },
    positional=["source"],
)
def build(c, source, out=None, name=None, lang=None, toolchain=None, json=False):
    """Build an app into a WASI preview 1 command module, validated before any upload."""
    # A compiler's errors (BuildFailed.details: every error line, bounded) are
    # printed above the one-line error by the task decorator.
    result = build_app(source, out_dir=out, name=name, language=lang, toolchain=toolchain, progress=note)
    if json:
        emit_json(result.as_dict())
        return
    state = "cached" if result.cached else f"{result.seconds:.2f} s"
    say(
        f"{result.name}: {result.wasm_path} ({_human_size(result.size)}, {result.language} via "
        f"{result.toolchain}, {state}, sha256 {result.sha256[:16]})"
    )


@task(help={"json": "print JSON instead of a table"})
def build_languages(c, json=False):
    """List the app languages and whether their toolchains work here (else what to install)."""
    rows = languages_report()
    if json:
        emit_json({"languages": rows})
        return
    say(
        table(
            [
                [r["language"], r["toolchain"], "ok" if r["ok"] else "missing", r["identity"] or r["problem"]]
                for r in rows
            ],
            ["LANGUAGE", "TOOLCHAIN", "STATUS", "VERSION / WHAT TO INSTALL"],
        )
    )
