"""history: every change recorded on the box (deploy, rollback, remove, failed attempts)."""

from .. import history as hist
from ..appnames import validate_app_name
from ..box import connect_box
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..taskkit import HOST_HELP, table, task


@task(
    help={
        "app": "only this app's records",
        "host": HOST_HELP,
        "json": "print JSON",
        "lines": "how many records, newest last (default 50)",
    },
    positional=["app"],
)
def history(c, app, host=None, json=False, lines=50):
    """Show the box's change history: time, action, app, release, result, seconds, who, from where."""
    # APP is optional: `tiramisu history --host H` passes "" (cli.OPTIONAL_POSITIONAL);
    # under inv/fab give "" (or -) for every app.
    app = validate_app_name(app) if app not in ("", "-", None) else None

    def one(conn, spec, rep):
        result = hist.read(connect_box(c, conn, spec, rep, need_supported=False), app, lines)
        if not json:
            rows = [
                [
                    r.get("time"),
                    r.get("action"),
                    r.get("app"),
                    r.get("release") or "-",
                    r.get("result"),
                    f"{r.get('seconds', 0)}s",
                    r.get("who"),
                    r.get("from") or "-",
                    r.get("error") or "",
                ]
                for r in result["records"]
            ]
            header = ["TIME", "ACTION", "APP", "RELEASE", "RESULT", "TIME(S)", "WHO", "FROM", "ERROR"]
            rep.out(table(rows, header) if rows else f"{spec.name}: no history yet")
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)
