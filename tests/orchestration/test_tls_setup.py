"""setup with HTTPS over a FakeBox: the pair ships before the config that names it."""

import pytest

from tests.orchestration.test_setup import ALL_FILES, bare_setup
from tiramisu_tasks.errors import UsageError


@pytest.fixture(autouse=True)
def user_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path / "home"))


def test_self_signed_pair_ships_first_then_the_config(fake, settings, shipment):
    settings.update(tls="self-signed", domains="box.example")
    fake.on(r"^find .*/tls -maxdepth 1")
    summary = bare_setup(fake, settings, shipment)
    pair, batch, _version = fake.uploads
    remotes = [f["remote"] for f in pair["files"]]
    assert [r.rsplit(".", 1)[1] for r in remotes] == ["crt", "key"]
    assert all("/tls/" in r for r in remotes) and pair["check"] is None
    assert all(f["mode"] == "600" for f in pair["files"])
    assert [f["remote"].rsplit("tiramisu-env/", 1)[1] for f in batch["files"]] == ALL_FILES
    assert summary["tls"]["mode"] == "self-signed"
    assert summary["https_url"] == "https://box.example:8443/"
    assert fake.ran(r"^find .*/tls -maxdepth 1")  # the pairs the config no longer names are pruned


def test_dry_run_makes_the_local_pair_but_uploads_nothing(fake, settings, shipment):
    settings.update(tls="self-signed")
    summary = bare_setup(fake, settings, shipment, dry=True)
    assert summary["tls"]["certificate"]["fingerprint_sha256"]
    assert fake.uploads == []


def test_files_mode_with_a_missing_file_refuses_before_anything(fake, settings, shipment, tmp_path):
    settings.update(tls="files", tls_cert=str(tmp_path / "nope.pem"), tls_key=str(tmp_path / "nope.key"))
    with pytest.raises(UsageError, match="tls_cert.*nope.pem"):
        bare_setup(fake, settings, shipment)
    assert fake.uploads == [] and not fake.ran(r"^mkdir")
