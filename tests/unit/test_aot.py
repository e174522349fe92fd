"""Pure parts of tiramisu_tasks.aot: the plan, settings parsing, CPU flags, commands."""

import json

import pytest

from tiramisu_tasks.aot import (
    AotUnavailable,
    aot_plan,
    box_facts_command,
    check_command,
    cpu_flags_of,
    engine_settings_command,
    isa_flags_for,
    parse_box_facts,
    parse_engine_settings,
    remote_precompiled_path,
    settings_problem,
    wasmtime_version_of,
)
from tiramisu_tasks.targets import parse_target_name

SETTINGS = {
    "format": 1,
    "wasmtime": "50.0.1",
    "arch": "x86_64",
    "settings_id": "x",
    "settings_hash": "0" * 16,
    "cache_dir": "/home/u/tiramisu-env/cache",
    "config": {
        "epoch_interruption": True,
        "cranelift_opt_level": "speed",
        "wasm_threads": False,
        "pooling": {"total_core_instances": 6, "max_memory_size": 134217728},
    },
}


@pytest.mark.parametrize(
    "box, local, version, ok, words",
    [
        ("x86_64", "x86_64", "50.0.1", True, "precompiling locally with Wasmtime 50.0.1 for x86_64"),
        ("x86_64", "amd64", "50.0.1", True, "for x86_64"),
        ("aarch64", "aarch64", "50.0.1", True, "for aarch64"),
        ("aarch64", "arm64", "50.0.1", True, "for aarch64"),
        (
            "aarch64",
            "x86_64",
            "50.0.1",
            False,
            "the local Wasmtime 50.0.1 (x86_64) cannot compile for aarch64; the box's server will compile and cache it",
        ),
        (
            "x86_64",
            "aarch64",
            "50.0.1",
            False,
            "the local Wasmtime 50.0.1 (aarch64) cannot compile for x86_64; the box's server will compile and cache it",
        ),
        ("x86_64", "x86_64", "49.0.4", False, "embeds Wasmtime 49.0.4, the local one is 50.0.1"),
        ("x86_64", "x86_64", None, False, "does not say which Wasmtime it embeds"),
        ("x86_64", "x86_64", "custom_server 0.1.0 (wasmtime 50.0.1)", True, "for x86_64"),
        ("x86_64", "x86_64", "custom_server 0.1.0 (wasmtime unknown)", False, "does not say"),
        ("x86_64", "armv7l", "50.0.1", False, "(armv7l) cannot compile for x86_64"),
        ("riscv64", "x86_64", "50.0.1", False, "unknown box architecture 'riscv64'"),
    ],
    ids=lambda v: str(v),
)
def test_aot_plan_table(box, local, version, ok, words):
    got_ok, reason = aot_plan(box, local, version)
    assert got_ok is ok
    assert words in reason
    assert "\n" not in reason
    if not ok:
        assert reason.endswith("the box's server will compile and cache it")


@pytest.mark.parametrize("name", ["x86_64", "aarch64"])
def test_aot_plan_takes_a_target(name):
    target = parse_target_name(name)
    assert aot_plan(target, name, "50.0.1")[0] is True
    other = "aarch64" if name == "x86_64" else "x86_64"
    assert aot_plan(target, other, "50.0.1")[0] is False


def test_aot_plan_other_os_and_no_local_wasmtime():
    ok, why = aot_plan("x86_64", "x86_64", "50.0.1", local_system="Darwin")
    assert not ok and "Darwin" in why
    ok, why = aot_plan("x86_64", "x86_64", "50.0.1", local_wasmtime=None)
    assert not ok and "no local Wasmtime" in why


def test_aot_plan_checks_engine_settings():
    assert aot_plan("x86_64", "x86_64", SETTINGS, engine_settings=SETTINGS)[0] is True
    odd = json.loads(json.dumps(SETTINGS))
    odd["config"]["consume_fuel"] = True
    ok, why = aot_plan("x86_64", "x86_64", odd, engine_settings=odd)
    assert not ok and "'consume_fuel', which this Tiramisu cannot reproduce" in why
    odd = json.loads(json.dumps(SETTINGS))
    odd["config"]["pooling"]["table_elements"] = 10
    assert "pooling setting 'table_elements'" in aot_plan("x86_64", "x86_64", odd, engine_settings=odd)[1]
    assert "built for x86_64, not aarch64" in settings_problem(SETTINGS, "aarch64")


@pytest.mark.parametrize(
    "text, version",
    [
        ("50.0.1", "50.0.1"),
        ("custom_server 0.1.0 (wasmtime 50.0.1)", "50.0.1"),
        ("", None),
        ("unknown", None),
        ({"wasmtime": "50.0.1"}, "50.0.1"),
        (None, None),
    ],
)
def test_wasmtime_version_of(text, version):
    assert wasmtime_version_of(text) == version


@pytest.mark.parametrize(
    "text, message",
    [
        ("usage: custom_server ...", "does not print engine settings (an older server?): usage: custom_server"),
        ("", "does not print engine settings"),
        ("[]", "not a JSON object"),
        ('{"format": 2, "config": {}}', "format 2"),
    ],
)
def test_parse_engine_settings_errors(text, message):
    with pytest.raises(AotUnavailable) as exc:
        parse_engine_settings(text)
    assert message in exc.value.message


def test_parse_box_facts():
    out = json.dumps(SETTINGS) + "\nflags\t\t: fpu sse4_1 avx2 avx abm pni\n"
    settings, flags = parse_box_facts(out)
    assert settings["settings_hash"] == "0" * 16
    assert flags == ["abm", "avx", "avx2", "fpu", "pni", "sse4_1"]
    assert parse_box_facts(json.dumps(SETTINGS))[1] == []
    with pytest.raises(AotUnavailable):
        parse_box_facts("")


@pytest.mark.parametrize(
    "arch, box, local, flags",
    [
        (
            "x86_64",
            ["avx", "avx2", "pni", "abm"],
            ["avx", "pni", "abm", "avx512f"],
            ["has_avx", "has_lzcnt", "has_sse3"],
        ),
        ("x86_64", [], ["avx"], []),
        ("x86_64", ["avx"], [], []),
        ("aarch64", ["fp", "atomics"], ["atomics"], ["has_lse"]),
        ("riscv64", ["avx"], ["avx"], []),
    ],
)
def test_isa_flags_are_what_both_cpus_have(arch, box, local, flags):
    assert isa_flags_for(arch, box, local) == flags


def test_cpu_flags_of():
    assert cpu_flags_of("Features\t: fp asimd atomics") == ["asimd", "atomics", "fp"]
    assert cpu_flags_of("") == []


def test_commands():
    assert (
        engine_settings_command("/h/e v/bin/custom_server", "/h/e v/conf/server.conf")
        == "'/h/e v/bin/custom_server' --config '/h/e v/conf/server.conf' --engine-settings"
    )
    assert box_facts_command("/b", "/c").startswith("/b --config /c --engine-settings && { grep -m1 ")
    assert (
        check_command("/b/custom_server", "/c/server.conf")
        == '/b/custom_server --config /c/server.conf --check-module "$T/0" --precompiled "$T/1"'
    )
    assert remote_precompiled_path("/h/env/cache", "ab" * 32) == "/h/env/cache/" + "ab" * 32 + ".cwasm"
