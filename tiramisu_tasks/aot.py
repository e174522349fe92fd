"""Ahead-of-time compilation for ``deploy --aot``.

A precompiled module (``.cwasm``) is machine code plus a record of how it was
made; Wasmtime loads it only into an engine of the same Wasmtime version, the
same architecture and OS, the same engine settings (epoch interruption,
allocator and memory tunables, ...) and a CPU with every feature the code uses.
So the one source of truth is the box's server itself: ``custom_server
--engine-settings`` prints, as JSON, the settings it applies (including its
pooling decision, which depends on the box's address space), and
:func:`engine_config` reproduces them key by key with the local ``wasmtime``
package. A key this module does not know means "cannot reproduce": no
guessing, the box compiles.

Whatever we ship, the server stays in charge: it tries the shipped file, and
if Wasmtime refuses it (a CPU feature the box lacks, a setting we missed) it
logs ``precompiled module refused: <reason>; compiled instead`` and compiles.

On the box a shipped module for the .wasm with sha256 S is
``<cache dir>/<S>.cwasm``. ``custom_server --check-module W --precompiled C``
tries C first (and says ``ok <sha> precompiled`` or ``ok <sha> compiled``);
after a successful check the file is renamed into the cache dir *before* the
.wasm is switched live, so the swap finds it.
"""

import json
import platform
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .errors import TiramisuError
from .remote import join
from .targets import ARCH_ALIASES
from .versions import WASMTIME_VERSION

SETTINGS_FORMAT = 1
FALLBACK = "the box's server will compile and cache it"


class AotUnavailable(TiramisuError):
    """The local machine cannot produce a module the box's Wasmtime would accept."""


# ------------------------------------------------------------- pure ---


def _arch(name):
    return ARCH_ALIASES.get(str(name or "").strip().lower())


def wasmtime_version_of(text):
    """The Wasmtime version in ``50.0.1``, ``custom_server 0.1.0 (wasmtime 50.0.1)`` or
    an ``--engine-settings`` dict; None when there is none (pure)."""
    if isinstance(text, dict):
        return text.get("wasmtime")
    text = str(text or "").strip()
    if "(wasmtime " in text:
        text = text.split("(wasmtime ", 1)[1].split(")", 1)[0]
    return text if text and text[0].isdigit() and text != "unknown" else None


def aot_plan(
    target,
    local_machine,
    box_server_version,
    local_system="Linux",
    local_wasmtime=WASMTIME_VERSION,
    engine_settings=None,
):
    """Can this machine precompile for the box? ``(True, what)`` or ``(False, why)`` (pure).

    ``target``: a Target or an arch name; ``local_machine``: ``platform.machine()``;
    ``box_server_version``: the box's Wasmtime version (or its server's
    ``--version`` line, or its ``--engine-settings`` dict); ``engine_settings``:
    that dict when known, so unknown settings are caught here too.
    """
    box_arch = _arch(getattr(target, "arch", target))
    local_arch = _arch(local_machine)
    here = f"the local Wasmtime {local_wasmtime or '(none)'} ({local_arch or local_machine or 'unknown'})"
    if not local_wasmtime:
        return False, f"no local Wasmtime (pip install wasmtime=={WASMTIME_VERSION}); {FALLBACK}"
    if str(local_system) != "Linux":
        return False, f"{here} on {local_system} produces code for {local_system}, the box runs Linux; {FALLBACK}"
    if box_arch is None:
        return False, f"unknown box architecture {getattr(target, 'arch', target)!r}; {FALLBACK}"
    if local_arch != box_arch:
        # The wheels are built without Cranelift's other backends: "Support for this target is disabled".
        return False, f"{here} cannot compile for {box_arch}; {FALLBACK}"
    box_wasmtime = wasmtime_version_of(box_server_version)
    if box_wasmtime is None:
        return False, f"the box's server does not say which Wasmtime it embeds; {FALLBACK}"
    if box_wasmtime != local_wasmtime:
        return False, (
            f"the box's server embeds Wasmtime {box_wasmtime}, the local one is {local_wasmtime} "
            f"(precompiled code only loads in the same version); {FALLBACK}"
        )
    if engine_settings is not None:
        why = settings_problem(engine_settings, box_arch)
        if why:
            return False, f"{why}; {FALLBACK}"
    return True, f"precompiling locally with Wasmtime {local_wasmtime} for {box_arch}"


