"""cserver/ts_wasmtime.h against the pinned Wasmtime: symbols exported, signatures
and struct sizes equal to the ctypes declarations in the same wheel's _bindings.py."""

import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HEADER = Path(__file__).resolve().parents[2] / "cserver" / "ts_wasmtime.h"
SCALARS = {
    "void": None,
    "bool": ctypes.c_bool,
    "char": ctypes.c_char,
    "int": ctypes.c_int,
    "size_t": ctypes.c_size_t,
    "ptrdiff_t": ctypes.c_ssize_t,
    "uint8_t": ctypes.c_uint8,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int64_t": ctypes.c_int64,
    "unsigned char": ctypes.c_ubyte,
}
DECL = re.compile(r"^TS_WT_API (?P<ret>.+?)\s*(?P<ptr>\**)(?P<name>\w+)\((?P<args>.*)\);$")
FNPTR = re.compile(r"^typedef (?P<ret>.+?)\s*\(\*(?P<name>\w+)\)\((?P<args>.*)\);$")


@pytest.fixture(scope="module")
def pinned():
    import platform

    from tiramisu_tasks.artifacts.wasmtime import wasmtime_library
    from tiramisu_tasks.targets import parse_target_name

    return wasmtime_library(parse_target_name(platform.machine()))


class _Fn:
    restype = None
    argtypes = None


class _Dll:
    def __init__(self):
        self.fns = {}

    def __getattr__(self, name):
        return self.fns.setdefault(name, _Fn())


def load_bindings(path):
    """Execute _bindings.py with a recording stand-in for the library: no dlopen needed."""
    src = Path(path).read_text()
    src = src.replace("from ._ffi import dll, wasm_val_t, wasm_ref_t", "")
    dll = _Dll()
    ns = {
        "dll": dll,
        "wasm_val_t": type("wasm_val_t", (ctypes.Structure,), {}),
        "wasm_ref_t": type("wasm_ref_t", (ctypes.Structure,), {}),
        "__name__": "bindings",
    }
    exec(compile(src, str(path), "exec"), ns)
    return ns, dll.fns


def parse_header(text):
    typedefs, fnptrs, decls, asserts = {}, {}, {}, {}
    for line in text.splitlines():
        line = line.strip()
        m = FNPTR.match(line)
        if m:
            fnptrs[m["name"]] = (m["ret"], m["args"])
            continue
        m = re.match(r"^typedef (struct \w+|\w+) (\w+);$", line)
        if m:
            typedefs[m[2]] = m[1]
            continue
        m = re.match(r"^typedef struct (\w+) \{$", line)
        if m:
            typedefs[m[1]] = "struct " + m[1]
        m = DECL.match(line)
        if m:
            decls[m["name"]] = (m["ret"] + m["ptr"], m["args"])
        m = re.match(r"^_Static_assert\(sizeof\((\w+)\) == (\d+)", line)
        if m:
            asserts[m[1]] = int(m[2])
    return typedefs, fnptrs, decls, asserts


def params(args):
    args = args.strip()
    if args in ("", "void"):
        return []
    out = []
    for a in args.split(","):
        a = a.strip()
        m = re.match(r"^(.*?)(\w+)$", a)  # drop the parameter name
        out.append(m[1].strip() if m and m[1].strip() not in ("", "const", "struct") else a)
    return out


class Resolver:
    def __init__(self, ns, typedefs, fnptrs):
        self.ns, self.typedefs, self.fnptrs = ns, typedefs, fnptrs

    def base(self, name):
        if name in SCALARS:
            return SCALARS[name]
        if name in self.fnptrs:
            ret, args = self.fnptrs[name]
            return ctypes.CFUNCTYPE(self.type(ret), *[self.type(p) for p in params(args)])
        if name in self.ns and isinstance(self.ns[name], type):
            return self.ns[name]  # the bindings' own class (structs and aliases)
        target = self.typedefs.get(name)
        if target and not target.startswith("struct "):
            return self.base(target)
        raise KeyError(f"no ctypes equivalent for {name!r}")

    def type(self, ctype):
        t = ctype.replace("const ", "").replace("struct ", "").strip()
        depth = t.count("*")
        name = t.replace("*", "").strip()
        if depth and name == "void":
            return ctypes.c_void_p if depth == 1 else ctypes.POINTER(ctypes.c_void_p)
        result = self.base(name)
        for _ in range(depth):
            result = ctypes.POINTER(result)
        return result


def same(a, b):
    if a is b:
        return True
    if a is None or b is None:
        return False
    if hasattr(a, "_argtypes_") and hasattr(b, "_argtypes_"):
        return (
            same(a._restype_, b._restype_)
            and len(a._argtypes_) == len(b._argtypes_)
            and all(same(x, y) for x, y in zip(a._argtypes_, b._argtypes_))
        )
    return False


def test_header_agrees_with_bindings(pinned):
    ns, fns = load_bindings(pinned.bindings)
    typedefs, fnptrs, decls, asserts = parse_header(HEADER.read_text())
    assert len(decls) > 40
    r = Resolver(ns, typedefs, fnptrs)
    problems = []
    for name, (ret, args) in sorted(decls.items()):
        if name not in fns:
            problems.append(f"{name}: not in _bindings.py")
            continue
        want = fns[name]
        got_ret = r.type(ret)
        got_args = [r.type(p) for p in params(args)]
        if not same(got_ret, want.restype):
            problems.append(f"{name}: result {got_ret} != bindings {want.restype}")
        if len(got_args) != len(want.argtypes) or not all(same(a, b) for a, b in zip(got_args, want.argtypes)):
            problems.append(f"{name}: args {got_args} != bindings {want.argtypes}")
    assert problems == []


def test_struct_sizes_match_bindings(pinned):
    ns, _ = load_bindings(pinned.bindings)
    _, _, _, asserts = parse_header(HEADER.read_text())
    assert set(asserts) >= {"wasm_byte_vec_t", "wasmtime_func_t", "wasmtime_instance_t", "wasmtime_extern_t"}
    for name, size in asserts.items():
        assert ctypes.sizeof(ns[name]) == size, name


def test_every_declared_symbol_is_exported(pinned):
    nm = shutil.which("nm") or shutil.which("llvm-nm")
    if not nm:
        pytest.skip("no nm (binutils) installed")
    out = subprocess.run([nm, "-D", "--defined-only", str(pinned.lib)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in out.stdout.splitlines() if line.strip()}
    _, _, decls, _ = parse_header(HEADER.read_text())
    assert sorted(set(decls) - exported) == []


def test_bindings_checker_catches_a_wrong_signature(pinned):
    ns, fns = load_bindings(pinned.bindings)
    r = Resolver(ns, {}, {})
    assert not same(r.type("uint32_t"), fns["wasmtime_config_max_wasm_stack_set"].argtypes[1])
    assert same(r.type("size_t"), fns["wasmtime_config_max_wasm_stack_set"].argtypes[1])
