"""deploy, apps, rollback, remove, logs: everyday work on a set-up box.

Tasks only parse flags, call a procedure of :mod:`tiramisu_tasks.deploy` per
host and print; the procedures plan and act.
"""

from .. import deploy as dp
from .. import lifecycle as lc
from ..appnames import validate_app_name
from ..box import connect_box
from ..connect import resolve_specs
from ..errors import UsageError
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
    from ..apps.manifest import find_app_file

    if find_app_file(source) is not None:  # tiramisu.toml or a WAGI modules.toml
        return _deploy_app_folder(c, source, host, name, dry, json, keep, validate_route(route))
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
        "purge_data": "also delete the app's data folders (data/APP) and secrets (kept otherwise)",
    },
    positional=["app"],
)
def remove(c, app, host=None, yes=False, dry=False, purge_data=False):
    """Stop serving an app and delete its releases (its log is kept; its data unless --purge-data)."""
    validate_app_name(app)
    if not yes and not dry:
        what = " and its releases" + (" AND ITS DATA" if purge_data else "")
        confirm(
            f"Remove {app}{what}?",
            f"remove deletes {app}{what}: confirm with --yes",
            "remove cancelled",
        )

    def one(conn, spec, rep):
        box = connect_box(c, conn, spec, rep)
        dp.remove(box, app, dry=dry)
        if purge_data and not dry:
            from .. import commands as cmd

            box.run(cmd.purge_app_data(box.layout, app))
        if not dry:
            rep.out(f"{spec.name}: {app} removed" + (" with its data" if purge_data else ""))

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

    run_on_hosts(c, host, one)


def _deploy_app_folder(c, source, host, name, dry, json, keep=None, route=None):
    """deploy of a folder with tiramisu.toml or modules.toml (see tiramisu_tasks/appdeploy.py).

    ``--route P`` adds the wildcard route ``P/...`` to a manifest that declares
    no [[route]] (the `tiramisu init` stub); with declared routes it is refused.
    """
    from .. import appdeploy
    from ..apps.appspec import RouteSpec
    from ..apps.build import build_app
    from ..apps.manifest import read_app
    from ..apps.wagiroutes import parse_pattern

    spec = read_app(source, name)  # a bad manifest or map fails here, before anything is built or sent
    if route:
        if spec.routes_declared or spec.kind != "manifest":
            raise UsageError(f"--route does not apply to {source}: its routes come from its {spec.source_file.name}")
        pattern = parse_pattern("/..." if route == "/" else route.rstrip("/") + "/...")
        spec.routes.append(RouteSpec(pattern, spec.routes[0].module))
    appdeploy.resolve_secrets(spec)  # a missing secret too (its name only)
    resolve_specs(c, host)
    for key, path in list(spec.modules.items()):
        if path is None:
            src = spec.folder / spec.build.get("source", ".")
            built = build_app(src, name=spec.name, language=spec.build.get("language"))
            note(f"built {spec.name}: {built.size} bytes, sha256 {built.sha256[:12]} ({built.language})")
            spec.modules[key] = built.wasm_path

    def one(conn, spec_, rep):
        summary = appdeploy.deploy_app(connect_box(c, conn, spec_, rep), spec, dry=dry, keep=keep)
        if not json and not dry:
            rep.out(f"{spec_.name}: {spec.name} {summary['release']} live at {summary['url']} ({summary['seconds']}s)")
        return summary

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"app": "the app's name", "host": HOST_HELP, "json": "print JSON"}, positional=["app"])
def env(c, app, host=None, json=False):
    """List APP's environment on the box: plain values as deployed, secrets as ***."""
    from .. import appdeploy

    app = validate_app_name(app)

    def one(conn, spec, rep):
        result = appdeploy.env_of(connect_box(c, conn, spec, rep), app)
        if not json:
            rows = [[e["name"], e["value"], e["route"]] for e in result["env"]]
            rep.out(table(rows, ["NAME", "VALUE", "ROUTE"]) if rows else f"{spec.name}: {app} has no environment")
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)
