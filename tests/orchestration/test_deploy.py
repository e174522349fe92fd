"""deploy, rollback and remove over a FakeBox: success, no-op, failed activation, dry."""

import re

import pytest

from tests.orchestration.conftest import ROOT
from tiramisu_tasks import deploy as dp
from tiramisu_tasks.errors import RemoteError, UsageError

OLD = "a" * 64


def apps_json(*records):
    return {"apps": list(records)}


def served(fake, open_fake, current="20260101T000000Z-aaaaaaaaaa", routes="# PREFIX APP\n"):
    """A set-up box whose server runs; prepare prints CURRENT and the routes."""
    fake.on(r"^mkdir -p -m 700 .*releases/hello", f"{current or ''}\n---tiramisu-routes---\n{routes}")
    fake.on_http("/_tiramisu/preview/hello/.*", 200, "ok", port=9000)  # the health gate's preview check
    return open_fake()


def _preview_ready(sha):
    """/_tiramisu/apps once the server compiled the release in its preview slot (health gate)."""
    return _resp({"apps": [], "previews": [{"name": "hello", "sha256": sha, "file_sha256": sha, "state": "active"}]})


def test_deploy_uploads_checks_switches_and_verifies(fake, open_fake, built):
    app = built()
    fake.on_http(
        "/_tiramisu/apps",
        reply=[
            _resp(apps_json({"name": "hello", "sha256": OLD, "state": "active"})),
            _preview_ready(app.sha256),
            _resp(apps_json({"name": "hello", "sha256": app.sha256, "state": "active"})),
        ],
    )
    fake.on_http("/hello/", 200, "hi", port=8080)
    fake.on(r"\{ ln -f .*hello.*&& mv -f ")  # activate
    box = served(fake, open_fake)
    summary = dp.deploy(box, app, "hello", None)
    assert summary["changed"] and summary["status"] == 200
    (batch,) = fake.uploads
    assert batch["files"][0]["remote"] == f"{ROOT}/releases/hello/{summary['release']}.wasm"
    assert "--check-module" in batch["check"]
    assert fake.ran(r"kill -HUP")  # rescan
    assert not fake.ran(r"rm -f --")  # pruning waits for success: deploy.deploy_held plans it
    assert box.rep.notes[-2].startswith("plan for fake: upload release hello/")
    assert box.rep.notes[-1].startswith("health gate for hello ")


def test_same_bytes_again_is_a_no_op(fake, open_fake, built):
    app = built()
    fake.on_http("/_tiramisu/apps", body=apps_json({"name": "hello", "sha256": app.sha256, "state": "active"}))
    summary = dp.deploy(served(fake, open_fake), app, "hello", None)
    assert summary["changed"] is False
    assert fake.uploads == [] and not fake.ran(r"ln -f")


def test_failed_activation_restores_the_previous_release_and_reports_the_server_error(fake, open_fake, built):
    app = built()
    fake.on_http(
        "/_tiramisu/apps",
        reply=[
            _resp(apps_json({"name": "hello", "sha256": OLD, "state": "active"})),
            _preview_ready(app.sha256),
            _resp(
                apps_json(
                    {
                        "name": "hello",
                        "sha256": OLD,
                        "state": "active",
                        "error": "unknown import: env.f",
                        "failed_sha256": app.sha256,
                    }
                )
            ),
        ],
    )
    fake.on(r"\{ ln -f ")
    with pytest.raises(
        RemoteError,
        match=r"rejected the new hello module: unknown import: env.f; "
        r"the previous version \(aaaaaaaaaaaa\) keeps serving",
    ):
        dp.deploy(served(fake, open_fake), app, "hello", None)
    restore = fake.commands[-1]
    assert "20260101T000000Z-aaaaaaaaaa" in restore and "{ ln -f" in restore
    assert "kill -HUP" in restore


def test_first_deploy_that_fails_removes_the_module_again(fake, open_fake, built):
    app = built()
    fake.on_http(
        "/_tiramisu/apps",
        reply=[
            _resp(apps_json()),
            _preview_ready(app.sha256),
            _resp(apps_json({"name": "hello", "sha256": app.sha256, "state": "failed", "error": "trap"})),
        ],
    )
    fake.on(r"\{ ln -f ")
    fake.on(r"^rm -f .*wasm_modules/hello.wasm")
    with pytest.raises(RemoteError, match="trap; nothing was switched live"):
        dp.deploy(served(fake, open_fake, current=None), app, "hello", None)
    assert fake.ran(r"^rm -f .*wasm_modules/hello.wasm")


