"""The health gate, history and per-release secrets of a tiramisu.toml app over a FakeBox.

``SimMaps`` keeps what the box's custom_server would report (live modules and
maps, preview modules and maps) and changes it when the deploy runs the
commands that would change it on a box; each test says how the release answers.
"""

import hashlib
import json
import re

import pytest
import wasmtime

from tests.fakebox import Reply, http_response
from tests.orchestration.conftest import ROOT
from tiramisu_tasks import appdeploy as ad
from tiramisu_tasks import deploy as dp
from tiramisu_tasks.apps.manifest import parse_manifest
from tiramisu_tasks.errors import RemoteError, UsageError

SECRET = "very-secret-value"
WAT = '(module (func (export "_start")))'
MOD_SHA = hashlib.sha256(wasmtime.wat2wasm(WAT)).hexdigest()
PREV = "20260101T000000Z-aaaaaaaaaa"
PREV_MAP = f"tiramisu-appmap 1\nenvfile\t{ROOT}/secrets/gb/{PREV}.env\nroute\t/gb/...\tgb.gb\t_start\n"
OLD_MOD = "b" * 64


@pytest.fixture(autouse=True)
def short_waits(monkeypatch):
    monkeypatch.setattr(dp, "wait_timeout", lambda box: 2.0)


@pytest.fixture
def spec(tmp_path):
    folder = tmp_path / "gb"
    folder.mkdir()
    (folder / "app.wat").write_text(WAT)
    (folder / "tiramisu.toml").write_text(
        '[app]\nname = "gb"\n[build]\nmodule = "app.wat"\n[secrets]\nTOKEN = "GB_T"\n'
        '[health]\npath = "/gb/"\nbody = "ok"\n'
    )
    return parse_manifest(folder / "tiramisu.toml")


