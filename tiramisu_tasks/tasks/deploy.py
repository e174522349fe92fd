"""deploy, apps, rollback, remove, logs: everyday work on a set-up box.

Tasks only parse flags, call a procedure of :mod:`tiramisu_tasks.deploy` per
host and print; the procedures plan and act.
"""

import sys

from .. import boxlock
from .. import deploy as dp
from .. import lifecycle as lc
from ..appnames import validate_app_name
from ..box import connect_box
from ..connect import resolve_specs
from ..errors import UsageError
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..options import SECONDS, IntOption
from ..rollout import parse_batch, run_rollout, summary_text
from ..routes import validate_route
from ..taskkit import HOST_HELP, confirm, emit_json, note, table, task

LOCK_WAIT_HELP = "seconds to wait for another change's lock on the box (default: lock_wait setting, 10)"


def _lock_flags(lock_wait):
    return {"lock_wait": lock_wait} if lock_wait is not None else {}


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
        "lock_wait": LOCK_WAIT_HELP,
        "keep_release": "pin this release: pruning never deletes it",
        "batch": "rolling deploy over several hosts: N hosts or P% of them per batch (default: all at once)",
        "pause": "with --batch: seconds to wait between two batches",
        "max_failed": "with --batch: failed hosts tolerated before the rollout stops (default 0)",
        "keep_partial": "with --batch: when the rollout stops, leave updated hosts on the new release",
        "health_path": "health check path, checked on the server's preview before the switch "
        "and through nginx after it (default: health_path setting, else the app's route)",
        "health_status": "accepted statuses, e.g. 200 or 2xx,301 (default: health_status setting, else any below 500)",
        "health_body": "text the health check's body must contain (default: health_body setting)",
        "health_timeout": "seconds per health check request (default: health_timeout setting, 10)",
        "no_rollback": "keep a release live that fails its check through nginx after the switch",
    },
    positional=["source"],
    types={"pause": SECONDS, "max_failed": IntOption(0, 100000)},
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
    lock_wait=None,
    keep_release=False,
    batch=None,
    pause=None,
    max_failed=None,
    keep_partial=False,
    health_path=None,
    health_status=None,
    health_body=None,
    health_timeout=None,
    no_rollback=False,
):
    """Build SOURCE to WASM and hot-swap it in on the box(es): no restart, no failed request."""
    from ..apps.build import build_app
    from ..apps.manifest import needs_app_deploy

    if needs_app_deploy(source):  # a tiramisu.toml beyond the init stub, or a WAGI modules.toml
        if aot:
            raise UsageError("--aot: not yet supported for an app with a manifest or module map (the box compiles)")
        rolling = parse_batch(batch) if batch is not None else None
        if rolling is None and (pause is not None or max_failed is not None or keep_partial):
            raise UsageError("--pause, --max-failed and --keep-partial go with --batch N|P%")
        health = check_health_flags(health_path, health_status, health_body, health_timeout, no_rollback)
        rollout = (rolling, pause, max_failed, keep_partial) if rolling is not None else None
        return _deploy_app_folder(
            c, source, host, name, dry, json, keep, validate_route(route), lock_wait, health, keep_release, rollout
        )
    route = validate_route(route)
    spec = parse_batch(batch) if batch is not None else None
    if spec is None and (pause is not None or max_failed is not None or keep_partial):
        raise UsageError("--pause, --max-failed and --keep-partial go with --batch N|P%")
    health = check_health_flags(health_path, health_status, health_body, health_timeout, no_rollback)
    specs = resolve_specs(c, host)  # a missing or bad --host fails before the build, not after
    built = build_app(source, name=name)
    app = validate_app_name(name or built.name)
    note(f"built {app}: {built.size} bytes, sha256 {built.sha256[:12]} ({built.language})")
    flags = _lock_flags(lock_wait)

    if spec is not None and not dry:
        _rollout(
            c,
            specs,
            built,
            app,
            route,
            keep,
            aot,
            keep_release,
            flags,
            spec,
            pause,
            max_failed,
            keep_partial,
            json,
            health,
        )
        return

    def one(conn, spec, rep):
        box = connect_box(c, conn, spec, rep, flags)
        summary = dp.locked_deploy(box, built, app, route, dry, keep, aot=aot, pin=keep_release, health=health)
        if not dry:
            summary["tls_renewal"] = _renew_certificate(box, rep)
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


