"""setup over a FakeBox: every branch from a bare box to a changed binary."""

import pytest

from tests.fakebox import FakeBox
from tests.orchestration.conftest import ROOT, open_on, script_running_services, script_starts
from tiramisu_tasks import lifecycle as lc
from tiramisu_tasks.errors import RemoteError, UsageError

ALL_FILES = ["bin/custom_server", "bin/nginx", "conf/nginx.conf", "conf/server.conf", "lib/libwasmtime.so"]


def bare_setup(fake, settings, shipment, **kw):
    """setup on a bare box (no env dir, nothing running)."""
    fake.on(r"^mkdir -p -m 700 ")  # the layout
    script_starts(fake)
    fake.on(r"^echo state server", "state server - stopped\nstate nginx - stopped\n")
    return lc.setup(open_on(fake, settings, installed=False, running=False, installed_wins=False), shipment, **kw)


def test_setup_from_bare_uploads_everything_starts_both_and_checks_health(fake, settings, shipment):
    summary = bare_setup(fake, settings, shipment)
    assert summary["uploaded"] == ALL_FILES
    assert summary["done"] == {"server": "start", "nginx": "start"}
    assert summary["health"]["status"] == 200
    batch, version = fake.uploads
    assert '"$T/1" -t -q' in batch["check"] and '-c "$T/2"' in batch["check"]  # staged nginx tests staged conf
    assert [f["remote"] for f in version["files"]] == [f"{ROOT}/VERSION"]
    assert len(fake.ran(r"^\{ \[ -f ")) == 1  # only VERSION is compared: the env did not exist
    started = fake.ran(r"nohup setsid")
    assert "custom_server" in started[0] and "bin/nginx" in started[1]  # server before nginx


def test_setup_dry_prints_the_plan_and_changes_nothing(fake, settings, shipment):
    summary = bare_setup(fake, settings, shipment, dry=True)
    assert summary["dry"] and summary["plan"]["upload"] == ALL_FILES
    assert summary["plan"]["actions"] == {"server": "start", "nginx": "start"}
    assert fake.uploads == [] and not fake.ran(r"^mkdir") and not fake.ran("nohup")


@pytest.mark.parametrize(
    "changed, uploaded, done, ran",
    [
        (None, [], {}, []),
        ("conf/nginx.conf", ["conf/nginx.conf"], {"nginx": "reload"}, [r"bin/nginx -t -q -p", r"bin/nginx -s reload"]),
        (
            "bin/custom_server",
            ["bin/custom_server"],
            {"server": "restart"},
            [r"kill -TERM", r"nohup setsid .*custom_server"],
        ),
    ],
    ids=["no-change-rerun", "config-change-reloads-nginx-only", "server-binary-restarts-server"],
)
def test_setup_rerun_does_only_what_changed(fake, settings, shipment, changed, uploaded, done, ran):
    first = FakeBox()
    assert bare_setup(first, settings, shipment)["uploaded"] == ALL_FILES
    fake.files.update(first.files)  # the box holds what the first run uploaded
    if changed:
        fake.files[f"{ROOT}/{changed}"] = "0" * 64
    script_running_services(fake)
    script_starts(fake)
    fake.on(r"^mkdir -p -m 700 ")
    fake.on(r"^\( p=\$\(cat .*server\.pid", "stopped\nreaped\n")
    fake.on(r"bin/nginx -t -q -p")
    fake.on(r"bin/nginx -s reload")
    summary = lc.setup(open_on(fake, settings, installed_wins=False), shipment)
    assert summary["uploaded"] == uploaded
    assert summary["done"] == done
    for pattern in ran:
        assert fake.ran(pattern), pattern
    assert not fake.ran(r"nohup setsid .*/bin/nginx")  # nginx keeps running through all of these
    assert len(fake.uploads) == (1 if uploaded else 0)  # VERSION is the same: not sent again


def test_setup_refuses_a_port_taken_by_another_program(fake, settings, shipment):
    box = open_on(fake, settings, installed=False, running=False, installed_wins=False, listening=[8080])
    with pytest.raises(UsageError, match="port 8080 on fake is already in use"):
        lc.setup(box, shipment)
    assert fake.uploads == []


@pytest.mark.parametrize("dry", [False, True], ids=["applied", "dry"])
def test_setup_leaves_no_staging_dir_behind(fake, settings, shipment, tmp_path, monkeypatch, dry):
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    bare_setup(fake, settings, shipment, dry=dry)
    assert list(private.glob("tiramisu-conf-*")) == []


def test_setup_removes_its_staging_dir_when_it_fails(fake, settings, shipment, tmp_path, monkeypatch):
    import tempfile

    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    fake.on(r"^mkdir -p -m 700 ", "", stderr="mkdir: Permission denied\n", exited=1)
    with pytest.raises(RemoteError, match="cannot create .* Permission denied"):
        lc.setup(open_on(fake, settings, installed=False, running=False, installed_wins=False), shipment)
    assert list(private.glob("tiramisu-conf-*")) == []