class SimMaps:
    """The server's /_tiramisu/apps for app ``gb`` driven by the deploy's commands."""

    def __init__(self, fake, monkeypatch, previous=None, preview_answer=(200, "ok"), live_answer=(200, "ok")):
        self.fake = fake
        self.previous = previous
        self.live_mod = OLD_MOD if previous else None
        self.live_map = hashlib.sha256(PREV_MAP.encode()).hexdigest() if previous else None
        self.preview_mod = self.preview_map = None
        self.new_map = None
        self.current = previous
        orig = ad.app_map_text

        def capture(*a):
            text = orig(*a)
            self.new_map_text = text
            self.new_map = hashlib.sha256(text.encode()).hexdigest()
            return text

        monkeypatch.setattr(ad, "app_map_text", capture)
        fake.on_http("/_tiramisu/apps", port=9000, reply=lambda port, path: http_response(200, self.apps()))
        fake.on_http("/_tiramisu/preview/gb/gb/", port=9000, reply=lambda p, q: http_response(*preview_answer))
        fake.on_http("/gb/", port=8080, reply=lambda p, q: http_response(*self.live_answer()))
        self._live_answer = live_answer
        fake.on(r"for f in \*\.map", "")
        fake.on(r"releases/gb/CURRENT", reply=lambda c: Reply(f"{self.current}\n" if self.current else ""))
        fake.on(r"^\{ mkdir -p -m 700 .*releases/gb .*secrets/gb")
        fake.on(r"tar -xf ")
        fake.on(r"^mkdir -p -m 700 .*wasm_modules/\.preview", reply=self._place)
        fake.on(r"^printf '%s\\n' .*\.failed", reply=self._unpreview)
        fake.on(r"^rm -f .*\.preview/gb\.map", reply=self._unpreview)
        fake.on(r"CURRENT\.new", reply=self._set_current)
        fake.on(r"^\{ rm -f .*\.preview/gb\.map", reply=self._unpreview)
        fake.on(r"^cd .*/modules && for f in \*\.wasm", reply=self._switch_modules)
        fake.on(r"^\{ \[ .*app\.map.* -ef .*wasm_modules/gb\.map", reply=self._switch_map)
        fake.on(r"^test -f .*nginx\.conf", exited=1)
        fake.on(r"^test -f .*conf/apps/gb\.conf", exited=1)
        fake.on(rf"^cat {re.escape(ROOT)}/releases/gb/{PREV}\.d/app\.map", PREV_MAP)
        fake.on(r"^s=\$\(wc -c", "guest: boom\n---tiramisu-gate---\nERROR app gb: preview map\n")
        fake.on(r"^ls -1 .*releases/gb", reply=lambda c: Reply(self.listing()))
        fake.on(r"\.keep|\.failed ]")
        self.listing_names = [f"{previous}.d"] if previous else []

    def live_answer(self):
        return self._live_answer if self.live_map == self.new_map else (200, "ok old")

    def listing(self):
        names = list(self.listing_names)
        if self.new_map:
            names.append(f"{self.rid()}.d")
        return "\n".join(names) + "\n"

    def rid(self):
        return next(ln for ln in self.new_map_text.splitlines() if ln.startswith("# ")) and self._rid

    def apps(self):
        apps = [{"name": "gb.gb", "sha256": self.live_mod, "file_sha256": self.live_mod, "state": "active"}]
        previews = [{"name": "gb.gb", "sha256": MOD_SHA, "file_sha256": MOD_SHA, "state": "active"}]
        pmaps = [{"app": "gb", "file_sha256": self.preview_map, "state": "ready"}] if self.preview_map else []
        maps = [{"app": "gb", "file_sha256": self.live_map}] if self.live_map else []
        return {
            "apps": apps if self.live_mod else [],
            "previews": previews if self.preview_mod else [],
            "preview_maps": pmaps,
            "maps": maps,
            "routes": [],
        }

    def _place(self, command):
        self._rid = re.search(r"releases/gb/([0-9TZ]+-[0-9a-f]+)\.d/modules", command).group(1)
        self.preview_mod, self.preview_map = MOD_SHA, self.new_map
        return Reply("---tiramisu-gate--- 0 0\n")

    def _unpreview(self, command):
        self.preview_mod = self.preview_map = None
        return Reply()

    def _set_current(self, command):
        self.current = re.search(r"printf '%s\\n' (\S+) >", command).group(1)
        if "preview" in command:
            self._unpreview(command)
        return Reply()

    def _switch_modules(self, command):
        self.live_mod = OLD_MOD if f"{PREV}.d" in command else MOD_SHA
        return Reply(f"{self.live_mod}  gb.gb.wasm\n")

    def _switch_map(self, command):
        self.live_map = hashlib.sha256(PREV_MAP.encode()).hexdigest() if f"{PREV}.d" in command else self.new_map
        return Reply()


def switched(fake):
    """Commands that change what is live (not the preview folder)."""
    return [c for c in fake.commands if re.search(r"for f in \*\.wasm|wasm_modules/gb\.map|conf/apps|CURRENT\.new", c)]


def test_preview_gate_passes_then_switches_with_secrets_per_release(fake, open_fake, spec, monkeypatch):
    sim = SimMaps(fake, monkeypatch, previous=PREV)
    box = open_fake()
    summary = ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    rid = summary["release"]
    assert summary["previous"] == PREV and summary["health"]["preview"]["ok"] and summary["status"] == 200
    (batch,) = fake.uploads
    assert [f["remote"] for f in batch["files"]] == [
        f"{ROOT}/releases/gb/{rid}.d.tar",
        f"{ROOT}/secrets/gb/{rid}.env",
    ]
    assert f"envfile\t{ROOT}/secrets/gb/{rid}.env\n" in sim.new_map_text  # the map names its own secrets
    cmds = fake.commands
    place = next(i for i, c in enumerate(cmds) if ".preview" in c and "mkdir" in c)
    first_switch = cmds.index(switched(fake)[0])
    assert place < first_switch
    assert ("GET", 9000, "/_tiramisu/preview/gb/gb/") in fake.requests
    assert all(SECRET not in c for c in cmds) and SECRET not in json.dumps(summary)
    assert sim.current == rid and sim.preview_map is None