def _renew_certificate(box, rep):
    """tls=acme: renew a due certificate after the deploy (under the box's lock); a
    failure is reported and the deploy still counts (the old certificate keeps serving).
    Returns None, {"renewed": ...} or {"error": ...} for the JSON summary."""
    from .. import tls
    from ..errors import TiramisuError

    if str(box.settings.get("tls") or "off") != "acme":  # no lock, no round trip for the usual case
        return None
    try:
        with boxlock.held(box, "tls.renew"):
            result = tls.renew_if_due(box)
    except TiramisuError as exc:
        rep.note(f"{box.name}: certificate renewal failed, the current certificate keeps serving: {exc.message}")
        return {"renewed": False, "error": exc.message}
    if result is None:
        return None
    rep.note(f"{box.name}: certificate renewed ({result['reason']})")
    return {"renewed": True, "reason": result["reason"]}


def _rollout(c, specs, built, app, route, keep, aot, pin, flags, spec, pause, max_failed, keep_partial, json, health):
    """deploy --batch: :func:`rollout.run_rollout` over real boxes; summary table, exit 1 unless all went well."""
    from .. import boxlock
    from ..connect import connect, host_config
    from ..hostrun import Reporter
    from ..inventory import Inventory

    inventory = Inventory.load()
    by_name = {s.name: s for s in specs}
    configs = {s.name: host_config(c) for s in specs}  # made here, before any thread (see hostrun)

    def open_box(name):
        spec_ = by_name[name]
        rep = Reporter(name, prefixed=True)
        conn = connect(c, spec_, inventory, notify=rep.note, config=configs[name])
        return connect_box(c, conn, spec_, rep, flags)

    result = run_rollout(
        app,
        open_box,
        list(by_name),
        spec,
        deploy_one=lambda box, lock: dp.deploy_held(
            box, lock, built, app, route, keep=keep, aot=aot, pin=pin, health=health
        ),
        restore_one=lambda box, lock, previous: dp.restore_held(box, lock, app, previous),
        acquire=lambda box: boxlock.acquire(box, "deploy", app, built.sha256),
        pause=pause or 0,
        max_failed=max_failed or 0,
        keep_partial=keep_partial,
    )
    _finish_rollout(app, result, json)


def _finish_rollout(app, result, json):
    """A rollout's summary on stderr (stdout keeps the one --json document), then Exit 1 if a host failed."""
    from invoke import Exit

    print(summary_text(result), file=sys.stderr, flush=True)
    if json:
        emit_json(result.as_dict())
    if not result.ok:
        raise Exit(f"tiramisu: rollout of {app} failed on: {', '.join(o.host for o in result.failed)}", code=1)


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
        "lock_wait": LOCK_WAIT_HELP,
    },
    positional=["app"],
)
def rollback(c, app, host=None, to=None, json=False, dry=False, lock_wait=None):
    """Switch an app back to an earlier release (kept in releases/APP/)."""
    validate_app_name(app)

    def one(conn, spec, rep):
        result = dp.locked_rollback(connect_box(c, conn, spec, rep, _lock_flags(lock_wait)), app, to, dry=dry)
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
        "lock_wait": LOCK_WAIT_HELP,
        "purge_data": "also delete the app's data folders (data/APP) and secrets (kept otherwise)",
        "json": "print JSON (one document: per host, what was removed or the plan)",
    },
    positional=["app"],
)
def remove(c, app, host=None, yes=False, dry=False, lock_wait=None, purge_data=False, json=False):
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
        box = connect_box(c, conn, spec, rep, _lock_flags(lock_wait))
        result = dp.locked_remove(box, app, dry=dry, purge_data=purge_data)
        if not dry:
            result = {**(result or {}), "purged_data": bool(purge_data)}
            rep.out(f"{spec.name}: {app} removed" + (" with its data" if purge_data else ""))
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


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
    """Show an app's log (its guest stderr: one file per app, one per module of a manifest app)."""
    validate_app_name(app)

    def one(conn, spec, rep):
        box = connect_box(c, conn, spec, rep, need_supported=False)
        paths = lc.app_log_paths(box, app)  # APP.log, or one per module of a manifest app
        if not lc.tail_logs(box, paths, lines, follow):
            rep.out(f"{spec.name}: no log for {app} yet ({box.layout.app_log(app)})")

    run_on_hosts(c, host, one, interrupt_ok=follow)


