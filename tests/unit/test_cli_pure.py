"""Option parsing, --help detection and the address-space probe, as tables of pure cases."""

import pytest

from tiramisu_tasks import options
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.hostcheck import format_address_space
from tiramisu_tasks.probe import address_space, cpu_virtual_bits, parse_maps_ranges, pooling_verdict, user_va_bits
from tiramisu_tasks.taskkit import help_requested

# ------------------------------------------------------------ options ---


@pytest.mark.parametrize(
    "kind, value, expected",
    [
        (options.PORT, "8080", 8080),
        (options.PORT, 8080, 8080),
        (options.PORT, " 22 ", 22),
        (options.PORT, "1", 1),
        (options.PORT, "65535", 65535),
        (options.PORT, "0", None),
        (options.PORT, "65536", None),
        (options.PORT, "abc", None),
        (options.PORT, "-1", None),
        (options.PORT, "1.5", None),
        (options.PORT, "", None),
        (options.PORT, "0x50", None),
        (options.PORT, "８０", None),
        (options.PORT, True, None),
        (options.PORT, 3.0, None),
        (options.LINES, "0", 0),
        (options.RELEASES, "0", None),
        (options.SECONDS, "86400", 86400),
        (options.SECONDS, "86401", None),
    ],
)
def test_int_option_convert(kind, value, expected):
    assert kind.convert(value) == expected


@pytest.mark.parametrize(
    "kind, text",
    [
        (options.PORT, "an integer 1-65535"),
        (options.SECONDS, "an integer 0-86400 (seconds)"),
        (options.IntOption(1), "an integer >= 1"),
    ],
)
def test_accepts(kind, text):
    assert kind.accepts() == text


def test_parse_option_message_and_none():
    assert options.parse_option("--http-port", None, options.PORT) is None
    with pytest.raises(UsageError) as err:
        options.parse_option("--http-port", "abc", options.PORT)
    assert err.value.message == "--http-port: expected an integer 1-65535, got 'abc'" and err.value.code == 2


@pytest.mark.parametrize("param, flag", [("http_port", "--http-port"), ("out_", "--out"), ("keep", "--keep")])
def test_flag_name(param, flag):
    assert options.flag_name(param) == flag


def test_typed_params_by_name_explicit_and_guard():
    assert options.typed_params(["host", "http_port"], {"http_port": None}) == {"http_port": options.PORT}
    assert options.typed_params(["port"], {}, {"port": None}) == {}  # opted out
    assert options.typed_params(["n"], {"n": 3}, {"n": options.LINES}) == {"n": options.LINES}
    with pytest.raises(TypeError, match="int default but no option type"):
        options.typed_params(["retries"], {"retries": 3})
    with pytest.raises(TypeError, match="unknown parameters"):
        options.typed_params(["a"], {}, {"b": options.PORT})
    assert options.typed_params(["json"], {"json": False}) == {}  # bools are flags, not numbers


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("http_port", "8081", 8081),
        ("workers", "4", 4),
        ("env_dir", "~/x", "~/x"),
        ("toolchain", "zig", "zig"),
        ("guest_threads", "auto", "auto"),
        ("guest_threads", "8", 8),
        ("request_timeout_ms", "1500", 1500),
    ],
)
def test_parse_setting(key, value, expected):
    assert options.parse_setting(key, value) == expected


def test_parse_setting_rejects():
    with pytest.raises(UsageError, match=r"^--set keep_releases: expected an integer 1-1000, got 'x'$"):
        options.parse_setting("keep_releases", "x")


@pytest.mark.parametrize(
    "values, has_h, asked",
    [
        (["--help"], True, True),
        (["--help"], False, True),
        (["-h"], False, True),
        (["-h"], True, False),
        (["app"], False, False),
        ([None], False, False),
        (["app", "--help"], True, True),
        ([], False, False),
    ],
)
def test_help_requested(values, has_h, asked):
    assert help_requested(values, has_h) is asked


# ----------------------------------------------------- address space ---

X86_MAPS = (
    "55d0c0a00000-55d0c0a02000 7f8aa7a71000-7f8aa7a73000 7fffb55a9000-7fffb55ca000 ffffffffff600000-ffffffffff601000"
)
PI_39_MAPS = "7fa1b2c000-7fa1b4d000 7fa1b4d000-7fa1b4f000 7fe3a1e000-7fe3a3f000"  # 39-bit arm64 kernel
ARM_48_MAPS = "ffff9c3d0000-ffff9c3d2000 ffff9c3d2000-ffff9c3d3000 ffffe1a3c000-ffffe1a5d000"
QEMU_SELF_MAPS = "5502a0c000-5502a10000 5502a10000-5502a12000 5502a12000-5502a1f000"


@pytest.mark.parametrize(
    "text, bits",
    [
        (X86_MAPS, 47),
        (PI_39_MAPS, 39),
        (ARM_48_MAPS, 48),
        (QEMU_SELF_MAPS, 39),  # why the probe never reads a process's own maps under qemu-user
        ("", None),
        ("garbage 12-zz -", None),
        ("ffffffffff600000-ffffffffff601000", None),
    ],
)
def test_user_va_bits(text, bits):
    assert user_va_bits(parse_maps_ranges(text)) == bits


@pytest.mark.parametrize(
    "line, bits",
    [
        ("39 bits physical, 48 bits virtual", 48),
        ("46 bits physical, 57 bits virtual", 57),
        ("", None),
        (None, None),
        ("48 bits physical", None),
    ],
)
def test_cpu_virtual_bits(line, bits):
    assert cpu_virtual_bits(line) == bits


@pytest.mark.parametrize(
    "bits, verdict",
    [(47, "ok"), (48, "ok"), (40, "ok"), (39, "falls back (39-bit)"), (36, "falls back (36-bit)"), (None, "unknown")],
)
def test_pooling_verdict(bits, verdict):
    assert pooling_verdict(bits) == verdict


@pytest.mark.parametrize(
    "raw, text",
    [
        (
            {"maps_top": X86_MAPS, "cpu_address_sizes": "39 bits physical, 48 bits virtual"},
            "47-bit user address space (128 TiB; CPU 48-bit virtual), pooling allocator ok",
        ),
        ({"maps_top": PI_39_MAPS}, "39-bit user address space (512 GiB), pooling allocator falls back (39-bit)"),
        ({}, "address space unknown, pooling allocator: decided by the server at start"),
    ],
)
def test_address_space_report_and_line(raw, text):
    assert format_address_space(address_space(raw)) == text


def test_address_space_json_shape():
    assert address_space({"maps_top": PI_39_MAPS}) == {
        "bits": 39,
        "size_gib": 512,
        "source": "/proc/PID/maps",
        "cpu_virtual_bits": None,
        "pooling": "falls back (39-bit)",
    }