def test_failing_preview_switches_nothing(fake, open_fake, spec, monkeypatch):
    sim = SimMaps(fake, monkeypatch, previous=PREV, preview_answer=(500, "boom"))
    box = open_fake()
    with pytest.raises(RemoteError) as err:
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    assert "failed its health check before going live: GET /gb/ -> HTTP 500" in err.value.message
    assert f"release {PREV} keeps serving" in err.value.message
    assert switched(fake) == [] and sim.current == PREV and sim.live_mod == OLD_MOD
    assert fake.ran(r"\.failed") and sim.preview_map is None


def test_live_failure_restores_previous_modules_map_and_secrets(fake, open_fake, spec, monkeypatch):
    sim = SimMaps(fake, monkeypatch, previous=PREV, live_answer=(500, "bad"))
    box = open_fake()
    with pytest.raises(RemoteError, match=f"failed its health check after the switch.*rolled back to {PREV}"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET})
    # the previous map (naming the previous release's secrets file) and modules are live again
    assert sim.current == PREV and sim.live_mod == OLD_MOD
    assert sim.live_map == hashlib.sha256(PREV_MAP.encode()).hexdigest()


def test_no_rollback_keeps_the_new_release(fake, open_fake, spec, monkeypatch):
    sim = SimMaps(fake, monkeypatch, previous=PREV, live_answer=(500, "bad"))
    box = open_fake()
    with pytest.raises(RemoteError, match=r"stays live \(--no-rollback\)"):
        ad.deploy_app(box, spec, environ={"GB_T": SECRET}, health={"rollback": False})
    assert sim.current != PREV and sim.live_mod == MOD_SHA


def test_health_flags_beat_the_manifest(fake, open_fake, spec, monkeypatch):
    SimMaps(fake, monkeypatch, previous=PREV)
    fake.on_http("/gb/ready", port=9000, reply=lambda p, q: http_response(204, ""))
    box = open_fake()
    check = ad.app_check(box, spec, {"path": "/gb/ready", "status": "204", "body": None, "timeout": "3"})
    assert (check.path, check.statuses, check.body, check.timeout) == ("/gb/ready", ("204",), "ok", 3.0)
    with pytest.raises(UsageError, match="--health-path"):
        ad.app_check(box, spec, {"path": "nope"})


def test_held_deploy_records_history_without_secrets_and_prunes_secrets_files(fake, open_fake, spec, monkeypatch):
    sim = SimMaps(fake, monkeypatch, previous=PREV)
    old = ["20250101T000000Z-1111111111", "20250102T000000Z-2222222222"]
    sim.listing_names += [f"{r}.d" for r in old] + [f"{old[0]}.failed"]
    box = open_fake()
    fake.on(r"history\.jsonl|lock")
    lock = type("Lock", (), {"client": "10.0.0.5", "run_and_release": lambda self, c: box.run(c)})()
    summary = ad.deploy_app_held(box, lock, spec, keep=2, pin=True, environ={"GB_T": SECRET})
    assert summary["pinned"] and sorted(summary["pruned"]) == old
    last = fake.commands[-1]
    assert f"{ROOT}/secrets/gb/{old[0]}.env" in last and f"{summary['release']}.keep" in last
    assert '"action":"deploy"' in last and f'"release":"{summary["release"]}"' in last
    assert SECRET not in last and "GB_T" not in last


def test_failed_attempt_recorded_and_marked(fake, open_fake, spec, monkeypatch):
    SimMaps(fake, monkeypatch, previous=PREV, preview_answer=(500, "boom"))
    box = open_fake()
    fake.on(r"history\.jsonl")
    lock = type("Lock", (), {"client": None})()
    with pytest.raises(RemoteError):
        ad.deploy_app_held(box, lock, spec, environ={"GB_T": SECRET})
    record = next(c for c in fake.commands if "history.jsonl" in c)
    assert '"result":"failed"' in record and "before going live" in record and SECRET not in record


