"""The ``docker`` toolchain: Debian's gcc and cross gcc inside a container.

The image comes from the project's Dockerfile (next to this file), built on
first use on top of a base image that is a setting (``docker_base_image``,
default ``debian:bookworm``). Its tag is derived from the Dockerfile's hash, the
base image name and the engine's architecture, so editing the Dockerfile or
changing the base gives a new image rather than a stale one.

Each build command runs in a fresh container:

* as the invoking user's uid:gid, so outputs are owned by the user;
* with every path the build names bind-mounted at the same absolute path:
  sources and the cached Wasmtime library directory read-only, the output
  directory writable -- the compiler argv needs no translation;
* with no network (``network_mode="none"``); only the image build uses the
  host's network, for apt.

The Docker engine is found the way the ``docker`` CLI finds it (DOCKER_HOST,
else the default socket), through the ``docker`` Python package.
"""

import hashlib
import io
import os
import platform
import tarfile
from pathlib import Path

from ..errors import BuildError, ToolMissing
from ..targets import SUPPORTED_ARCHES, canonical_arch
from . import Toolchain

DEFAULT_BASE_IMAGE = "debian:bookworm"
BASE_IMAGE_ENV = "TIRAMISU_DOCKER_BASE_IMAGE"
IMAGE_REPOSITORY = "tiramisu-toolchain"
DOCKERFILE = Path(__file__).with_name("Dockerfile")
BUILD_TIMEOUT = 1800  # seconds for one compile/link command in a container


INSTALL_HINT = "install Docker (Debian: apt-get install docker.io), start the engine, or point DOCKER_HOST at one"


def resolve_base_image(setting=None):
    """Setting (config/flag) beats the environment beats the default."""
    return setting or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE


def image_tag(dockerfile_text, base_image, engine_arch):
    """Pure: the image tag for these inputs."""
    h = hashlib.sha256()
    for part in (dockerfile_text, base_image, engine_arch):
        h.update(part.encode() + b"\0")
    return f"{IMAGE_REPOSITORY}:{h.hexdigest()[:16]}"


def mounts_for(read_only=(), writable=(), cwd=None):
    """Pure: docker-py ``volumes`` mapping, every path at its own absolute path.

    A path given both ways is writable. The working directory is mounted
    read-only if no other mount covers it (a compiler only reads there unless
    told otherwise).
    """
    volumes = {}
    for path in read_only:
        p = os.path.abspath(str(path))
        volumes[p] = {"bind": p, "mode": "ro"}
    for path in writable:
        p = os.path.abspath(str(path))
        volumes[p] = {"bind": p, "mode": "rw"}
    if cwd is not None:
        c = os.path.abspath(str(cwd))
        if not any(c == m or c.startswith(m.rstrip("/") + "/") for m in volumes):
            volumes[c] = {"bind": c, "mode": "ro"}
    return volumes


def compiler_in_image(target, engine_arch):
    """Pure: the compiler inside the image for target, or None if it has none."""
    if target.libc == "glibc":
        return f"{target.gcc_prefix}gcc"
    # Debian has musl-gcc for the native architecture only.
    if target.arch == engine_arch:
        return "musl-gcc"
    return None