def engine_settings_command(server_bin, server_conf):
    """What prints the box's engine settings as one JSON line (pure)."""
    return join([server_bin, "--config", server_conf, "--engine-settings"])


def parse_engine_settings(text):
    """The ``--engine-settings`` JSON as a dict; AotUnavailable when it is not that (pure)."""
    try:
        data = json.loads(text)
    except ValueError:
        first = (str(text).strip().splitlines() or ["(nothing)"])[0][:120]
        raise AotUnavailable(f"the box's server does not print engine settings (an older server?): {first}") from None
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
        raise AotUnavailable("the box's engine settings are not a JSON object with a 'config' object")
    if data.get("format") != SETTINGS_FORMAT:
        raise AotUnavailable(
            f"the box's engine settings use format {data.get('format')!r}, this Tiramisu reads format {SETTINGS_FORMAT}"
        )
    return data


def settings_problem(settings, box_arch=None):
    """Why ``settings`` cannot be reproduced locally, or None (pure)."""
    if box_arch and settings.get("arch") not in (None, box_arch):
        return f"the box's server was built for {settings.get('arch')}, not {box_arch}"
    for key, value in settings.get("config", {}).items():
        if key == "pooling":
            if not isinstance(value, dict):
                return "the box's pooling settings are not an object"
            unknown = sorted(set(value) - set(POOLING_SETTERS))
            if unknown:
                return f"the box's server uses pooling setting {unknown[0]!r}, which this Tiramisu cannot reproduce"
        elif key not in CONFIG_KEYS:
            return f"the box's server uses engine setting {key!r}, which this Tiramisu cannot reproduce"
    return None


# Cranelift ISA flag (Wasmtime 50) -> the /proc/cpuinfo flag that says the CPU has it.
# Precompiled code records the flags it was compiled with and Wasmtime refuses
# it on a CPU lacking any of them, so the code may use only what the box's CPU
# has (its flags unknown: the architecture's baseline, which loads anywhere).
# The C API compiles by loading, which needs the local CPU to have them too:
# hence box ∩ local.
ISA_FLAGS = {
    "x86_64": {
        "has_sse3": "pni",
        "has_ssse3": "ssse3",
        "has_cmpxchg16b": "cx16",
        "has_sse41": "sse4_1",
        "has_sse42": "sse4_2",
        "has_popcnt": "popcnt",
        "has_avx": "avx",
        "has_avx2": "avx2",
        "has_fma": "fma",
        "has_bmi1": "bmi1",
        "has_bmi2": "bmi2",
        "has_lzcnt": "abm",
        "has_avx512f": "avx512f",
        "has_avx512dq": "avx512dq",
        "has_avx512vl": "avx512vl",
        "has_avx512vbmi": "avx512vbmi",
        "has_avx512bitalg": "avx512_bitalg",
        "has_avx512vnni": "avx512_vnni",
        "has_avx_vnni": "avx_vnni",
    },
    "aarch64": {"has_lse": "atomics"},
}


def isa_flags_for(arch, box_cpu_flags, local_cpu_flags):
    """Cranelift ISA flags to enable: what both CPUs have, by their /proc/cpuinfo flags (pure, sorted)."""
    have = set(box_cpu_flags or ()) & set(local_cpu_flags or ())
    return sorted(name for name, cpu in ISA_FLAGS.get(_arch(arch) or "", {}).items() if cpu in have)


def local_cpu_flags(path="/proc/cpuinfo"):
    """This machine's CPU flags (empty when unknown: then only the baseline is used)."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.split(":", 1)[0].strip() in ("flags", "Features"):
                    return cpu_flags_of(line)
    except OSError:
        pass
    return []


def cpu_flags_of(cpuinfo_line):
    """The words of a /proc/cpuinfo ``flags :`` (x86) or ``Features :`` (arm) line (pure)."""
    _, _, words = str(cpuinfo_line or "").partition(":")
    return sorted(set(words.split()))


def box_facts_command(server_bin, server_conf):
    """One round trip: the engine settings JSON, then the CPU flags line (pure)."""
    return (
        f"{engine_settings_command(server_bin, server_conf)} && "
        "{ grep -m1 -E '^(flags|Features)[[:space:]]*:' /proc/cpuinfo || echo 'flags :'; }"
    )


def parse_box_facts(text):
    """(engine settings dict, cpu flags list) from :func:`box_facts_command` output (pure)."""
    lines = [ln for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        raise AotUnavailable(
            "the box's server printed no engine settings (older than --aot support? run setup to update it)"
        )
    settings = parse_engine_settings(lines[0])
    return settings, cpu_flags_of(lines[1] if len(lines) > 1 else "")


def shipped_name(sha256):
    """File name of a shipped precompiled module in the box's cache dir (pure)."""
    return f"{sha256}.cwasm"


