"""The health gate of a deploy: what to check, whether an answer passes, what to say (pure).

A release is checked twice (issue 13, part 2):

1. before the switch, on the server's preview slot: the module sits in
   ``wasm_modules/.preview/<app>.wasm`` and the server answers
   ``/_tiramisu/preview/<app><path>`` exactly as the live app would answer
   ``<path>`` (same CGI variables, limits, routes), only to unproxied loopback
   clients — nginx answers 404 for every ``/_tiramisu/`` path;
2. after the switch, through nginx on the public port; a failure there
   restores the previous release unless ``--no-rollback``.

The check: ``path`` (default: the app's route), ``status`` (default: any
status below 500; else a list such as ``200``, ``200,204`` or ``2xx``),
``body`` (a substring the body must contain, optional), ``timeout`` (seconds
for one request). Nothing here does I/O.
"""

import re
from dataclasses import dataclass
from typing import Optional, Tuple

from .errors import UsageError

PREVIEW_PREFIX = "/_tiramisu/preview/"
DEFAULT_TIMEOUT = 10.0
BODY_LINES = 5  # lines of a failing answer's body in the error
LOG_LINES = 10  # lines of the guest's stderr / the server's errors in the error

_STATUS_ITEM = re.compile(r"[1-5][0-9][0-9]|[1-5]xx")


@dataclass(frozen=True)
class HealthCheck:
    """One request and what its answer must be.

    ``path``: absolute path (+ query) on the app, as a client would send it;
    ``statuses``: accepted codes/classes (``("200", "2xx")``), empty = any < 500;
    ``body``: substring the body must contain, or None; ``timeout``: seconds.
    """

    path: str
    statuses: Tuple[str, ...] = ()
    body: Optional[str] = None
    timeout: float = DEFAULT_TIMEOUT

    def expects(self):
        """``status < 500`` / ``status 200 or 2xx``, plus the body rule, for messages."""
        what = f"status {' or '.join(self.statuses)}" if self.statuses else "status < 500"
        return what + (f" and a body containing {self.body!r}" if self.body else "")

    def as_dict(self):
        return {"path": self.path, "statuses": list(self.statuses), "body": self.body, "timeout": self.timeout}


def parse_statuses(text):
    """``"200,2xx"`` -> ("200", "2xx"); None/"" -> () (any < 500). UsageError otherwise."""
    if text is None or str(text).strip() == "":
        return ()
    items = tuple(s.strip().lower() for s in str(text).split(","))
    for item in items:
        if not _STATUS_ITEM.fullmatch(item):
            raise UsageError(f"--health-status: {item!r} is not an HTTP status (100-599) or a class such as 2xx")
    return items


def parse_timeout(value):
    """Seconds as float in (0, 600]; UsageError otherwise."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"--health-timeout: {value!r} is not a number of seconds") from None
    if not 0 < seconds <= 600:
        raise UsageError(f"--health-timeout: {value!r} must be more than 0 and at most 600 seconds")
    return seconds


def validate_path(path):
    """An origin-form path: starts with '/', no spaces or control characters; UsageError otherwise."""
    text = str(path)
    if not text.startswith("/") or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise UsageError(f"--health-path: {path!r} must be a path starting with '/' (no spaces)")
    if text.startswith("/_tiramisu"):
        raise UsageError(f"--health-path: {path!r} is the server's own namespace, not the app's")
    return text


def make_check(default_path, path=None, status=None, body=None, timeout=None):
    """The :class:`HealthCheck` from flags/settings (None = default); UsageError on a bad value."""
    return HealthCheck(
        path=validate_path(path if path not in (None, "") else default_path),
        statuses=parse_statuses(status),
        body=body if body not in (None, "") else None,
        timeout=parse_timeout(timeout if timeout not in (None, "") else DEFAULT_TIMEOUT),
    )


def preview_path(app, path):
    """The server's loopback path that runs ``app``'s preview as ``path`` would run live."""
    return f"{PREVIEW_PREFIX}{app}{path}"


def status_ok(statuses, status):
    if not statuses:
        return status < 500
    for item in statuses:
        if item.endswith("xx") and status // 100 == int(item[0]):
            return True
        if item == str(status):
            return True
    return False


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: ``ok``, ``status`` (None: no answer), ``reason`` (one line), ``body`` excerpt."""

    ok: bool
    status: Optional[int]
    reason: str
    body: str = ""
    seconds: float = 0.0

    def as_dict(self):
        return {"ok": self.ok, "status": self.status, "reason": self.reason, "seconds": round(self.seconds, 3)}


