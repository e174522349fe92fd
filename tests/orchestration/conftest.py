"""The middle tier: procedures over a recording FakeBox (no SSH, no root, milliseconds)."""

import hashlib
from types import SimpleNamespace

import pytest

from tests.fakebox import FakeBox, Recorder, observed, probe_output, spec
from tiramisu_tasks.box import open_box
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.shipment import Shipment

ROOT = "/home/u/tiramisu-env"
SERVER_PID, NGINX_PID = 4100, 4200


@pytest.fixture
def settings():
    return dict(DEFAULTS)


@pytest.fixture
def fake():
    return FakeBox()


def open_on(fake, settings, installed=True, running=True, installed_wins=True, need_supported=True, **probe):
    """open_box over ``fake``, after scripting the probe for the given box state."""
    version = probe.pop("version", {"tiramisu": "0", "http_port": 8080, "server_port": 9000} if installed else None)
    pids = {"server": (SERVER_PID, True), "nginx": (NGINX_PID, True)} if running else {}
    fake.on(
        r"^LC_ALL=C; export LC_ALL\nE=",
        probe_output(env_dir=ROOT, version=version, pids=pids, env_exists=probe.pop("env_exists", installed), **probe),
    )
    return open_box(fake, spec(), Recorder(), settings, installed_wins=installed_wins, need_supported=need_supported)


@pytest.fixture
def open_fake(fake, settings):
    """open_on(fake, ...) for the test's own fake box."""
    return lambda **kw: open_on(fake, settings, **kw)


def script_running_services(fake, server=SERVER_PID, nginx=NGINX_PID):
    """The box's processes as observe_command sees them (both running by default)."""
    fake.on(r"^echo state server", observed(server=server, nginx=nginx))


def script_starts(fake):
    """Starting a service works: reap finds nothing, start prints a pid, it lives and answers."""
    fake.on(r"^envprocs\(\)", "reaped\n")
    fake.on(r"nohup setsid .*custom_server", f"{SERVER_PID}\n")
    fake.on(r"nohup setsid .*/bin/nginx", f"{NGINX_PID}\n")
    fake.on(r"^kill -0 ", "yes\n")
    fake.on_http("/_tiramisu/health", 200, "ok", port=9000)
    fake.on_http("/.well-known/tiramisu/health", 200, "ok", port=8080)


@pytest.fixture
def shipment(tmp_path):
    """A small stand-in for the built server, Wasmtime library and nginx."""
    files = {}
    for rel in ("bin/custom_server", "lib/libwasmtime.so", "bin/nginx"):
        path = tmp_path / "ship" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"fake {rel}\n".encode())
        files[rel] = path
    made = Shipment(
        files,
        {"bin/custom_server": "700", "lib/libwasmtime.so": "600", "bin/nginx": "700"},
        {"target": "x86_64-linux-gnu", "toolchain": "zig", "wasmtime": "0", "nginx_provider": "wheel"},
    )
    return lambda target, toolchain, provider, note: made


@pytest.fixture
def built(tmp_path):
    """A 'built' app module (the bytes need not be Wasm: the fake box checks nothing)."""

    def make(data=b"\0asm\1\0\0\0 v1", name="hello"):
        path = tmp_path / f"{name}-{hashlib.sha256(data).hexdigest()[:8]}.wasm"
        path.write_bytes(data)
        return SimpleNamespace(
            wasm_path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), name=name, language="wat"
        )

    return make