def remote_precompiled_path(cache_dir, sha256):
    """Where deploy puts the precompiled module of the .wasm with this sha256 (pure)."""
    return posixpath.join(cache_dir, shipped_name(sha256))


def check_command(server_bin, server_conf, wasm="$T/0", precompiled="$T/1"):
    """The upload batch's check: load the staged .wasm, trying the staged .cwasm first (pure).

    ``wasm``/``precompiled`` are sh words, by default the staging members
    ``$T/0`` and ``$T/1`` (double-quoted so ``$T`` expands).
    """
    return f'{join([server_bin, "--config", server_conf])} --check-module "{wasm}" --precompiled "{precompiled}"'


# --------------------------------------------- engine reproduction ---

# Setting name -> value check. These are wasmtime-py Config properties with
# the same names as the C setters the server calls.
CONFIG_KEYS = {
    "epoch_interruption": bool,
    "cranelift_opt_level": str,
    "wasm_threads": bool,
    "memory_reservation": int,
    "memory_guard_size": int,
    "memory_reservation_for_growth": int,
}

# pooling key -> wasmtime C API setter (wasmtime-py has no pooling wrapper).
POOLING_SETTERS = {
    "total_core_instances": "wasmtime_pooling_allocation_config_total_core_instances_set",
    "total_memories": "wasmtime_pooling_allocation_config_total_memories_set",
    "total_tables": "wasmtime_pooling_allocation_config_total_tables_set",
    "total_stacks": "wasmtime_pooling_allocation_config_total_stacks_set",
    "total_gc_heaps": "wasmtime_pooling_allocation_config_total_gc_heaps_set",
    "max_memory_size": "wasmtime_pooling_allocation_config_max_memory_size_set",
    "max_unused_warm_slots": "wasmtime_pooling_allocation_config_max_unused_warm_slots_set",
}


def local_wasmtime_version():
    """The installed ``wasmtime`` package version, or None."""
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:
        return None


def engine_config(settings, isa_flags=()):
    """A ``wasmtime.Config`` set exactly as the box's server sets its engine,
    generating code for ``<arch>-linux`` with only ``isa_flags`` enabled."""
    import ctypes

    import wasmtime
    from wasmtime import _ffi as ffi

    why = settings_problem(settings)
    if why:
        raise AotUnavailable(why)
    arch = _arch(settings.get("arch")) or _arch(platform.machine())
    config = wasmtime.Config()
    # An explicit target turns off host CPU detection: the code then uses only
    # the flags enabled below. (Only arch and OS of the triple are checked.)
    err = ffi.wasmtime_config_target_set(config.ptr(), ctypes.c_char_p(f"{arch}-unknown-linux-gnu".encode()))
    if err:
        raise AotUnavailable(f"local Wasmtime cannot target {arch}: {wasmtime.WasmtimeError._from_ptr(err)}")
    known = ISA_FLAGS.get(arch, {})
    for flag in isa_flags:
        if flag not in known:
            raise AotUnavailable(f"unknown {arch} CPU flag {flag!r}")
        ffi.wasmtime_config_cranelift_flag_enable(config.ptr(), ctypes.c_char_p(flag.encode()))
    for key, value in settings["config"].items():
        if key == "pooling":
            continue
        if not isinstance(value, CONFIG_KEYS[key]):
            raise AotUnavailable(f"engine setting {key}={value!r} is not a {CONFIG_KEYS[key].__name__}")
        setattr(config, key, value)
    pooling = settings["config"].get("pooling")
    if pooling is not None:
        pc = ffi.wasmtime_pooling_allocation_config_new()
        try:
            for key, value in pooling.items():
                getattr(ffi, POOLING_SETTERS[key])(pc, int(value))
            ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)
        finally:
            ffi.wasmtime_pooling_allocation_config_delete(pc)
    return config


