"""Our own reader of the WebAssembly binary format, just deep enough to tell
whether a module is something the server can run: a WASI preview 1 *command*.

What is checked (before anything is uploaded):

* the 8-byte preamble: ``\\0asm`` and version 1. A component (the preamble's
  layer field is 1) is not read here: :mod:`.component` has Wasmtime check it
  (a WASI 0.2 command exporting ``wasi:cli/run``).
* the section walk: ids, LEB128 sizes within the file, known section order,
  no duplicates; the import, function, type and export sections are decoded.
* an exported function ``_start`` taking and returning nothing.
* every import comes from ``wasi_snapshot_preview1``. ``wasi_unstable`` (the
  older snapshot 0) is refused on purpose: Wasmtime's C API linker, which the
  server uses, does not define it (checked with wasmtime 50: "unknown import
  `wasi_unstable::fd_write`"), so such a module could never be instantiated.
* a module that imports WASI functions exports its linear memory as ``memory``
  (WASI reads and writes buffers there).

Everything malformed — truncated, garbage, a LEB128 that never ends, a name
that is not UTF-8 — raises :class:`InvalidWasm` with one line saying where.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

from ..errors import BuildError

WASI_MODULE = "wasi_snapshot_preview1"
MAGIC = b"\0asm"
CORE_VERSION = 1

KIND_NAMES = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}

# Section ids in the order a module must list them (custom sections, id 0,
# may appear anywhere). Tag (13) sits between memory and global; data count
# (12) between element and code.
SECTION_NAMES = {
    0: "custom",
    1: "type",
    2: "import",
    3: "function",
    4: "table",
    5: "memory",
    6: "global",
    7: "export",
    8: "start",
    9: "element",
    10: "code",
    11: "data",
    12: "datacount",
    13: "tag",
}
SECTION_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]

# The whole WASI preview 1 function set with signatures (params, results);
# i32 = 0x7F, i64 = 0x7E. tests/apps/test_validate.py links every entry against
# Wasmtime's own WASI linker, so this table cannot drift from what the server
# provides.
_I, _L = 0x7F, 0x7E
WASI_P1_FUNCS = {
    "args_get": ((_I, _I), (_I,)),
    "args_sizes_get": ((_I, _I), (_I,)),
    "environ_get": ((_I, _I), (_I,)),
    "environ_sizes_get": ((_I, _I), (_I,)),
    "clock_res_get": ((_I, _I), (_I,)),
    "clock_time_get": ((_I, _L, _I), (_I,)),
    "fd_advise": ((_I, _L, _L, _I), (_I,)),
    "fd_allocate": ((_I, _L, _L), (_I,)),
    "fd_close": ((_I,), (_I,)),
    "fd_datasync": ((_I,), (_I,)),
    "fd_fdstat_get": ((_I, _I), (_I,)),
    "fd_fdstat_set_flags": ((_I, _I), (_I,)),
    "fd_fdstat_set_rights": ((_I, _L, _L), (_I,)),
    "fd_filestat_get": ((_I, _I), (_I,)),
    "fd_filestat_set_size": ((_I, _L), (_I,)),
    "fd_filestat_set_times": ((_I, _L, _L, _I), (_I,)),
    "fd_pread": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_prestat_get": ((_I, _I), (_I,)),
    "fd_prestat_dir_name": ((_I, _I, _I), (_I,)),
    "fd_pwrite": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_read": ((_I, _I, _I, _I), (_I,)),
    "fd_readdir": ((_I, _I, _I, _L, _I), (_I,)),
    "fd_renumber": ((_I, _I), (_I,)),
    "fd_seek": ((_I, _L, _I, _I), (_I,)),
    "fd_sync": ((_I,), (_I,)),
    "fd_tell": ((_I, _I), (_I,)),
    "fd_write": ((_I, _I, _I, _I), (_I,)),
    "path_create_directory": ((_I, _I, _I), (_I,)),
    "path_filestat_get": ((_I, _I, _I, _I, _I), (_I,)),
    "path_filestat_set_times": ((_I, _I, _I, _I, _L, _L, _I), (_I,)),
    "path_link": ((_I, _I, _I, _I, _I, _I, _I), (_I,)),
    "path_open": ((_I, _I, _I, _I, _I, _L, _L, _I, _I), (_I,)),
    "path_readlink": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_remove_directory": ((_I, _I, _I), (_I,)),
    "path_rename": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "path_symlink": ((_I, _I, _I, _I, _I), (_I,)),
    "path_unlink_file": ((_I, _I, _I), (_I,)),
    "poll_oneoff": ((_I, _I, _I, _I), (_I,)),
    "proc_exit": ((_I,), ()),
    "proc_raise": ((_I,), (_I,)),
    "sched_yield": ((), (_I,)),
    "random_get": ((_I, _I), (_I,)),
    "sock_accept": ((_I, _I, _I), (_I,)),
    "sock_recv": ((_I, _I, _I, _I, _I, _I), (_I,)),
    "sock_send": ((_I, _I, _I, _I, _I), (_I,)),
    "sock_shutdown": ((_I, _I), (_I,)),
}
_VALTYPE_NAMES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}


def signature_text(sig):
    params, results = sig
    name = lambda t: _VALTYPE_NAMES.get(t, "ref")  # noqa: E731
    return f"({', '.join(map(name, params))}) -> ({', '.join(map(name, results))})"


# Hints for import modules people commonly end up with.
IMPORT_HINTS = {
    "wasi_unstable": "it targets WASI snapshot 0 (wasi_unstable); rebuild with a current toolchain for wasm32-wasip1",
    "env": "it expects a JavaScript/host 'env' (Emscripten without -sSTANDALONE_WASM, "
    "AssemblyScript without @assemblyscript/wasi-shim, or wasm32-unknown-unknown)",
    "__wbindgen_placeholder__": "it was built for wasm-bindgen/JavaScript; build for wasm32-wasip1 instead",
}


class InvalidWasm(BuildError):
    """The file is not a module the server can run; the message says why."""


@dataclass(frozen=True)
class Import:
    module: str
    name: str
    kind: str
    type_index: Optional[int] = None  # for functions


@dataclass(frozen=True)
class Export:
    name: str
    kind: str
    index: int


@dataclass
class ModuleInfo:
    imports: List[Import] = field(default_factory=list)
    exports: List[Export] = field(default_factory=list)
    # function types: (params, results) as tuples of value-type bytes, or None
    # when the type section uses forms we do not decode (GC proposal).
    types: Optional[List[Tuple[tuple, tuple]]] = field(default_factory=list)
    func_types: List[int] = field(default_factory=list)  # type index per defined function
    sections: List[str] = field(default_factory=list)
    has_start_section: bool = False

    def export(self, name):
        for e in self.exports:
            if e.name == name:
                return e
        return None

    def type_at(self, index):
        if self.types is None or index is None or index >= len(self.types):
            return None
        return self.types[index]

    def func_signature(self, index):
        """(params, results) of function ``index`` in the function index space, or None."""
        imported = [i for i in self.imports if i.kind == "func"]
        if index < len(imported):
            return self.type_at(imported[index].type_index)
        local = index - len(imported)
        if local >= len(self.func_types):
            return None
        return self.type_at(self.func_types[local])


class _Reader:
    """A cursor over bytes; every read checks bounds and says what it was reading."""

    def __init__(self, data, pos=0, end=None, what="module"):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.what = what

    def fail(self, msg):
        raise InvalidWasm(f"not a valid WebAssembly module: {msg} (in {self.what}, at byte {self.pos})")

    def byte(self):
        if self.pos >= self.end:
            self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def bytes(self, n):
        if n > self.end - self.pos:
            self.fail(f"needs {n} bytes, only {self.end - self.pos} left")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return bytes(b)

    def _leb(self, bits):
        """Raw LEB128 groups: (value, bits consumed, last byte); at most ceil(bits/7) bytes."""
        result = shift = 0
        start = self.pos
        while True:
            if self.pos - start >= (bits + 6) // 7:
                self.fail(f"LEB128 integer longer than {bits} bits")
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result, shift, b

    def uleb(self, bits=32):
        result, _, _ = self._leb(bits)
        if result >> bits:
            self.fail(f"LEB128 integer out of range for u{bits}")
        return result

    def sleb(self, bits=33):
        result, shift, b = self._leb(bits)
        if b & 0x40:
            result -= 1 << shift
        return result

    def name(self):
        n = self.uleb()
        raw = self.bytes(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("a name is not valid UTF-8")

    def count(self, what):
        n = self.uleb()
        # every element takes at least one byte: a count beyond the section is a lie
        if n > self.end - self.pos:
            self.fail(f"{what} count {n} exceeds the section")
        return n

    def at_end(self):
        return self.pos >= self.end


def _skip_reftype(r, first):
    if first in (0x63, 0x64):  # (ref null? heaptype), function-references/GC proposals
        r.sleb()
    elif first not in (0x70, 0x6F) and not (0x69 <= first <= 0x74):
        r.fail(f"unknown reference type 0x{first:02x}")


def _skip_valtype(r):
    t = r.byte()
    if t in (0x7F, 0x7E, 0x7D, 0x7C, 0x7B):
        return t
    _skip_reftype(r, t)
    return t


def _skip_limits(r):
    flags = r.byte()
    if flags > 0x07:
        r.fail(f"unknown limits flags 0x{flags:02x}")
    bits = 64 if flags & 0x04 else 32
    r.uleb(bits)
    if flags & 0x01:
        r.uleb(bits)


def _read_importdesc(r):
    """(kind name, type index for functions else None)."""
    kind = r.byte()
    type_index = None
    if kind == 0x00:
        type_index = r.uleb()
    elif kind == 0x01:
        _skip_reftype(r, r.byte())
        _skip_limits(r)
    elif kind == 0x02:
        _skip_limits(r)
    elif kind == 0x03:
        _skip_valtype(r)
        if r.byte() not in (0, 1):
            r.fail("bad global mutability")
    elif kind == 0x04:
        r.byte()
        r.uleb()
    else:
        r.fail(f"unknown import kind 0x{kind:02x}")
    return KIND_NAMES[kind], type_index


def _read_types(r, info):
    n = r.count("type")
    for _ in range(n):
        form = r.byte()
        if form != 0x60:
            info.types = None  # rec/sub/struct types (GC): stop decoding, signatures unknown
            return
        params = tuple(_skip_valtype(r) for _ in range(r.count("param")))
        results = tuple(_skip_valtype(r) for _ in range(r.count("result")))
        info.types.append((params, results))


def preamble_problem(data):
    """A one-line reason the first 8 bytes are not a core module, or None (pure)."""
    if not data:
        return "the file is empty"
    if len(data) < 8:
        head = bytes(data[:4])
        if MAGIC.startswith(head) or head == MAGIC:
            return f"file is truncated ({len(data)} bytes; a module's header alone is 8)"
        return "not a WebAssembly file (no \\0asm magic)"
    if bytes(data[:4]) != MAGIC:
        if bytes(data[:4]) == b"\x7fELF":
            return "this is an ELF executable, not WebAssembly"
        if bytes(data[:1]) in (b"(", b";") or bytes(data[:7]).lstrip().startswith(b"(module"):
            return "this looks like WebAssembly text (.wat); give it a .wat name so it is assembled"
        return "not a WebAssembly file (no \\0asm magic)"
    version = int.from_bytes(data[4:6], "little")
    layer = int.from_bytes(data[6:8], "little")
    if layer == 1:
        return "this is a WebAssembly component, not a core module (validate_bytes checks components)"
    if layer != 0 or version != CORE_VERSION:
        return f"unsupported WebAssembly version {version} (layer {layer}); expected a version 1 core module"
    return None


def parse_module(data) -> ModuleInfo:
    """Walk the sections of a core module; raises InvalidWasm on anything malformed."""
    data = memoryview(data).tobytes() if not isinstance(data, (bytes, bytearray)) else data
    problem = preamble_problem(data)
    if problem:
        raise InvalidWasm(problem)
    info = ModuleInfo()
    r = _Reader(data, 8)
    last_order = -1
    seen = set()
    code_count = 0
    while not r.at_end():
        sid = r.byte()
        size = r.uleb()
        start = r.pos
        if size > len(data) - start:
            r.fail(
                f"section {SECTION_NAMES.get(sid, sid)} claims {size} bytes, "
                f"only {len(data) - start} left (file truncated?)"
            )
        name = SECTION_NAMES.get(sid)
        if name is None:
            r.fail(f"unknown section id {sid}")
        if sid != 0:
            if sid in seen:
                r.fail(f"duplicate {name} section")
            order = SECTION_ORDER.index(sid)
            if order < last_order:
                r.fail(f"{name} section out of order")
            last_order = order
            seen.add(sid)
        info.sections.append(name)
        s = _Reader(data, start, start + size, f"{name} section")
        if sid == 0:
            s.name()  # a custom section must at least have a valid name
        elif sid == 1:
            _read_types(s, info)
            if info.types is None:
                s.pos = s.end
        elif sid == 2:
            for _ in range(s.count("import")):
                module = s.name()
                field_name = s.name()
                kind, type_index = _read_importdesc(s)
                info.imports.append(Import(module, field_name, kind, type_index))
        elif sid == 3:
            info.func_types = [s.uleb() for _ in range(s.count("function"))]
        elif sid == 7:
            for _ in range(s.count("export")):
                ename = s.name()
                kind = s.byte()
                if kind not in KIND_NAMES:
                    s.fail(f"unknown export kind 0x{kind:02x}")
                info.exports.append(Export(ename, KIND_NAMES[kind], s.uleb()))
        elif sid == 8:
            info.has_start_section = True
            s.uleb()
        elif sid == 10:
            code_count = s.count("code")
            s.pos = s.end  # function bodies are the engine's business
        else:
            s.pos = s.end  # contents we do not need (code, data, ...)
        if sid in (1, 2, 3, 7, 8) and s.pos != s.end:
            s.fail(f"{s.end - s.pos} stray bytes at the end of the section")
        r.pos = start + size
    if len(info.func_types) != code_count:
        raise InvalidWasm(
            f"not a valid WebAssembly module: {len(info.func_types)} functions declared "
            f"but {code_count} bodies (file truncated?)"
        )
    return info


def command_problems(info: ModuleInfo) -> List[str]:
    """Why this module is not a runnable WASI preview 1 command (empty list: it is). Pure."""
    problems = []
    start = info.export("_start")
    if start is None:
        if info.export("_initialize") is not None:
            problems.append(
                "it is a WASI reactor (exports _initialize, no _start); build an executable with a main function"
            )
        else:
            problems.append(
                "it exports no _start function (not a WASI command; build an executable with a main function)"
            )
    elif start.kind != "func":
        problems.append(f"its _start export is a {start.kind}, not a function")
    else:
        sig = info.func_signature(start.index)
        if sig is not None and sig != ((), ()):
            problems.append("its _start function takes or returns values (must be () -> ())")
    foreign = [i for i in info.imports if i.module != WASI_MODULE]
    if foreign:
        shown = ", ".join(f"{i.module}.{i.name}" for i in foreign[:4])
        more = f" and {len(foreign) - 4} more" if len(foreign) > 4 else ""
        hint = next((IMPORT_HINTS[i.module] for i in foreign if i.module in IMPORT_HINTS), None)
        msg = f"it imports {shown}{more}, but only {WASI_MODULE} is available"
        problems.append(msg + (f": {hint}" if hint else ""))
    for imp in (i for i in info.imports if i.module == WASI_MODULE):
        if imp.kind != "func":
            problems.append(f"it imports a {imp.kind} {imp.name!r} from {WASI_MODULE}")
        elif imp.name not in WASI_P1_FUNCS:
            problems.append(f"it imports {WASI_MODULE}.{imp.name}, which WASI preview 1 does not have")
        else:
            sig = info.type_at(imp.type_index)
            want = WASI_P1_FUNCS[imp.name]
            if sig is not None and sig != want:
                problems.append(
                    f"it imports {WASI_MODULE}.{imp.name} as {signature_text(sig)}, "
                    f"WASI preview 1 has {signature_text(want)}"
                )
    uses_wasi = any(i.module == WASI_MODULE for i in info.imports)
    memory = info.export("memory")
    if uses_wasi and (memory is None or memory.kind != "memory"):
        problems.append("it calls WASI but does not export its memory as 'memory'")
    return problems


def engine_problem(data):
    """Full validation (function bodies, features) by the Wasmtime release the
    server embeds, when the `wasmtime` package is here: one line, or None."""
    try:
        import wasmtime
    except ImportError:
        return None
    try:
        wasmtime.Module.validate(wasmtime.Engine(), data)
    except wasmtime.WasmtimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        return "Wasmtime rejects it: " + (" ".join(lines[:3])[:300] if lines else "invalid module")
    return None


def validate_bytes(data, what="module", deep=True) -> ModuleInfo:
    """ModuleInfo of a runnable command module, else InvalidWasm naming every problem.

    Our own reader runs first (it gives the specific messages: imports,
    _start); ``deep`` then has Wasmtime validate the code itself. A WASI 0.2
    component goes to :func:`.component.inspect_component` instead (Wasmtime
    reads its world) and gives a :class:`.component.ComponentInfo`.
    """
    from .component import inspect_component, is_component

    if is_component(data):
        return inspect_component(data, what)
    try:
        info = parse_module(data)
    except InvalidWasm as exc:
        raise InvalidWasm(f"{what}: {exc.message}") from None
    problems = command_problems(info)
    if problems:
        raise InvalidWasm(f"{what}: cannot run on Tiramisu: " + "; ".join(problems))
    if deep:
        problem = engine_problem(bytes(data))
        if problem:
            raise InvalidWasm(f"{what}: not a valid module: {problem}")
    return info


def validate_file(path, deep=True) -> ModuleInfo:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidWasm(f"{path}: cannot read: {exc.strerror or exc}") from None
    return validate_bytes(data, str(path), deep)
