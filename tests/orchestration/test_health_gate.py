"""deploy's health gate over a FakeBox: preview check, switch, check through nginx, rollback.

``SimServer`` keeps the state the box's custom_server would have (live sha,
preview slot) and changes it when the deploy runs the commands that would
change it on a box, so each test only says how the release answers.
"""

import hashlib
import re

import pytest

from tests.fakebox import Reply, http_response
from tests.orchestration.conftest import ROOT
from tiramisu_tasks import deploy as dp
from tiramisu_tasks.errors import ConnectError, RemoteError, UsageError

OLD = "a" * 64
PREV = "20260101T000000Z-aaaaaaaaaa"


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    monkeypatch.setattr(dp, "wait_timeout", lambda box: 3.0)


class SimServer:
    """The server's view (/_tiramisu/apps) driven by the deploy's commands."""

    def __init__(self, fake, new_sha, live=OLD, compile_error=None, previews=True):
        self.fake, self.new, self.live, self.preview = fake, new_sha, live, None
        self.compile_error = compile_error
        self.previews = previews
        fake.on_http("/_tiramisu/apps", port=9000, reply=lambda port, path: http_response(200, self.apps()))
        fake.on(r"^mkdir -p -m 700 .*/wasm_modules/\.preview", reply=self._place)
        fake.on(r"^printf '%s\\n' .*\.failed", reply=self._unpreview)
        fake.on(r"\{ ln -f .*wasm_modules/\.hello\.wasm", reply=self._activate)  # activate / restore
        fake.on(r"^rm -f .*wasm_modules/hello\.wasm", reply=self._remove)  # restore of a first deploy
        fake.on(r"^s=\$\(wc -c", "guest: panicked at main.c:3\n---tiramisu-gate---\nERROR app preview:hello: trap\n")

    def apps(self):
        apps = []
        if self.live:
            apps.append({"name": "hello", "sha256": self.live, "file_sha256": self.live, "state": "active"})
        out = {"apps": apps, "routes": []}
        if self.previews:
            out["previews"] = [self.preview] if self.preview else []
        return out

    def _place(self, command):
        if self.compile_error:
            self.preview = {
                "name": "hello",
                "sha256": None,
                "file_sha256": self.new,
                "state": "failed",
                "error": self.compile_error,
            }
        else:
            self.preview = {"name": "hello", "sha256": self.new, "file_sha256": self.new, "state": "active"}
        return Reply("---tiramisu-gate--- 120 4000\n")

    def _unpreview(self, command):
        self.preview = None
        return Reply()

    def _activate(self, command):
        rid = re.search(r"releases/hello/([0-9TZ]+-[0-9a-f]+)\.wasm", command).group(1)
        self.live = self.new if rid != PREV else OLD
        if "/.preview/" in command:  # activate_previewed empties the slot
            self.preview = None
        return Reply()

    def _remove(self, command):
        self.live = None
        return Reply()


def served(fake, open_fake, current=PREV, routes="# PREFIX APP\n", **settings):
    fake.on(r"^mkdir -p -m 700 \S*/releases/hello ", f"{current or ''}\n---tiramisu-routes---\n{routes}")
    box = open_fake()
    box.settings.update(settings)
    return box


def preview_requests(fake):
    return [r for r in fake.requests if r[2].startswith("/_tiramisu/preview/")]


