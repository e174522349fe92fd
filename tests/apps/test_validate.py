"""The WebAssembly reader/validator, on modules assembled byte by byte here.

Every malformed input must end in InvalidWasm with a readable message, never
another exception; the WASI signature table is checked against Wasmtime's own
WASI linker (the same release the server embeds).
"""

import random

import pytest

from tiramisu_tasks.apps.validate import (
    WASI_P1_FUNCS,
    InvalidWasm,
    command_problems,
    parse_module,
    validate_bytes,
)

I32, I64 = b"\x7f", b"\x7e"
HEADER = b"\0asm\x01\x00\x00\x00"
FD_WRITE = ("fd_write", [I32] * 4, [I32])


def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def name(s):
    raw = s.encode() if isinstance(s, str) else s
    return leb(len(raw)) + raw


def vec(items):
    return leb(len(items)) + b"".join(items)


def section(sid, payload):
    return bytes([sid]) + leb(len(payload)) + payload


def functype(params=(), results=()):
    return b"\x60" + vec(list(params)) + vec(list(results))


def module(
    imports=(FD_WRITE,),
    import_module="wasi_snapshot_preview1",
    start=True,
    start_name="_start",
    start_params=(),
    memory_export="memory",
    extra_exports=(),
    extra_sections=(),
):
    """A small command module: the given function imports, one local function, a memory."""
    types = [functype(start_params)] + [functype(p, r) for _, p, r in imports]
    imps = [name(import_module) + name(n) + b"\x00" + leb(i + 1) for i, (n, _, _) in enumerate(imports)]
    exports = []
    if start:
        exports.append(name(start_name) + b"\x00" + leb(len(imports)))
    if memory_export:
        exports.append(name(memory_export) + b"\x02" + leb(0))
    exports += list(extra_exports)
    body = b"\x00\x0b"  # no locals, end
    parts = [
        section(1, vec(types)),
        section(2, vec(imps)) if imps else b"",
        section(3, vec([leb(0)])),
        section(5, vec([b"\x00\x01"])),
        section(7, vec(exports)),
        section(10, vec([leb(len(body)) + body])),
        section(0, name("producers") + b"x"),
    ]
    return HEADER + b"".join(parts) + b"".join(extra_sections)


def test_minimal_command_is_valid():
    info = validate_bytes(module())
    assert [(i.module, i.name, i.kind) for i in info.imports] == [("wasi_snapshot_preview1", "fd_write", "func")]
    assert [e.name for e in info.exports] == ["_start", "memory"]
    assert info.func_signature(1) == ((), ())
    assert info.func_signature(0) == ((0x7F,) * 4, (0x7F,))


def test_module_without_imports_needs_no_memory():
    validate_bytes(module(imports=(), memory_export=None))


BAD = [
    ("empty", b"", "the file is empty"),
    ("short magic", b"\0as", "truncated"),
    ("header only half", b"\0asm\x01", "truncated"),
    ("garbage", b"hello, world! not wasm", "no \\\\0asm magic"),
    ("elf", b"\x7fELF\x02\x01\x01\x00" + b"\0" * 16, "ELF executable"),
    ("wat text", b"(module\n  (func))", "WebAssembly text"),
    (
        "component",
        b"\0asm\x0d\x00\x01\x00" + b"\0" * 8,
        "app.wasm: (not a valid component|cannot run on Tiramisu: it exports no wasi:cli/run)",
    ),
    ("old component draft", b"\0asm\x0a\x00\x01\x00", "not a valid component"),
    ("version 2", b"\0asm\x02\x00\x00\x00", "unsupported WebAssembly version 2"),
    ("section past end", HEADER + b"\x01\x05\x00", "claims 5 bytes, only 1 left"),
    ("section size never ends", HEADER + b"\x01\xff\xff\xff\xff\xff\x01", "LEB128 integer longer than 32 bits"),
    ("unknown section id", HEADER + b"\x2a\x00", "unknown section id 42"),
    ("duplicate type section", HEADER + section(1, vec([])) + section(1, vec([])), "duplicate type section"),
    ("sections out of order", HEADER + section(3, vec([])) + section(1, vec([])), "type section out of order"),
    (
        "bad utf-8 import name",
        HEADER + section(1, vec([functype()])) + section(2, vec([name(b"\xff\xfe") + name("x") + b"\x00\x00"])),
        "not valid UTF-8",
    ),
    ("import count lies", HEADER + section(2, leb(1000)), "import count 1000 exceeds the section"),
    ("unknown import kind", HEADER + section(2, vec([name("a") + name("b") + b"\x09"])), "unknown import kind 0x09"),
    ("stray bytes in export section", HEADER + section(7, vec([]) + b"\x00"), "stray bytes"),
    ("custom section without name", HEADER + section(0, b""), "unexpected end"),
]


