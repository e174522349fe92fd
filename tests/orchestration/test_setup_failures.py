"""setup's failure branches over a FakeBox: what it says, its exit code, and
what was (not) applied to the box.

- the public health check fails after both services started: ConnectError
  (exit 1) naming the health URL and the last answer; files and services are
  in place but VERSION is not written, so the next setup runs again;
- the box's disk fills up during the upload: DiskFullError (exit 1), "disk
  full on HOST ... nothing was replaced"; no service is started, no VERSION;
- the box's glibc is older than the built server needs: UnsupportedTarget
  (exit 3) before anything is uploaded or created, with a toolchain hint
  unless zig (glibc 2.17) built it.
"""

import functools

import pytest

from tests.fakebox import http_response
from tests.orchestration.conftest import ROOT, open_on, script_starts
from tiramisu_tasks import lifecycle as lc
from tiramisu_tasks.errors import ConnectError, DiskFullError, UnsupportedTarget
from tiramisu_tasks.shipment import Shipment
from tiramisu_tasks.transfer import receiver_error


def bare_box(fake, settings, **probe):
    """A bare box (no env dir, nothing running) where creating the layout and starting work."""
    fake.on(r"^mkdir -p -m 700 ")
    script_starts(fake)
    fake.on(r"^echo state server", "state server - stopped\nstate nginx - stopped\n")
    return open_on(fake, settings, installed=False, running=False, installed_wins=False, **probe)


def test_a_failed_health_check_after_start_is_an_error_and_version_is_not_written(
    fake, settings, shipment, monkeypatch
):
    monkeypatch.setattr(lc, "check_health", functools.partial(lc.check_health, timeout=0.3))
    box = bare_box(fake, settings)
    # nginx answers once (its start), then the health check after the start gets 503s.
    fake.on_http(
        "/.well-known/tiramisu/health", port=8080, reply=[http_response(200, "ok"), http_response(503, "down")]
    )
    with pytest.raises(ConnectError) as err:
        lc.setup(box, shipment)
    assert err.value.code == 1
    assert "/.well-known/tiramisu/health on the box not ready after 0s: HTTP 503" in err.value.message
    assert len(fake.uploads) == 1  # the files went up...
    assert fake.ran(r"nohup setsid .*custom_server") and fake.ran(r"nohup setsid .*/bin/nginx")  # ...both started
    assert f"{ROOT}/VERSION" not in fake.files  # but the install is not recorded as done


def test_the_box_disk_filling_up_during_the_upload_stops_setup_before_any_start(fake, settings, shipment):
    box = bare_box(fake, settings)
    fake.upload_error = receiver_error(
        "fake", 75, f"tiramisu-upload: disk full: 512 KiB free at {ROOT}", 3 * 1024 * 1024
    )
    with pytest.raises(DiskFullError) as err:
        lc.setup(box, shipment)
    assert err.value.code == 1
    assert err.value.message == (f"disk full on fake: 3.0 MiB needed at {ROOT}, 512.0 KiB free; nothing was replaced")
    assert len(fake.uploads) == 1 and fake.files.get(f"{ROOT}/bin/nginx") is None  # nothing landed
    assert not fake.ran("nohup") and f"{ROOT}/VERSION" not in fake.files


@pytest.mark.parametrize("toolchain, hint", [("gnu", True), ("zig", False)])
def test_a_box_glibc_older_than_the_build_needs_is_refused_before_anything_is_done(
    fake, settings, shipment, toolchain, hint
):
    made = shipment(None, None, None, None)
    old = Shipment(made.files, made.modes, dict(made.describe, toolchain=toolchain), glibc_needed="2.34")
    box = bare_box(fake, settings, glibc="2.17")
    with pytest.raises(UnsupportedTarget) as err:
        lc.setup(box, lambda *a: old)
    assert err.value.code == 3
    message = err.value.message
    assert message.startswith(f"fake has glibc 2.17 but the server built with {toolchain} needs glibc >= 2.34")
    assert message.endswith("nothing was uploaded")
    assert ("try --toolchain zig" in message) is hint
    assert fake.uploads == [] and not fake.ran(r"^mkdir") and not fake.ran("nohup")