def _deploy_app_folder(
    c, source, host, name, dry, json, keep=None, route=None, lock_wait=None, health=None, pin=False, rollout=None
):
    """deploy of a folder with tiramisu.toml or modules.toml (see tiramisu_tasks/appdeploy.py).

    ``--route P`` adds the wildcard route ``P/...`` to a manifest that declares
    no [[route]] (the `tiramisu init` stub); with declared routes it is refused.
    ``health``: the --health-* flags and --no-rollback (see :func:`check_health_flags`);
    ``rollout``: (batch, pause, max_failed, keep_partial) for --batch.
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
    specs = resolve_specs(c, host)
    for key, path in list(spec.modules.items()):
        if path is None:
            src = spec.folder / spec.build.get("source", ".")
            built = build_app(src, name=spec.name, language=spec.build.get("language"))
            note(f"built {spec.name}: {built.size} bytes, sha256 {built.sha256[:12]} ({built.language})")
            spec.modules[key] = built.wasm_path
    flags = _lock_flags(lock_wait)

    if rollout is not None and not dry:
        _app_rollout(c, specs, spec, keep, pin, flags, rollout, json, health)
        return

    def one(conn, spec_, rep):
        box = connect_box(c, conn, spec_, rep, flags)
        summary = appdeploy.locked_deploy_app(box, spec, dry=dry, keep=keep, pin=pin, health=health)
        if not json and not dry:
            rep.out(
                f"{spec_.name}: {spec.name} {summary['release']} live at {summary['url']} "
                f"(HTTP {summary['status']}; deploy {summary['seconds']}s, "
                f"health gate passed on the preview in {summary.get('gate_ms', 0):.0f} ms)"
            )
        return summary

    _emit(run_on_hosts(c, host, one, quiet=json), json)


def _app_rollout(c, specs, app_spec, keep, pin, flags, rollout, json, health):
    """deploy --batch of a manifest/module-map app: :func:`rollout.run_rollout` as for a plain app."""
    from .. import appdeploy
    from ..connect import connect, host_config
    from ..hostrun import Reporter
    from ..inventory import Inventory

    batch, pause, max_failed, keep_partial = rollout
    app = app_spec.name
    inventory = Inventory.load()
    by_name = {s.name: s for s in specs}
    configs = {s.name: host_config(c) for s in specs}  # made here, before any thread (see hostrun)

    def open_box(name):
        rep = Reporter(name, prefixed=True)
        conn = connect(c, by_name[name], inventory, notify=rep.note, config=configs[name])
        return connect_box(c, conn, by_name[name], rep, flags)

    result = run_rollout(
        app,
        open_box,
        list(by_name),
        batch,
        deploy_one=lambda box, lock: appdeploy.deploy_app_held(box, lock, app_spec, keep=keep, pin=pin, health=health),
        restore_one=lambda box, lock, previous: dp.restore_held(box, lock, app, previous),
        acquire=lambda box: boxlock.acquire(box, "deploy", app),
        pause=pause or 0,
        max_failed=max_failed or 0,
        keep_partial=keep_partial,
    )
    _finish_rollout(app, result, json)


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
