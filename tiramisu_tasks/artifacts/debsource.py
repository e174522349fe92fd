"""Debian source packages for the nginx ``source`` provider: ``apt-get source`` without root.

A private apt state directory (under the cache dir) gets a sources.list of
``deb-src`` entries for :data:`DEBIAN_SUITE` (and its -updates and -security
suites) on the mirrors this machine's own apt sources name (Debian's default
mirrors otherwise); the system's apt state is never read or written.
:func:`debian_source` downloads a source package once and caches it (kind
``debian-source``); :func:`unpack_debian_source` runs ``dpkg-source -x``,
which applies Debian's patch series.
"""

import functools
import getpass
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import BuildError, ToolMissing
from ..paths import cache_dir
from ..subproc import run_local
from . import cache, run_step

SOURCE_KIND = "debian-source"

# Debian release whose source packages the `source` provider builds from; its
# nginx is versions.NGINX_SOURCE_VERSION.
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRRORS = ("http://deb.debian.org/debian", "http://deb.debian.org/debian-security")


def note(*parts):
    """Progress to stderr (the default ``progress`` of every function here)."""
    from ..taskkit import note as taskkit_note

    taskkit_note(*parts)


def mirrors_from_apt_sources(texts):
    """Pure: Debian mirror URIs named in apt source files (one-line and deb822).

    Only http(s) URIs of Debian archives (path ending in ``/debian`` or
    ``/debian-security``) are kept, in order, without duplicates.
    """
    found = []
    for text in texts:
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            uris = []
            if line.startswith(("deb ", "deb-src ")):
                parts = [p for p in re.sub(r"\[[^\]]*\]", " ", line).split() if p]
                if len(parts) >= 2:
                    uris = [parts[1]]
            elif line.lower().startswith("uris:"):
                uris = line.split(":", 1)[1].split()
            for uri in uris:
                uri = uri.rstrip("/")
                if re.match(r"^https?://", uri) and re.search(r"/debian(-security)?$", uri):
                    if uri not in found:
                        found.append(uri)
    return found


def system_mirrors():
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text())
        except OSError:
            continue
    mirrors = mirrors_from_apt_sources(texts)
    main = [m for m in mirrors if not m.endswith("-security")][:1] or [DEFAULT_MIRRORS[0]]
    security = [m for m in mirrors if m.endswith("-security")][:1] or [DEFAULT_MIRRORS[1]]
    return main + security


def deb_src_lines(mirrors, suite):
    """Pure: a private sources.list with deb-src entries for suite (+ its security suite)."""
    lines = []
    for uri in mirrors:
        if uri.endswith("-security"):
            lines.append(f"deb-src {uri} {suite}-security main")
        else:
            lines.append(f"deb-src {uri} {suite} main")
            lines.append(f"deb-src {uri} {suite}-updates main")
    return "\n".join(lines) + "\n"


def apt_options(state):
    """Pure: apt options that use only our own state directory (no root, system untouched)."""
    state = Path(state)
    return [
        "-o",
        f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o",
        "Dir::Etc::SourceParts=/nonexistent",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Debug::NoLocking=1",
        "-o",
        f"APT::Sandbox::User={_user()}",
        "-q",
    ]


def _user():
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry
        return "root" if os.getuid() == 0 else str(os.getuid())


def parse_showsrc(text, package):
    """Pure: versions of source package ``package`` in ``apt-cache showsrc`` output."""
    out = []
    for record in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", record, flags=re.M))
        if fields.get("Package") == package and fields.get("Version"):
            if fields["Version"] not in out:
                out.append(fields["Version"])
    return out


def upstream_of(debian_version):
    """Pure: ``1:1.2.13.dfsg-1`` -> ``1.2.13.dfsg``; ``1.22.1-9+deb12u9`` -> ``1.22.1``."""
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def _dpkg_cmp(a, b):
    if run_local(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0:
        return -1
    return 0 if a == b else 1


def newest_first(versions_):
    if shutil.which("dpkg"):
        return sorted(versions_, key=functools.cmp_to_key(_dpkg_cmp), reverse=True)
    return list(reversed(versions_))


def _apt_state():
    state = cache_dir() / "apt"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    return state


_updated = set()


def _apt_update(state, progress):
    """Refresh our private deb-src lists once per process."""
    if state in _updated:
        return
    (Path(state) / "sources.list").write_text(deb_src_lines(system_mirrors(), DEBIAN_SUITE))
    progress(f"nginx: apt-get update (deb-src {DEBIAN_SUITE}, private state in {state})")
    run_step(["apt-get", *apt_options(state), "update"], what="apt-get update (deb-src)", timeout=600)
    _updated.add(state)


def debian_source(package, upstream=None, root=None, progress=note):
    """A Debian source package (.dsc and its files), downloaded once and cached.

    Newest first, the versions the archive lists are tried until one downloads
    (a snapshot mirror may list a security revision it does not serve).
    """
    inputs = {"package": package, "suite": DEBIAN_SUITE, "upstream": upstream}
    found = cache.lookup(SOURCE_KIND, inputs, root)
    if found:
        return found
    for tool in ("apt-get", "apt-cache", "dpkg-source"):
        if not shutil.which(tool):
            raise ToolMissing(
                f"the nginx source build needs {tool} to fetch Debian's source packages "
                f"(Debian/Ubuntu: apt-get install apt dpkg-dev); or give the tarballs with "
                f"nginx.build --source/--pcre2/--zlib"
            )

    state = _apt_state()
    opts = apt_options(state)
    _apt_update(str(state), progress)
    listed = parse_showsrc(run_step(["apt-cache", *opts, "showsrc", package], what="apt-cache showsrc"), package)
    candidates = [v for v in listed if upstream is None or upstream_of(v) == upstream]
    if not candidates:
        raise BuildError(
            f"Debian {DEBIAN_SUITE} lists no source of {package}"
            + (f" {upstream}" if upstream else "")
            + f" (listed: {', '.join(listed) or 'none'})"
        )

    def build(out):
        errors = []
        for version in newest_first(candidates):
            for stale in out.iterdir():
                stale.unlink()
            progress(f"nginx: apt-get source --download-only {package}={version}")
            try:
                run_step(
                    ["apt-get", *opts, "source", "--download-only", f"{package}={version}"],
                    cwd=out,
                    what=f"apt-get source {package}={version}",
                    timeout=600,
                )
            except BuildError as exc:
                errors.append(f"{version}: {exc.message.strip().splitlines()[-1]}")
                continue
            if list(out.glob("*.dsc")):
                (out / "version").write_text(version + "\n")
                return
            errors.append(f"{version}: no .dsc downloaded")
        raise BuildError(f"could not download the Debian source of {package}: " + "; ".join(errors))

    return cache.get_or_build(SOURCE_KIND, inputs, build, root=root)


def unpack_debian_source(entry, dest):
    """``dpkg-source -x`` (applies Debian's patches) into dest; return the source dir."""
    dsc = sorted(entry.path.glob("*.dsc"))[0]
    work = Path(tempfile.mkdtemp(prefix="src-", dir=dest))
    # The .dsc's checksums were verified by apt against the signed Release
    # file when it was downloaded, and the cache manifest since; skip gpgv
    # (the keyring may be absent).
    run_step(["dpkg-source", "--no-check", "--no-copy", "-x", dsc, work / "src"], what=f"dpkg-source -x {dsc.name}")
    return work / "src"
