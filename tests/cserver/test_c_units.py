"""C unit tests (ASan+UBSan, guard-page inputs) and short libFuzzer runs of the parsers."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "cserver"
PURE = [SRC / "ts_http.c", SRC / "ts_wagi.c", SRC / "ts_util.c", SRC / "ts_route.c"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
FUZZ_SECONDS = 8


def _cc():
    for name in ("clang", "clang-14", "gcc"):
        if shutil.which(name):
            return name
    pytest.skip("no C compiler (apt-get install clang)")


def _build(cc, out, sources, extra):
    argv = [
        cc,
        "-std=c11",
        "-D_GNU_SOURCE",
        "-g",
        "-O1",
        "-Wall",
        "-I",
        str(SRC),
        *extra,
        *map(str, sources),
        "-o",
        str(out),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_unit_tests_under_sanitizers(tmp_path):
    binary = _build(
        _cc(), tmp_path / "units", [REPO / "tests/cserver/c/test_units.c", *PURE], [*SAN, "-DTS_HTTP_COUNT_EXAMINED"]
    )
    proc = subprocess.run(
        [str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failures" in proc.stdout


def test_sha256_matches_the_fips_180_2_example_messages(tmp_path):
    """The server's SHA-256 (module identity) gives the standard digests, whole and fed in pieces."""
    binary = _build(_cc(), tmp_path / "sha256", [REPO / "tests/cserver/c/test_sha256.c", SRC / "ts_sha256.c"], SAN)
    proc = subprocess.run(
        [str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failures" in proc.stdout


POOL = [REPO / "tests/cserver/c/test_pool.c", SRC / "ts_pool.c", SRC / "ts_util.c"]


@pytest.mark.parametrize("sanitizer", ["address,undefined", "thread"])
def test_guest_pool_under_sanitizers(tmp_path, sanitizer):
    """The guest-thread pool alone (ts_pool.c): per-app limits, rejections, round-robin, stop."""
    cc = _cc()
    if sanitizer == "thread" and "clang" not in cc:
        pytest.skip("ThreadSanitizer run needs clang")
    binary = _build(
        cc,
        tmp_path / "pool",
        POOL,
        [f"-fsanitize={sanitizer}", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-pthread"],
    )
    proc = subprocess.run(
        [str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "ASAN_OPTIONS": "detect_leaks=1",
            "UBSAN_OPTIONS": "print_stacktrace=1",
            "TSAN_OPTIONS": "halt_on_error=1",
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failures" in proc.stdout


def test_event_loop_under_sanitizers(tmp_path):
    """ts_loop alone over pipes: handlers get their data, masks switch, the
    sleep steps and named timers run when they should."""
    binary = _build(
        _cc(), tmp_path / "loop", [REPO / "tests/cserver/c/test_loop.c", SRC / "ts_loop.c", SRC / "ts_util.c"], SAN
    )
    proc = subprocess.run(
        [str(binary)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 failures" in proc.stdout


def _clang_with_fuzzer(tmp_path):
    cc = shutil.which("clang") or shutil.which("clang-14")
    if not cc:
        pytest.skip("libFuzzer needs clang (apt-get install clang libclang-rt-14-dev)")
    probe = tmp_path / "probe.c"
    probe.write_text("int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }\n")
    proc = subprocess.run(
        [cc, "-fsanitize=fuzzer", str(probe), "-o", str(tmp_path / "probe")], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"clang cannot link libFuzzer here: {proc.stderr.strip().splitlines()[-1:]}")
    return cc


@pytest.mark.slow
@pytest.mark.parametrize("name", ["http", "cgi", "routes", "conf"])
def test_fuzz_parsers_briefly(tmp_path, name):
    cc = _clang_with_fuzzer(tmp_path)
    binary = _build(
        cc,
        tmp_path / f"fuzz_{name}",
        [SRC / "fuzz" / f"fuzz_{name}.c", *PURE, SRC / "ts_conf.c"],
        ["-fsanitize=fuzzer,address,undefined"],
    )
    seeds = SRC / "fuzz" / "corpus" / name
    assert any(seeds.iterdir()), "checked-in seed corpus is missing"
    work = tmp_path / "corpus"
    work.mkdir()
    # new inputs go to `work`; the checked-in seeds are only read
    proc = subprocess.run(
        [
            str(binary),
            f"-max_total_time={FUZZ_SECONDS}",
            "-max_len=4096",
            "-timeout=5",
            "-rss_limit_mb=1024",
            str(work),
            str(seeds),
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Done" in proc.stderr
