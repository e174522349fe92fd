"""The health gate's pure parts: checks, verdicts, messages, command builders, and nginx hiding the preview."""

import crossplane
import pytest

from tiramisu_tasks import commands as cmd
from tiramisu_tasks import healthgate as hg
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.render import config_values, render_nginx_conf

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")


def test_nginx_answers_404_for_every_preview_path_itself(tmp_path):
    """The server's preview paths live under /_tiramisu/: nginx's own location returns 404, never proxies."""
    conf_file = tmp_path / "nginx.conf"
    conf_file.write_text(render_nginx_conf(config_values(LAYOUT, "pi", dict(DEFAULTS))))
    conf = crossplane.parse(str(conf_file), single=True, check_ctx=False, check_args=False)
    blocks = []

    def walk(items):
        for d in items:
            if d["directive"] == "location" and d["args"][-1].startswith("/_tiramisu"):
                blocks.append(d)
            walk(d.get("block", []))

    walk(conf["config"][0]["parsed"])
    assert [b["args"] for b in blocks] == [["^~", "/_tiramisu/"]]
    assert [(d["directive"], d["args"]) for d in blocks[0]["block"]] == [("return", ["404"])]
    assert hg.preview_path("app", "/x").startswith("/_tiramisu/")


@pytest.mark.parametrize(
    "text, statuses",
    [(None, ()), ("", ()), ("200", ("200",)), ("200, 2XX ,301", ("200", "2xx", "301"))],
)
def test_statuses_parse(text, statuses):
    assert hg.parse_statuses(text) == statuses


@pytest.mark.parametrize("text", ["abc", "99", "600", "2x", "6xx", "200;201"])
def test_bad_statuses(text):
    with pytest.raises(UsageError, match="--health-status"):
        hg.parse_statuses(text)


def test_defaults_and_expectations():
    check = hg.make_check("/app/")
    assert check == hg.HealthCheck("/app/", (), None, 10.0)
    assert check.expects() == "status < 500"
    assert hg.make_check("/app/", "/ping", "2xx", "ok", "2.5").expects() == "status 2xx and a body containing 'ok'"


def test_verdicts():
    check = hg.make_check("/", status="200", body="ready")
    assert hg.evaluate(check, 200, "ready!").ok
    assert hg.evaluate(check, 200, "starting").reason == "HTTP 200 without 'ready' in the body"
    assert hg.evaluate(check, 503, "x").reason == "HTTP 503, expected status 200 and a body containing 'ready'"
    v = hg.evaluate(check, None, None, 1.0, error="refused")
    assert not v.ok and v.status is None and v.reason == "no answer within 10s (refused)"


def test_plan_text_names_both_checks_and_the_rollback():
    plan = hg.plan_gate("app", "R2", hg.make_check("/app/"), "R1")
    assert plan.preview == "/_tiramisu/preview/app/app/" and plan.live == "/app/"
    assert "on failure restore R1" in plan.text()
    assert "keep it (--no-rollback)" in hg.plan_gate("app", "R2", hg.make_check("/app/"), "R1", False).text()


def test_place_preview_links_routes_then_module_and_prints_log_offsets():
    line = cmd.place_preview(LAYOUT, "app", "R2", True)
    pdir = "/home/pi/tiramisu-env/wasm_modules/.preview"
    assert line.startswith(f"mkdir -p -m 700 {pdir} && ")
    routes_at = line.index(f"mv -f /home/pi/tiramisu-env/releases/app/R2.routes {pdir}/app.routes")
    module_at = line.index(f"mv -f {pdir}/.app.wasm.tiramisu-new {pdir}/app.wasm")
    assert routes_at < module_at
    assert f"rm -f {pdir}/app.routes" in cmd.place_preview(LAYOUT, "app", "R2", False)
    assert cmd.parse_log_offsets("junk\n---tiramisu-gate--- 12 3456\n") == (12, 3456)
    assert cmd.parse_log_offsets("") == (0, 0)


def test_mark_failed_quotes_the_reason_and_empties_the_slot():
    line = cmd.mark_failed(LAYOUT, "app", "R2", "GET / -> HTTP 500; it's 'bad'\nsecond")
    assert "> /home/pi/tiramisu-env/releases/app/R2.failed;" in line
    assert "it'\"'\"'s" in line and "\n" not in line
    assert line.endswith("/wasm_modules/.preview/app.routes; true")


def test_gate_evidence_parts():
    assert cmd.parse_gate_evidence("g1\ng2\n---tiramisu-gate---\ns1\n") == ("g1\ng2\n", "s1\n")
    line = cmd.gate_evidence(LAYOUT, "app", 10, 20)
    assert "o=10;" in line and "o=20;" in line and "-e 'app preview:app:'" in line


def test_failure_message_is_one_line_and_the_evidence_is_bounded():
    check = hg.make_check("/x")
    verdict = hg.evaluate(check, 500, "line1\n\nline2\nline3\nline4\nline5\nline6\n")
    msg = hg.preview_failure_message("a", "R", check, verdict, None)
    assert msg == (
        "a R failed its health check before going live: GET /x -> HTTP 500, expected status < 500; "
        "nothing was switched live"
    )
    lines = hg.evidence_lines(verdict, "e1\ne2\n", "")
    assert "  line5" in lines and "  line6" not in lines
    assert lines[-3:] == ["guest stderr (logs/apps/<app>.log):", "  e1", "  e2"]
    live = hg.live_failure_message("a", "R", check, verdict, True, None)
    assert live.endswith("rolled back: the app is not served")