@pytest.mark.parametrize("data,msg", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_malformed_input_gives_one_clear_line(data, msg):
    with pytest.raises(InvalidWasm, match=msg) as err:
        validate_bytes(data, "app.wasm")
    text = err.value.message
    assert text.startswith("app.wasm: ") and "\n" not in text


NOT_RUNNABLE = [
    ("no _start", dict(start=False), "exports no _start function"),
    ("reactor", dict(start_name="_initialize"), "it is a WASI reactor"),
    ("_start takes a value", dict(start_params=[I32]), "_start function takes or returns values"),
    (
        "_start is a memory",
        dict(start=False, extra_exports=[name("_start") + b"\x02" + leb(0)]),
        "its _start export is a memory",
    ),
    (
        "env import",
        dict(import_module="env", imports=(("abort", [I32] * 4, []),)),
        "imports env.abort, but only wasi_snapshot_preview1 is available: it expects a JavaScript/host 'env'",
    ),
    ("wasi_unstable", dict(import_module="wasi_unstable"), "WASI snapshot 0"),
    (
        "unknown wasi function",
        dict(imports=(("fd_frobnicate", [I32], [I32]),)),
        "wasi_snapshot_preview1.fd_frobnicate, which WASI preview 1 does not have",
    ),
    (
        "wrong wasi signature",
        dict(imports=(("fd_write", [I32], [I32]),)),
        r"fd_write as \(i32\) -> \(i32\), WASI preview 1 has \(i32, i32, i32, i32\) -> \(i32\)",
    ),
    ("memory not exported", dict(memory_export=None), "does not export its memory as 'memory'"),
]


@pytest.mark.parametrize("kwargs,msg", [c[1:] for c in NOT_RUNNABLE], ids=[c[0] for c in NOT_RUNNABLE])
def test_well_formed_but_not_a_runnable_command(kwargs, msg):
    with pytest.raises(InvalidWasm, match=msg) as err:
        validate_bytes(module(**kwargs), "app.wasm")
    assert "cannot run on Tiramisu" in err.value.message


def test_many_foreign_imports_are_summarised():
    imports = tuple((f"f{i}", [], []) for i in range(7))
    problems = command_problems(parse_module(module(import_module="env", imports=imports)))
    assert "env.f0, env.f1, env.f2, env.f3 and 3 more" in problems[0]


def test_every_prefix_of_a_module_fails_cleanly():
    data = module()
    trailing_custom = len(section(0, name("producers") + b"x"))
    for n in range(len(data)):
        if n == len(data) - trailing_custom:
            validate_bytes(data[:n])  # cut exactly before the last custom section: still whole
            continue
        with pytest.raises(InvalidWasm):
            validate_bytes(data[:n])


def test_random_corruption_never_escapes_as_another_exception():
    rng = random.Random(1234)
    base = bytearray(module())
    for _ in range(2000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(8, len(data))] = rng.randrange(256)
        try:
            validate_bytes(bytes(data))
        except InvalidWasm:
            pass


def test_wasi_table_matches_wasmtimes_linker():
    """Each (name, signature) we accept links with Wasmtime's WASI; a wrong one does not."""
    wasmtime = pytest.importorskip("wasmtime")
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    names = {0x7F: I32, 0x7E: I64}

    def instantiate(fname, params, results):
        data = module(imports=((fname, [names[p] for p in params], [names[r] for r in results]),))
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        linker.instantiate(store, wasmtime.Module(engine, data))

    for fname, (params, results) in WASI_P1_FUNCS.items():
        instantiate(fname, params, results)
    with pytest.raises(wasmtime.WasmtimeError):
        instantiate("fd_write", (0x7F,), (0x7F,))
    with pytest.raises(wasmtime.WasmtimeError):
        instantiate("fd_frobnicate", (0x7F,), (0x7F,))


def test_gc_types_stop_signature_checks_but_not_the_walk():
    # a rec group (0x4e) in the type section: signatures become unknown, no crash
    data = (
        HEADER
        + section(1, vec([b"\x4e" + vec([functype()])]))
        + section(3, vec([leb(0)]))
        + section(7, vec([name("_start") + b"\x00" + leb(0)]))
        + section(10, vec([b"\x02\x00\x0b"]))
    )
    info = validate_bytes(data)
    assert info.types is None and info.func_signature(0) is None