def test_rollback_skips_failed_bundles(fake, open_fake, monkeypatch):
    older = "20251201T000000Z-3333333333"
    fake.on(r"^ls -1 .*releases/gb", f"{older}.d\n{PREV}.d\n{PREV}.failed\n20260201T000000Z-cccccccccc.d\n")
    fake.on(r"releases/gb/CURRENT", "20260201T000000Z-cccccccccc\n")
    box = open_fake()
    result = dp.rollback(box, "gb", dry=True)
    assert result["to"] == older


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--aot"], "--aot: not yet supported for an app with a manifest or module map"),
        (["--health-status", "99x"], "--health-status: '99x' is not an HTTP status"),
        (["--health-path", "/_tiramisu/x"], "--health-path: '/_tiramisu/x' is the server's own namespace"),
        (["--pause", "3"], "--pause, --max-failed and --keep-partial go with --batch"),
        (["--batch", "0"], "--batch"),
    ],
    ids=["aot", "status", "path", "pause-alone", "batch-zero"],
)
def test_manifest_deploy_flags_checked_before_anything(spec, tmp_path, flags, message):
    """Bad flags for a manifest app: one line, exit 2, before the host is even looked up."""
    from tests.helpers import cli, one_line_error

    env = {"TIRAMISU_HOME": str(tmp_path / "home"), "TIRAMISU_INVENTORY": str(tmp_path / "none.yaml")}
    proc = cli("tiramisu", "deploy", spec.folder, "--host", "nowhere", *flags, env=env)
    assert proc.returncode == 2 and message in one_line_error(proc), proc.stderr


def test_rolling_manifest_deploy_stops_and_restores_the_updated_host(settings, monkeypatch, spec):
    """--batch for a manifest app: the procedures the task wires into rollout.run_rollout, over two
    fake boxes; h2 fails its preview, so h1 (updated in the batch before) gets its previous bundle back."""
    from tests.fakebox import FakeBox
    from tests.orchestration.conftest import open_on
    from tiramisu_tasks import rollout

    boxes, sims = {}, {}
    for name, answer in (("h1", (200, "ok")), ("h2", (500, "boom"))):
        fake = FakeBox(host=name)
        sims[name] = SimMaps(fake, monkeypatch, previous=PREV, preview_answer=answer)
        fake.on(r"history\.jsonl")
        fake.on(rf"^cat {re.escape(ROOT)}/releases/gb/\d+T\d+Z-[0-9a-f]+\.d/app\.map", PREV_MAP)
        boxes[name] = open_on(fake, settings)

    class Lock:
        client = None

        def __init__(self, box):
            self.box = box

        def run_and_release(self, command):
            return self.box.run(command)

        def release(self):
            pass

    result = rollout.run_rollout(
        "gb",
        lambda name: boxes[name],
        ["h2", "h1"],
        rollout.parse_batch("1"),
        deploy_one=lambda box, lock: ad.deploy_app_held(box, lock, spec, environ={"GB_T": SECRET}),
        restore_one=lambda box, lock, previous: dp.restore_held(box, lock, "gb", previous),
        acquire=lambda box: Lock(box),
    )
    assert [(o.host, o.result) for o in result.outcomes] == [("h1", "restored"), ("h2", "failed")]
    assert sims["h1"].current == PREV and sims["h1"].live_mod == OLD_MOD
    assert sims["h2"].current == PREV and switched_ok(sims["h2"])


def switched_ok(sim):
    """Nothing of the new release went live on a host whose preview failed."""
    return sim.live_mod == OLD_MOD and sim.live_map == hashlib.sha256(PREV_MAP.encode()).hexdigest()