class DockerToolchain(Toolchain):
    """Debian gcc (+ cross gcc) in a container built from the project's Dockerfile."""

    name = "docker"

    def __init__(self, base_image=None, client=None):
        self.base_image = resolve_base_image(base_image)
        self._client = client
        self._engine_arch = None
        self._image_id = None

    # ---------------------------------------------------------- engine ---

    def client(self):
        if self._client is None:
            try:
                import docker
            except ImportError:
                raise ToolMissing(
                    "the Python package 'docker' is not installed (pip install 'tiramisu[docker]')"
                ) from None
            try:
                self._client = docker.from_env(timeout=300)
                self._client.ping()
            except Exception as exc:  # noqa: BLE001 - docker raises many kinds
                self._client = None
                where = os.environ.get("DOCKER_HOST") or "the default socket"
                raise ToolMissing(f"no Docker engine answers at {where} ({_short(exc, 60)}): {INSTALL_HINT}") from None
        return self._client

    def engine_arch(self):
        if self._engine_arch is None:
            raw = self.client().version().get("Arch") or platform.machine()
            self._engine_arch = canonical_arch(raw)  # docker says `Architecture` like uname -m
        return self._engine_arch

    def tag(self):
        return image_tag(DOCKERFILE.read_text(), self.base_image, self.engine_arch())

    # ------------------------------------------------------- interface ---

    def problem(self, target):
        try:
            arch = self.engine_arch()
        except ToolMissing as exc:
            return exc.message
        if arch not in SUPPORTED_ARCHES:
            return f"the Docker engine runs on {arch}; the image needs an x86_64 or aarch64 engine"
        if compiler_in_image(target, arch) is None:
            return (
                f"Debian has no cross compiler for {target.name} "
                f"(musl-gcc only builds for the engine's own {arch}); use --toolchain zig"
            )
        return None

    def notes(self):
        """Extra lines for toolchain.doctor (image state), never raises."""
        try:
            client = self.client()
            tag = self.tag()
        except ToolMissing:
            return []
        lines = []
        if _image_exists(client, tag):
            lines.append(f"image {tag} is built")
        else:
            lines.append(f"image {tag} is built on first use from base {self.base_image}")
            if not _image_exists(client, self.base_image):
                lines.append(
                    f"base image {self.base_image} is not present locally and will be "
                    f"pulled (set tiramisu.docker_base_image or ${BASE_IMAGE_ENV} "
                    f"to a local image if no registry is reachable)"
                )
        return lines

    def cc(self, target):
        return [compiler_in_image(target, self.engine_arch())]

    def identity(self, target):
        image_id = self.ensure_image()
        return {
            "toolchain": "docker",
            "image": image_id,
            "base": self.base_image,
            "cc": compiler_in_image(target, self.engine_arch()),
        }

    # ----------------------------------------------------------- image ---

    def ensure_image(self, progress=None):
        """Build the image unless present; return its id (progress: stderr by default)."""
        if self._image_id:
            return self._image_id
        client = self.client()
        tag = self.tag()
        if not _image_exists(client, tag):
            self._build_image(client, tag, progress)
        self._image_id = client.images.get(tag).id
        return self._image_id

    def _build_image(self, client, tag, progress):
        (progress or _note)(
            f"docker: building toolchain image {tag} from {self.base_image} (apt inside, a minute or more)"
        )
        context = _context_tar(DOCKERFILE.read_bytes())
        log = []
        try:
            stream = client.api.build(
                fileobj=context,
                custom_context=True,
                tag=tag,
                rm=True,
                forcerm=True,
                buildargs={"BASE": self.base_image},
                decode=True,
                # apt needs the network; an engine started with --bridge=none has
                # only the host network to offer.
                network_mode="host",
                pull=False,
            )
            for chunk in stream:
                if "stream" in chunk:
                    line = chunk["stream"].rstrip()
                    if line:
                        log.append(line)
                if "error" in chunk:
                    raise BuildError(_image_error(chunk["error"], self.base_image, log))
        except BuildError:
            raise
        except Exception as exc:  # noqa: BLE001 - APIError etc.
            raise BuildError(_image_error(_short(exc), self.base_image, log)) from None

    # ------------------------------------------------------------- run ---

    def run(self, argv, cwd=None, read_only=(), writable=(), env=None):
        """Run one build command in a fresh container; raise BuildError on failure."""
        client = self.client()
        image = self.ensure_image()
        cwd = os.path.abspath(cwd or os.getcwd())
        container = client.containers.run(
            image,
            [str(a) for a in argv],
            detach=True,
            working_dir=cwd,
            user=f"{os.getuid()}:{os.getgid()}",
            network_mode="none",
            environment={"HOME": "/tmp", **(env or {})},
            volumes=mounts_for(read_only, writable, cwd),
        )
        try:
            try:
                status = container.wait(timeout=BUILD_TIMEOUT).get("StatusCode", 1)
            except Exception as exc:  # noqa: BLE001 - requests' ReadTimeout and kin
                raise BuildError(
                    f"docker: build command did not finish in {BUILD_TIMEOUT} s "
                    f"({_short(exc, 80)}): {' '.join(str(a) for a in argv[:3])} ..."
                ) from None
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        finally:
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if status != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise BuildError(
                f"docker: build command failed (exit {status}): {' '.join(str(a) for a in argv[:3])} ...\n{tail}"
            )
        return output


def _note(text):
    import sys

    print(text, file=sys.stderr, flush=True)


def _image_exists(client, ref):
    try:
        client.images.get(ref)
        return True
    except Exception:  # noqa: BLE001 - ImageNotFound, or a malformed ref
        return False


def _context_tar(dockerfile_bytes):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile_bytes)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(dockerfile_bytes))
    buf.seek(0)
    return buf


def _image_error(message, base, log):
    message = " ".join(str(message).split())
    if any(
        word in message
        for word in ("pull access denied", "not found", "manifest unknown", "no such host", "dial tcp", "lookup")
    ):
        return (
            f"docker: cannot get base image {base!r} ({message}); set "
            f"tiramisu.docker_base_image or ${BASE_IMAGE_ENV} to an image the engine has"
        )
    tail = "\n".join(log[-10:])
    return f"docker: building the toolchain image failed: {message}" + (f"\n{tail}" if tail else "")


def _short(exc, limit=200):
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
