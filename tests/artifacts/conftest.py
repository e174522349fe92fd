"""Fixtures for the cross-artifact tests: caches, qemu, a private Docker engine.

Heavy, slow-to-make things (downloaded wheels, nginx builds, the debootstrap
root of the Docker base image, the engine's image store) live in a persistent
test cache so a second run is fast:

    $TIRAMISU_TEST_CACHE   default: <user cache>/tiramisu-test

Tests that check cache behaviour itself use a fresh empty cache instead.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .helpers import stop


def _test_cache_root():
    value = os.environ.get("TIRAMISU_TEST_CACHE")
    if value:
        return Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tiramisu-test"


@pytest.fixture(scope="session")
def test_cache():
    root = _test_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def shared_cache(test_cache, monkeypatch):
    """TIRAMISU_CACHE pointed at the persistent test cache (artifacts reused across runs)."""
    root = test_cache / "cache"
    monkeypatch.setenv("TIRAMISU_CACHE", str(root))
    return root


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """TIRAMISU_CACHE pointed at an empty directory."""
    root = tmp_path / "cache"
    monkeypatch.setenv("TIRAMISU_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def qemu_aarch64():
    """argv prefix that runs aarch64 binaries here, with Debian's arm64 cross libc as root.

    ``-L`` lets dynamically linked glibc binaries find ld-linux-aarch64.so.1,
    libc and libgcc_s from libc6-arm64-cross / libgcc-s1-arm64-cross.
    """
    qemu = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.fail(
            "qemu-aarch64-static is missing: apt-get install qemu-user-static (scripts/bootstrap test installs it)"
        )
    sysroot = Path("/usr/aarch64-linux-gnu")
    if not (sysroot / "lib" / "ld-linux-aarch64.so.1").exists():
        pytest.fail("no arm64 glibc at /usr/aarch64-linux-gnu: apt-get install libc6-arm64-cross")
    return [qemu, "-L", str(sysroot)]


# ------------------------------------------------------------ docker ---


def mounts_below(root, mountinfo_text):
    """Pure: mount points at or under root, deepest first (from /proc/self/mountinfo)."""
    root = str(root).rstrip("/")
    points = []
    for line in mountinfo_text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            point = fields[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def unmount_below(root):
    """dockerd leaves its netns bind mount (exec-root/netns/default) behind: unmount ours."""
    for point in mounts_below(root, Path("/proc/self/mountinfo").read_text()):
        subprocess.run(["umount", "-l", point], capture_output=True)


def _children(pid):
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


@pytest.fixture(scope="session")
def docker_engine(test_cache):
    """A private dockerd: own data/exec roots, socket and pid file; no iptables, no bridge.

    Yields the DOCKER_HOST url. Its image store persists in the test cache (the
    toolchain image is built once); the daemon and the containerd it starts
    are stopped by pid at the end of the session.
    """
    if os.geteuid() != 0:
        pytest.skip("the docker toolchain test starts its own dockerd, which needs root")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        pytest.skip("dockerd is not installed (apt-get install --no-install-recommends docker.io)")
    data = test_cache / "dockerd-data"
    data.mkdir(parents=True, exist_ok=True)
    # exec-root and socket under a short path: unix socket paths are limited to 108 bytes
    run = Path(tempfile.mkdtemp(prefix="tiramisu-artifacts-dockerd-"))
    sock = run / "docker.sock"
    log = open(run / "dockerd.log", "wb")
    argv = [
        dockerd,
        "--data-root",
        str(data),
        "--exec-root",
        str(run / "exec"),
        "-H",
        f"unix://{sock}",
        "--pidfile",
        str(run / "docker.pid"),
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        "--bridge=none",
    ]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"unix://{sock}"
    deadline = time.monotonic() + 60
    ready = False
    import docker

    while time.monotonic() < deadline and proc.poll() is None:
        if sock.exists():
            try:
                docker.DockerClient(base_url=url, timeout=5).ping()
                ready = True
                break
            except Exception:  # noqa: BLE001 - not up yet
                pass
        time.sleep(0.2)
    if not ready:
        stop(proc)
        tail = (run / "dockerd.log").read_text(errors="replace").strip().splitlines()[-5:]
        shutil.rmtree(run, ignore_errors=True)
        pytest.skip("no Docker engine can start here: " + " | ".join(tail))
    try:
        yield url
    finally:
        kids = _children(proc.pid)  # the containerd dockerd started for itself
        stop(proc, timeout=30)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()
        unmount_below(run)
        shutil.rmtree(run, ignore_errors=True)


def _debootstrap_tar(test_cache):
    """A slim Debian bookworm minbase root of this machine's architecture, as a tar (cached)."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    tar = test_cache / f"debootstrap-bookworm-{arch}-minbase.tar"
    if tar.is_file():
        return tar
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed (needed to make a Docker base image offline)")
    from tiramisu_tasks.artifacts.debsource import system_mirrors

    mirror = system_mirrors()[0]
    work = Path(tempfile.mkdtemp(prefix="tiramisu-artifacts-root-", dir=test_cache))
    try:
        root = work / "root"
        proc = subprocess.run(
            ["debootstrap", f"--arch={arch}", "--variant=minbase", "bookworm", str(root), mirror],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            pytest.fail("debootstrap failed: " + proc.stdout.strip()[-500:])
        # Slim: the image's own apt-get update refetches lists; debs are spent.
        for sub in (
            "var/cache/apt/archives",
            "var/lib/apt/lists",
            "usr/share/doc",
            "usr/share/man",
            "usr/share/locale",
        ):
            for p in (root / sub).glob("*"):
                if p.is_dir() and p.name != "partial":
                    shutil.rmtree(p)
                elif p.is_file():
                    p.unlink()
        partial = work / "root.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True)
        os.replace(partial, tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar


@pytest.fixture(scope="session")
def docker_base_image(docker_engine, test_cache):
    """A Debian base image in the private engine, imported from a debootstrap root.

    No image registry is reachable here, so ``docker import`` of a root made
    with debootstrap stands in for ``debian:bookworm``.
    """
    import docker

    client = docker.DockerClient(base_url=docker_engine, timeout=300)
    tar = _debootstrap_tar(test_cache)
    ref = f"tiramisu-test-base:bookworm-{int(tar.stat().st_mtime)}"
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        repo, tag = ref.split(":")
        client.api.import_image_from_file(str(tar), repository=repo, tag=tag)
        client.images.get(ref)
    return ref


@pytest.fixture
def docker_env(docker_engine, docker_base_image, monkeypatch):
    """DOCKER_HOST and the base image setting for code under test."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine)
    monkeypatch.setenv("TIRAMISU_DOCKER_BASE_IMAGE", docker_base_image)
    return {"docker_base_image": docker_base_image}


@pytest.fixture(scope="session")
def arm64_musl_loader(test_cache):
    """Debian's arm64 musl loader (package musl:arm64), fetched with a private apt state.

    The machine's apt configuration is not touched: an own sources.list with an
    arm64 binary index, own lists and cache (same approach as the nginx
    source provider's deb-src fetch).
    """
    from tiramisu_tasks.artifacts.debsource import apt_options, system_mirrors

    root = test_cache / "musl-arm64"
    loader = root / "lib" / "aarch64-linux-musl" / "libc.so"
    if loader.is_file():
        return loader
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            pytest.skip(f"fetching Debian's arm64 musl needs {tool}")
    state = test_cache / "apt-arm64"
    for sub in ("lists/partial", "cache/archives/partial", "dl"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text(f"deb [arch=arm64] {system_mirrors()[0]} bookworm main\n")
    opts = [*apt_options(state), "-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64"]
    for argv, cwd in ((["apt-get", *opts, "update"], None), (["apt-get", *opts, "download", "musl"], state / "dl")):
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(argv[:1] + argv[-2:])} failed: {proc.stderr.strip()[-300:]}")
    deb = sorted((state / "dl").glob("musl_*_arm64.deb"))[-1]
    work = Path(tempfile.mkdtemp(prefix=".musl-", dir=test_cache))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(work)], check=True)
    shutil.rmtree(root, ignore_errors=True)
    os.replace(work, root)
    return loader