def first_lines(text, lines=BODY_LINES, width=200):
    """The first ``lines`` non-empty lines, each cut at ``width`` characters."""
    out = [ln.rstrip()[:width] for ln in (text or "").splitlines() if ln.strip()]
    return out[:lines]


def evaluate(check, status, body_text, seconds=0.0, error=None):
    """Whether an answer passes ``check``; ``error``: the request got no answer (its text)."""
    if error is not None:
        return Verdict(False, None, f"no answer within {check.timeout:g}s ({error})", "", seconds)
    excerpt = "\n".join(first_lines(body_text))
    if not status_ok(check.statuses, status):
        return Verdict(False, status, f"HTTP {status}, expected {check.expects()}", excerpt, seconds)
    if check.body is not None and check.body not in (body_text or ""):
        return Verdict(False, status, f"HTTP {status} without {check.body!r} in the body", excerpt, seconds)
    return Verdict(True, status, f"HTTP {status}", excerpt, seconds)


def preview_failure_message(app, rid, check, verdict, live_sha):
    """The one-line error for a release that failed its preview (nothing was switched)."""
    keeps = f"the previous version ({live_sha[:12]}) keeps serving" if live_sha else "nothing was switched live"
    return f"{app} {rid} failed its health check before going live: GET {check.path} -> {verdict.reason}; {keeps}"


def live_failure_message(app, rid, check, verdict, restored, previous):
    """The one-line error for a release that failed its check through nginx after the switch."""
    if restored:
        after = f"rolled back to {previous}" if previous else "rolled back: the app is not served"
    else:
        after = f"{rid} stays live (--no-rollback)"
    return f"{app} {rid} failed its health check after the switch: GET {check.path} -> {verdict.reason}; {after}"


def evidence_lines(verdict, guest_log, server_log):
    """The lines printed above the error: the answer's first body lines, the guest's stderr and
    the server's lines about the app written during the check (each part only when non-empty)."""
    out = []
    if verdict.body:
        out.append("health check answer (first lines):")
        out += [f"  {ln}" for ln in verdict.body.splitlines()]
    guest = first_lines_tail(guest_log)
    if guest:
        out.append("guest stderr (logs/apps/<app>.log):")
        out += [f"  {ln}" for ln in guest]
    server = first_lines_tail(server_log)
    if server:
        out.append("server log:")
        out += [f"  {ln}" for ln in server]
    return out


def first_lines_tail(text, lines=LOG_LINES, width=300):
    """The last ``lines`` non-empty lines of a log excerpt, each cut at ``width``."""
    out = [ln.rstrip()[:width] for ln in (text or "").splitlines() if ln.strip()]
    return out[-lines:]


# --------------------------------------------------------------- plan ---


@dataclass(frozen=True)
class GatePlan:
    """What the gate will do for one deploy (printed with the deploy plan).

    ``preview``: the loopback path checked before the switch; ``live``: the
    public path checked through nginx after it; ``rollback``: restore the
    previous release when the live check fails; ``previous``: that release;
    ``routes_before``: the routes file's text to put back with it when the
    deploy changes the routes (None: it does not).
    """

    app: str
    release: str
    check: HealthCheck
    preview: str
    live: str
    rollback: bool
    previous: Optional[str]
    routes_before: Optional[str] = None

    def text(self):
        back = f"restore {self.previous or 'nothing live'}" if self.rollback else "keep it (--no-rollback)"
        return (
            f"health gate for {self.app} {self.release}: GET {self.preview} on the server ({self.check.expects()}, "
            f"{self.check.timeout:g}s) before the switch; GET {self.live} through nginx after it, on failure {back}"
        )

    def as_dict(self):
        return {
            "app": self.app,
            "release": self.release,
            "check": self.check.as_dict(),
            "preview": self.preview,
            "live": self.live,
            "rollback": self.rollback,
            "previous": self.previous,
        }


def plan_gate(app, release, check, previous, rollback=True, routes_before=None):
    """The :class:`GatePlan` for deploying ``release`` of ``app`` (``previous``: the live release id or None)."""
    path = preview_path(app, check.path)
    return GatePlan(app, release, check, path, check.path, bool(rollback), previous, routes_before)