def serialize_module(wasm_bytes, settings, isa_flags=()):
    """Compile with an engine configured from ``settings``; the serialized bytes."""
    import wasmtime

    from .apps.component import is_component

    engine = wasmtime.Engine(engine_config(settings, isa_flags))
    try:
        if is_component(wasm_bytes):  # a WASI 0.2 component: the server loads it the same way
            from wasmtime import component as wc

            return bytes(wc.Component(engine, bytes(wasm_bytes)).serialize())
        return bytes(wasmtime.Module(engine, wasm_bytes).serialize())
    except wasmtime.WasmtimeError as exc:
        raise AotUnavailable(f"local Wasmtime cannot compile the module: {str(exc).splitlines()[0]}") from exc


def precompile(wasm_path, target, engine_settings, cpu_flags=None, out_dir=None, cache_root=None, local_machine=None):
    """Precompile ``wasm_path`` for the box described by ``engine_settings``
    (the ``--engine-settings`` JSON text or dict) and ``cpu_flags`` (its
    /proc/cpuinfo flags; None = the architecture's baseline, loads on any CPU).
    The code uses only CPU features both the box and this machine have.

    Returns the path of ``<out_dir or the artifact cache>/<sha256>.cwasm``.
    Raises AotUnavailable (with the same one-line reason as :func:`aot_plan`)
    when this machine cannot produce code the box's Wasmtime would accept.
    Results are cached by module sha256, the box's settings and the local
    Wasmtime, so deploying one build to many alike boxes compiles once.
    """
    from .artifacts import cache
    from .fileops import copy_atomic

    if isinstance(engine_settings, (str, bytes)):
        engine_settings = parse_engine_settings(engine_settings)
    ok, why = aot_plan(
        target,
        local_machine or platform.machine(),
        engine_settings,
        local_system=platform.system(),
        local_wasmtime=local_wasmtime_version(),
        engine_settings=engine_settings,
    )
    if not ok:
        raise AotUnavailable(why)
    wasm_path = Path(wasm_path)
    sha = cache.sha256_file(wasm_path)
    isa = isa_flags_for(getattr(target, "arch", target), cpu_flags, local_cpu_flags())
    inputs = {
        "wasm_sha256": sha,
        "wasmtime": local_wasmtime_version(),
        "isa_flags": isa,
        "settings": {k: v for k, v in engine_settings.items() if k != "cache_dir"},
    }

    def build(tmp):
        (Path(tmp) / shipped_name(sha)).write_bytes(serialize_module(wasm_path.read_bytes(), engine_settings, isa))

    entry = cache.get_or_build("aot", inputs, build, root=cache_root)
    produced = entry.file(shipped_name(sha))
    if out_dir is None:
        return produced
    return copy_atomic(produced, Path(out_dir) / shipped_name(sha))


@dataclass(frozen=True)
class AotModule:
    """What ``deploy --aot`` ships next to a release, or why nothing."""

    ok: bool
    reason: str  # one line, for rep.note either way
    local: Optional[Path] = None  # the .cwasm to upload
    remote: Optional[str] = None  # where: <the server's cache dir>/<sha256>.cwasm


def prepare_shipment(facts_text, target, wasm_path, sha256, fallback_cache_dir=None, cache_root=None):
    """Everything ``deploy --aot`` does locally, from the output of
    :func:`box_facts_command`: plan, precompile, and where the file goes.

    Never raises AotUnavailable: a refusal is an ``AotModule(ok=False, reason)``
    and deploy goes on without AOT (the box compiles, as without --aot).
    """
    try:
        settings, cpu_flags = parse_box_facts(facts_text)
        ok, why = aot_plan(
            target,
            platform.machine(),
            settings,
            local_system=platform.system(),
            local_wasmtime=local_wasmtime_version(),
            engine_settings=settings,
        )
        if not ok:
            return AotModule(False, why)
        cache_dir = settings.get("cache_dir") or fallback_cache_dir
        if not cache_dir:
            return AotModule(False, f"the box's server has no compiled-module cache dir; {FALLBACK}")
        local = precompile(wasm_path, target, settings, cpu_flags=cpu_flags, cache_root=cache_root)
    except AotUnavailable as exc:
        return AotModule(False, exc.message if FALLBACK in exc.message else f"{exc.message}; {FALLBACK}")
    isa = isa_flags_for(getattr(target, "arch", target), cpu_flags, local_cpu_flags())
    cpu = f"{len(isa)} CPU features shared with the box" if isa else "baseline CPU features"
    return AotModule(True, f"{why} ({cpu})", local, remote_precompiled_path(cache_dir, sha256))