def test_a_module_the_box_cannot_load_is_not_switched(fake, open_fake, built):
    fake.on_http("/_tiramisu/apps", body=apps_json({"name": "hello", "sha256": OLD, "state": "active"}))
    fake.upload_error = RemoteError("upload failed (exit 73), nothing was replaced: bad magic", code=73)
    with pytest.raises(RemoteError, match=r"hello was not deployed .*bad magic; the previous version"):
        dp.deploy(served(fake, open_fake), built(), "hello", None)
    assert not fake.ran(r"ln -f")


def test_deploy_dry_plans_and_changes_nothing(fake, open_fake, built):
    fake.on_http("/_tiramisu/apps", body=apps_json())
    summary = dp.deploy(served(fake, open_fake), built(), "hello", "/api", dry=True)
    assert summary["plan"]["routes"].endswith("/api hello\n") and summary["plan"]["changed"]
    assert fake.uploads == [] and not fake.ran(r"ln -f")


def test_deploy_needs_a_running_server(fake, open_fake, built):
    box = open_fake(running=False)
    with pytest.raises(UsageError, match="custom_server is not running on fake"):
        dp.deploy(box, built(), "hello", None)
    assert fake.requests == []


def test_rollback_switches_to_the_release_before_and_waits(fake, open_fake):
    sha = "b" * 64
    fake.on(r"^ls -1 .*releases/hello", "20260102T000000Z-cccccccccc.wasm\n20260101T000000Z-bbbbbbbbbb.wasm\nCURRENT\n")
    fake.on(r"^cat .*releases/hello/CURRENT", "20260102T000000Z-cccccccccc\n")
    fake.on(r"^sha256sum ", sha + "\n")
    fake.on(r"\{ ln -f ")
    fake.on_http("/_tiramisu/apps", body=apps_json({"name": "hello", "sha256": sha, "state": "active"}))
    box = open_fake()
    result = dp.rollback(box, "hello")
    assert (result["from"], result["to"]) == ("20260102T000000Z-cccccccccc", "20260101T000000Z-bbbbbbbbbb")
    # The plan is printed (on stderr, through the reporter) before it is carried out, as setup does.
    assert "plan for fake: switch hello 20260102T000000Z-cccccccccc -> 20260101T000000Z-bbbbbbbbbb" in box.rep.notes
    assert re.search(r"releases/hello/20260101T000000Z-bbbbbbbbbb\.wasm", fake.ran(r"\{ ln -f")[0])


def test_rollback_without_an_older_release_says_so(fake, open_fake):
    fake.on(r"^ls -1 ", "20260102T000000Z-cccccccccc.wasm\n")
    fake.on(r"^cat .*CURRENT", "20260102T000000Z-cccccccccc\n")
    with pytest.raises(UsageError, match="has no release older than"):
        dp.rollback(open_fake(), "hello")
    assert not fake.ran(r"ln -f")


def test_remove_drops_routes_module_and_releases(fake, open_fake):
    fake.on(r"^cat .*routes.conf", "# PREFIX APP\n/ hello\n/api other\n")
    fake.on(r"^rm -f .*wasm_modules/hello.wasm")
    fake.on(r"^rm -rf -- .*releases/hello$")
    fake.on(r"kill -HUP|^p=\$\(cat")
    fake.on_http("/_tiramisu/apps", reply=[_resp(apps_json({"name": "hello"})), _resp(apps_json())])
    box = open_fake()
    dp.remove(box, "hello")
    assert any(n.startswith("plan for fake: stop serving hello, drop its routes, delete ") for n in box.rep.notes)
    (routes,) = fake.uploads
    assert routes["files"][0]["remote"] == f"{ROOT}/conf/routes.conf"
    assert fake.commands[-1].startswith("rm -rf -- ")


def test_remove_of_an_app_that_is_not_there_is_a_usage_error(fake, open_fake):
    fake.on_http("/_tiramisu/apps", body=apps_json({"name": "other"}))
    fake.on(r"^test -d .*releases/nosuch", exited=1)
    with pytest.raises(UsageError, match="no app 'nosuch' on fake"):
        dp.remove(open_fake(), "nosuch")
    assert not fake.uploads and not fake.ran(r"^rm ")


def _resp(body):
    from tests.fakebox import http_response

    return http_response(200, body)