def test_good_release_passes_the_preview_then_goes_live(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", 200, "hi", port=9000)
    fake.on_http("/hello/", 200, "hi", port=8080)
    box = served(fake, open_fake)
    summary = dp.deploy(box, app, "hello", None)
    assert summary["status"] == 200 and sim.live == app.sha256 and sim.preview is None
    assert summary["health"]["preview"]["ok"] and summary["health"]["live"]["ok"]
    # the order that makes the guarantee: preview checked before the switch, nginx after
    order = [c for c in fake.calls if c[0] == "run" or (c[0] == "http" and "/apps" not in c[3])]
    kinds = [
        "place"
        if c[0] == "run" and ".preview" in c[1] and c[1].startswith("mkdir")
        else "switch"
        if c[0] == "run" and c[1].startswith(("{ ln -f", "{ [ "))
        else c[3]
        if c[0] == "http"
        else None
        for c in order
    ]
    kinds = [k for k in kinds if k]
    assert kinds == ["place", "/_tiramisu/preview/hello/hello/", "switch", "/hello/"]
    assert not fake.ran(r"\.failed")
    assert any(n.startswith("health gate for hello ") for n in box.rep.notes)


def test_failing_preview_switches_nothing_and_marks_the_release_failed(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", 500, "500 Internal Server Error\n", port=9000)
    box = served(fake, open_fake)
    with pytest.raises(RemoteError) as err:
        dp.deploy(box, app, "hello", None)
    first = err.value.message
    assert "\n" not in first
    assert "failed its health check before going live: GET /hello/ -> HTTP 500, expected status < 500" in first
    assert "the previous version (aaaaaaaaaaaa) keeps serving" in first
    # the answer, the guest's stderr and the server's lines, printed above the one-line error
    notes = "\n".join(box.rep.notes)
    assert "  500 Internal Server Error" in notes and "  guest: panicked at main.c:3" in notes
    assert "  ERROR app preview:hello: trap" in notes
    assert sim.live == OLD and sim.preview is None
    assert not fake.ran(r"\{ ln -f .*wasm_modules/\.hello")  # never switched
    assert not [r for r in fake.requests if r[1] == 8080]  # nothing through nginx
    (mark,) = fake.ran(r"\.failed")
    assert re.search(r"releases/hello/[0-9TZ]+-[0-9a-f]+\.failed", mark)
    assert "rm -f" in mark and "/.preview/hello.wasm" in mark
    # the evidence was read from where the check began
    (evidence,) = fake.ran(r"^s=\$\(wc -c")
    assert "o=120;" in evidence and "o=4000;" in evidence


def test_preview_without_an_answer_fails_the_gate(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", reply=ConnectError("timed out", code=1))
    with pytest.raises(RemoteError, match=r"GET /hello/ -> no answer within 10s \(timed out\)"):
        dp.deploy(served(fake, open_fake), app, "hello", None)
    assert sim.live == OLD


def test_rejected_preview_module_is_reported_and_marked(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256, compile_error="unknown import: env.f")
    with pytest.raises(RemoteError, match=r"rejected the new hello module: unknown import: env.f; the previous"):
        dp.deploy(served(fake, open_fake), app, "hello", None)
    assert fake.ran(r"\.failed") and sim.live == OLD and not preview_requests(fake)


def test_server_without_preview_slot_is_refused_before_any_switch(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256, previews=False)
    with pytest.raises(RemoteError, match=r"no preview slot .*run setup --host fake"):
        dp.deploy(served(fake, open_fake), app, "hello", None)
    assert sim.live == OLD


def test_live_check_failure_restores_the_previous_release(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", 200, "hi", port=9000)
    fake.on_http("/hello/", 502, "bad gateway", port=8080)
    with pytest.raises(RemoteError) as err:
        dp.deploy(served(fake, open_fake), app, "hello", None)
    first = err.value.message
    assert "failed its health check after the switch: GET /hello/ -> HTTP 502" in first
    assert f"rolled back to {PREV}" in first
    assert sim.live == OLD
    restore = fake.ran(r"\{ ln -f .*releases/hello/" + PREV)
    assert restore and "kill -HUP" in restore[0]
    assert fake.ran(r"\.failed")


def test_live_check_failure_of_a_first_deploy_removes_it(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256, live=None)
    fake.on_http("/_tiramisu/preview/hello/hello/", 200, "hi", port=9000)
    fake.on_http("/hello/", 404, "404 Not Found", port=8080)
    fake.on(r"^sha256sum ", "")
    with pytest.raises(RemoteError, match=r"rolled back: the app is not served"):
        dp.deploy(served(fake, open_fake, current=None), app, "hello", None, health={"status": "200"})
    assert sim.live is None


def test_no_rollback_keeps_the_failed_release_live(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", 200, "hi", port=9000)
    fake.on_http("/hello/", 500, "oops", port=8080)
    with pytest.raises(RemoteError, match=r"stays live \(--no-rollback\)"):
        dp.deploy(served(fake, open_fake), app, "hello", None, health={"rollback": False})
    assert sim.live == app.sha256
    assert not fake.ran(r"\{ ln -f .*releases/hello/" + PREV)


def test_flags_beat_settings_and_the_check_follows_them(fake, open_fake, built):
    app = built()
    SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/ping", 200, "pong ok", port=9000)
    fake.on_http("/ping", 200, "pong ok", port=8080)
    box = served(fake, open_fake, health_path="/from-settings", health_body="nope", health_status="2xx")
    summary = dp.deploy(box, app, "hello", None, health={"path": "/ping", "body": "pong"})
    assert summary["health"]["check"] == {"path": "/ping", "statuses": ["2xx"], "body": "pong", "timeout": 10.0}
    assert [r[2] for r in fake.requests if r[2] in ("/_tiramisu/preview/hello/ping", "/ping")] == [
        "/_tiramisu/preview/hello/ping",
        "/ping",
    ]


def test_body_substring_decides(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/hello/", 200, "maintenance", port=9000)
    with pytest.raises(RemoteError, match=r"HTTP 200 without 'ready' in the body"):
        dp.deploy(served(fake, open_fake), app, "hello", None, health={"body": "ready"})
    assert sim.live == OLD


def test_new_route_is_given_to_the_preview_before_the_routes_file_changes(fake, open_fake, built):
    app = built()
    SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/api", 200, "hi", port=9000)
    fake.on_http("/api", 200, "hi", port=8080)
    fake.on(r"^p=\$\(cat .*kill -HUP")  # write_routes' rescan
    summary = dp.deploy(served(fake, open_fake), app, "hello", "/api")
    (batch, routes) = fake.uploads
    preview_routes = batch["files"][1]["remote"]
    assert preview_routes == f"{ROOT}/releases/hello/{summary['release']}.routes"
    (place,) = fake.ran(r"^mkdir -p -m 700 .*\.preview")
    assert f"mv -f {preview_routes} {ROOT}/wasm_modules/.preview/hello.routes" in place
    assert routes["files"][0]["remote"] == f"{ROOT}/conf/routes.conf"


def test_dry_run_prints_the_gate(fake, open_fake, built):
    fake.on_http("/_tiramisu/apps", body={"apps": []})
    box = served(fake, open_fake)
    summary = dp.deploy(box, built(), "hello", None, dry=True, health={"status": "200,3xx"})
    assert summary["gate"]["preview"] == "/_tiramisu/preview/hello/hello/"
    assert summary["gate"]["check"]["statuses"] == ["200", "3xx"]
    assert fake.uploads == []


@pytest.mark.parametrize(
    "health, message",
    [
        ({"status": "abc"}, "--health-status: 'abc' is not an HTTP status"),
        ({"status": "600"}, "--health-status: '600'"),
        ({"timeout": "0"}, "--health-timeout: '0' must be more than 0"),
        ({"timeout": "soon"}, "--health-timeout: 'soon' is not a number"),
        ({"path": "ping"}, "--health-path: 'ping' must be a path starting with '/'"),
        ({"path": "/_tiramisu/apps"}, "the server's own namespace"),
    ],
)
def test_bad_health_options_are_usage_errors_before_any_change(fake, open_fake, built, health, message):
    fake.on_http("/_tiramisu/apps", body={"apps": []})
    with pytest.raises(UsageError, match=re.escape(message)):
        dp.deploy(served(fake, open_fake), built(), "hello", None, health=health)
    assert fake.uploads == []


def test_live_failure_puts_the_routes_back_too(fake, open_fake, built):
    app = built()
    sim = SimServer(fake, app.sha256)
    fake.on_http("/_tiramisu/preview/hello/api", 200, "hi", port=9000)
    fake.on_http("/api", 500, "no", port=8080)
    fake.on(r"^p=\$\(cat .*kill -HUP")
    with pytest.raises(RemoteError, match=f"rolled back to {PREV}"):
        dp.deploy(served(fake, open_fake, routes="# PREFIX APP\n/old hello\n"), app, "hello", "/api")
    new_routes, old_routes = [u["files"][0] for u in fake.uploads[1:]]
    assert new_routes["remote"] == old_routes["remote"] == f"{ROOT}/conf/routes.conf"
    assert new_routes["sha256"] != old_routes["sha256"]
    assert old_routes["sha256"] == hashlib.sha256(b"# PREFIX APP\n/old hello\n").hexdigest()
    assert sim.live == OLD
