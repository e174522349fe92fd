"""deploy, apps, rollback, remove, logs: everyday work on a set-up box.

Tasks only parse flags, call a procedure of :mod:`tiramisu_tasks.deploy` per
host and print; the procedures plan and act.
"""

from .. import deploy as dp
from .. import lifecycle as lc
from ..appnames import validate_app_name
from ..box import connect_box
from ..connect import resolve_specs
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..routes import validate_route
from ..taskkit import HOST_HELP, confirm, note, table, task


@task(
    help={
        "source": "app source: a project folder, a .c/.zig/.wat file, or a ready .wasm",
        "host": HOST_HELP,
        "name": "app name (default: from the source); served at /NAME",
        "route": "also serve the app at this path prefix, e.g. / or /api (longest prefix wins)",
        "keep": "releases to keep for rollback (default: keep_releases setting, 5)",
        "dry": "build and print the plan; change nothing on the box",
        "json": "print a JSON summary",
        "aot": "ship a module precompiled here when the box's Wasmtime accepts it (else the box compiles)",
        "health_path": "health check path, checked on the server's preview before the switch "
        "and through nginx after it (default: health_path setting, else the app's route)",
        "health_status": "accepted statuses, e.g. 200 or 2xx,301 (default: health_status setting, else any below 500)",
        "health_body": "text the health check's body must contain (default: health_body setting)",
        "health_timeout": "seconds per health check request (default: health_timeout setting, 10)",
        "no_rollback": "keep a release live that fails its check through nginx after the switch",
    },
    positional=["source"],
)
def deploy(
    c,
    source,
    host=None,
    name=None,
    route=None,
    keep=None,
    dry=False,
    json=False,
    aot=False,
    health_path=None,
    health_status=None,
    health_body=None,
    health_timeout=None,
    no_rollback=False,
):
    """Build SOURCE to WASM and hot-swap it in on the box(es): no restart, no failed request."""
    from ..apps.build import build_app

    route = validate_route(route)
    health = check_health_flags(health_path, health_status, health_body, health_timeout, no_rollback)
    resolve_specs(c, host)  # a missing or bad --host fails before the build, not after
    built = build_app(source, name=name)
    app = validate_app_name(name or built.name)
    note(f"built {app}: {built.size} bytes, sha256 {built.sha256[:12]} ({built.language})")

    def one(conn, spec, rep):
        summary = dp.deploy(connect_box(c, conn, spec, rep), built, app, route, dry, keep, aot=aot, health=health)
        if not json and not dry:
            if summary["changed"]:
                rep.out(
                    f"{spec.name}: {app} {summary['release']} live at {summary['url']} "
                    f"(HTTP {summary['status']} in {summary['latency_ms']} ms; deploy {summary['seconds']}s, "
                    f"health gate passed on the preview in {summary.get('gate_ms', 0):.0f} ms)"
                )
            else:
                rep.out(f"{spec.name}: {app} unchanged at {summary['url']}")
        return summary

    _emit(run_on_hosts(c, host, one, quiet=json), json)


def check_health_flags(path, status, body, timeout, no_rollback):
    """The --health-* flags as deploy's ``health`` dict, each checked before anything is built (UsageError)."""
    from .. import healthgate as hg

    hg.make_check("/", path, status, body, timeout)
    return {"path": path, "status": status, "body": body, "timeout": timeout, "rollback": not no_rollback}


@task(help={"host": HOST_HELP, "json": "print JSON"})
def apps(c, host=None, json=False):
    """List the apps on the box: route, sha256, release, state, requests."""

    def one(conn, spec, rep):
        result = dp.apps(connect_box(c, conn, spec, rep))
        rows = [
            [
                a["name"],
                " ".join(a["routes"]),
                (a["sha256"] or "")[:12],
                a["release"] or "-",
                a["state"],
                a["requests"] if a["requests"] is not None else "-",
            ]
            for a in result["apps"]
        ]
        if not json:
            rep.out(
                table(rows, ["APP", "ROUTES", "SHA256", "RELEASE", "STATE", "REQUESTS"])
                if rows
                else f"{spec.name}: no apps deployed"
            )
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(
    help={
        "app": "app name",
        "host": HOST_HELP,
        "to": "release id to go back to (default: the one before)",
        "json": "print JSON",
        "dry": "print the plan and change nothing on the box",
    },
    positional=["app"],
)
def rollback(c, app, host=None, to=None, json=False, dry=False):
    """Switch an app back to an earlier release (kept in releases/APP/)."""
    validate_app_name(app)

    def one(conn, spec, rep):
        result = dp.rollback(connect_box(c, conn, spec, rep), app, to, dry=dry)
        if not json and not dry:
            rep.out(f"{spec.name}: {app} rolled back {result['from']} -> {result['to']}")
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(
    help={
        "app": "app name",
        "host": HOST_HELP,
        "yes": "do not ask (scripts)",
        "dry": "print the plan and change nothing on the box",
    },
    positional=["app"],
)
def remove(c, app, host=None, yes=False, dry=False):
    """Stop serving an app and delete its releases (its log is kept)."""
    validate_app_name(app)
    if not yes and not dry:
        confirm(
            f"Remove {app} and its releases?",
            f"remove deletes {app} and its releases: confirm with --yes",
            "remove cancelled",
        )

    def one(conn, spec, rep):
        dp.remove(connect_box(c, conn, spec, rep), app, dry=dry)
        if not dry:
            rep.out(f"{spec.name}: {app} removed")

    run_on_hosts(c, host, one)


@task(
    help={
        "app": "app name",
        "host": HOST_HELP,
        "lines": "how many lines (default 50)",
        "follow": "keep printing new lines (Ctrl-C stops)",
    },
    positional=["app"],
)
def logs(c, app, host=None, lines=50, follow=False):
    """Show an app's log (its guest stderr, one file per app on the box)."""
    validate_app_name(app)

    def one(conn, spec, rep):
        box = connect_box(c, conn, spec, rep, need_supported=False)
        path = box.layout.app_log(app)
        if not lc.tail_logs(box, [path], lines, follow):
            rep.out(f"{spec.name}: no log for {app} yet ({path})")

    run_on_hosts(c, host, one, interrupt_ok=follow)
