"""The box's history: one JSON line per change, appended under the box's lock.

File: ``<env>/state/history.jsonl`` (0600, the last
:data:`commands.HISTORY_MAX_LINES` records; each append rewrites it to a temp
file renamed into place). One record::

    {"time": "2026-11-30T12:00:00Z", "action": "deploy", "app": "hello",
     "release": "20261130T120000Z-3f2a...", "sha256": "3f2a...", "result": "ok",
     "seconds": 1.42, "who": "alice@laptop", "from": "10.0.0.5",
     "previous": "20261129T...", "error": null}

``action``: deploy, rollback, remove (and restore, a rollout undoing its own
deploy); ``result``: ok, unchanged or failed; ``from``: the address the box
saw the change come from ($SSH_CLIENT); ``error``: the first line of the
failure. Records are built from these fields only (:data:`FIELDS`): no
environment values, settings or file contents, so no secret can end up here.
"""

import json
import time

from . import commands as cmd

FIELDS = ("time", "action", "app", "release", "sha256", "result", "seconds", "who", "from", "previous", "error")


def make_record(
    action, app, result, seconds, who, client, release=None, sha256=None, previous=None, error=None, now=None
):
    """One history record (pure): only :data:`FIELDS`, the error cut to its first line (300 chars)."""
    first = str(error).strip().splitlines()[0][:300] if error else None
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None else time.time())),
        "action": action,
        "app": app,
        "release": release,
        "sha256": sha256,
        "result": result,
        "seconds": round(float(seconds), 2),
        "who": who,
        "from": client or None,
        "previous": previous,
        "error": first,
    }


def append_command(layout, record):
    """The command appending ``record`` (only :data:`FIELDS`) as one JSON line (pure)."""
    line = json.dumps({k: record.get(k) for k in FIELDS}, sort_keys=False, separators=(",", ":"))
    return cmd.history_append(layout, line)


def append(box, record):
    """Append ``record`` to the box's history (call it while holding the box's lock)."""
    box.run(append_command(box.layout, record))


def parse_history(text, app=None, lines=None):
    """Records from the history file's text, oldest first (pure): only ``app``'s when
    given, the last ``lines`` when given; lines that are not JSON objects are skipped."""
    records = []
    for raw in (text or "").splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict) and (app is None or rec.get("app") == app):
            records.append(rec)
    if lines is not None:
        records = records[-int(lines) :] if int(lines) else []
    return records


def read(box, app=None, lines=50):
    """{host, app, records}: the box's history (see :func:`parse_history`); read only, no lock."""
    text = box.run(cmd.read_file(box.layout.history_file)).stdout
    return {"host": box.name, "app": app, "records": parse_history(text, app, lines)}
