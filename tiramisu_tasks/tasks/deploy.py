"""deploy, apps, rollback, remove, logs: everyday work on a set-up box."""

import time

from invoke import Exit

from .. import aot as aotmod
from .. import deploy as dp
from .. import lifecycle as lc
from ..errors import DiskFullError, RemoteError, UsageError
from ..hostrun import run_on_hosts
from ..remote import join, q, run
from ..sshhttp import request
from ..taskkit import note, table, task
from ..transfer import Upload, upload_batch
from ..connect import resolve_specs
from ..hostrun import emit_results as _emit
from .lifecycle import HOST_HELP


def _wait_timeout(box):
    # Compiling under emulation (qemu-user test hosts, slow boards) takes longer.
    return 180.0 if box.report.get("machine") not in ("x86_64", "amd64") else 60.0


def _open_served_box(c, conn, spec, rep):
    box = lc.open_box(c, conn, spec, rep)
    if not box.report["installed"]:
        raise UsageError(f"Tiramisu is not installed on {spec.name}: run setup --host {spec.name} first")
    if box.report["services"]["server"]["state"] != "running":
        raise UsageError(f"custom_server is not running on {spec.name}: run webserv.start --host {spec.name}")
    return box


def deploy_box(c, conn, spec, rep, built, app, route, dry, keep, aot=False):
    """Deploy one built module to one box; every step is one SSH round trip or less."""
    started = time.monotonic()
    box = _open_served_box(c, conn, spec, rep)
    layout = box.layout
    keep = int(keep or box.settings.get("keep_releases") or 5)
    live = dp.server_apps(box).get(app)
    live_sha = live.get("sha256") if live else None
    previous, routes_text = dp.parse_prepare(run(conn, dp.prepare_command(layout, app)).stdout)
    route_change = route is not None and route not in dp.routes_for(routes_text, app)
    path = "/" if route == "/" else (route or f"/{app}/")
    summary = {"host": spec.name, "app": app, "sha256": built.sha256, "url": box.url(path), "dry": dry}
    if live_sha == built.sha256 and live.get("state") == "active" and not route_change:
        rep.note(f"{spec.name}: {app} {built.sha256[:12]} is already live; nothing to do")
        summary.update(changed=False, release=previous)
        return summary
    rid = dp.release_id(built.sha256)
    rep.note(f"plan for {spec.name}: upload release {app}/{rid}.wasm ({built.size} bytes), switch it live"
             + (f", route {route} -> {app}" if route_change else "") + f", keep {keep} releases")
    if dry:
        summary.update(changed=True, release=rid)
        return summary

    uploads = [Upload.of(built.wasm_path, layout.release(app, rid), "600")]
    check = f"{q(layout.server_bin)} --config {q(layout.server_conf)} --check-module \"$T/0\""
    if aot:
        shipment = _aot_shipment(conn, box, built, rep)
        if shipment is not None:
            uploads.append(Upload.of(shipment.local, shipment.remote, "600"))
            check = aotmod.check_command(layout.server_bin, layout.server_conf)
    try:
        upload_batch(conn, layout.root, uploads, note=rep.note, check=check)
    except DiskFullError as exc:
        raise DiskFullError(f"{exc.message}; {_serving(live_sha)}")
    except RemoteError as exc:
        raise RemoteError(f"{app} was not deployed (the box's server cannot load it): "
                          f"{exc.message.split(': ', 1)[-1]}; {_serving(live_sha)}")
    t_switch = time.monotonic()
    # switch + rescan + prune in one round trip; inotify normally sees the
    # rename first, the SIGHUP only makes sure.
    run(conn, f"{dp.switch_command(layout, app, rid)} && {dp.hup_server_command(layout)} && "
              f"{dp.prune_command(layout, app, keep, rid)}")
    try:
        record = dp.wait_for_app(box, app, built.sha256, _wait_timeout(box))
    except RemoteError as exc:
        back = dp.switch_command(layout, app, previous) if previous else join(["rm", "-f", layout.app_module(app)])
        run(conn, f"{back}; {dp.hup_server_command(layout)}", warn=True)
        raise RemoteError(f"{exc.message}; {_serving(live_sha)}")
    swap_ms = (time.monotonic() - t_switch) * 1000
    if route_change:
        dp.write_routes(box, dp.routes_update(routes_text, app, route))
    resp = request(conn, box.settings["http_port"], path, timeout=30)
    summary.update(changed=True, release=rid, previous=previous, status=resp.status,
                   latency_ms=round(resp.seconds * 1000, 1), swap_ms=round(swap_ms, 1),
                   seconds=round(time.monotonic() - started, 2), state=record.get("state"),
                   code=record.get("code"))
    if resp.status >= 500:
        raise RemoteError(f"{app} is live but answered HTTP {resp.status} at {path}: {resp.text.strip()[:200]}")
    return summary


def _aot_shipment(conn, box, built, rep):
    """A precompiled module for this box, or None (with the reason) to let the box compile."""
    facts = run(conn, aotmod.box_facts_command(box.layout.server_bin, box.layout.server_conf), warn=True)
    shipment = aotmod.prepare_shipment(facts.stdout, box.target, built.wasm_path, built.sha256,
                                       fallback_cache_dir=box.layout.cache)
    rep.note(f"aot: {shipment.reason}")
    return shipment if shipment.ok else None


def _serving(sha):
    return f"the previous version ({sha[:12]}) keeps serving" if sha else "nothing was switched live"


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
    },
    positional=["source"],
)
def deploy(c, source, host=None, name=None, route=None, keep=None, dry=False, json=False, aot=False):
    """Build SOURCE to WASM and hot-swap it in on the box(es): no restart, no failed request."""
    from ..apps.build import build_app

    route = dp.validate_route(route)
    resolve_specs(c, host)  # a missing or bad --host fails before the build, not after
    built = build_app(source, name=name)
    app = dp.validate_app_name(name or built.name)
    note(f"built {app}: {built.size} bytes, sha256 {built.sha256[:12]} ({built.language})")

    def one(conn, spec, rep):
        summary = deploy_box(c, conn, spec, rep, built, app, route, dry, keep, aot=aot)
        if not json and not dry:
            if summary["changed"]:
                rep.out(f"{spec.name}: {app} {summary['release']} live at {summary['url']} "
                        f"(HTTP {summary['status']} in {summary['latency_ms']} ms; deploy {summary['seconds']}s)")
            else:
                rep.out(f"{spec.name}: {app} unchanged at {summary['url']}")
        return summary

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"host": HOST_HELP, "json": "print JSON"})
def apps(c, host=None, json=False):
    """List the apps on the box: route, sha256, release, state, requests."""

    def one(conn, spec, rep):
        box = _open_served_box(c, conn, spec, rep)
        served = dp.server_apps(box)
        routes_text = dp.read_text(conn, box.layout.routes_file)
        releases = dp.current_releases(conn, box.layout)
        rows, out = [], []
        for name in sorted(served):
            a = served[name]
            record = {"name": name, "routes": [f"/{name}"] + dp.routes_for(routes_text, name),
                      "sha256": a.get("sha256"), "release": releases.get(name),
                      "loaded_at": a.get("loaded_at"), "state": a.get("state"), "error": a.get("error"),
                      "requests": a.get("requests")}
            out.append(record)
            rows.append([name, " ".join(record["routes"]), (record["sha256"] or "")[:12], record["release"] or "-",
                         record["state"], record["requests"] if record["requests"] is not None else "-"])
        if not json:
            rep.out(table(rows, ["APP", "ROUTES", "SHA256", "RELEASE", "STATE", "REQUESTS"]) if rows
                    else f"{spec.name}: no apps deployed")
        return {"host": spec.name, "apps": out}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"app": "app name", "host": HOST_HELP, "to": "release id to go back to (default: the one before)",
            "json": "print JSON"}, positional=["app"])
def rollback(c, app, host=None, to=None, json=False):
    """Switch an app back to an earlier release (kept in releases/APP/)."""
    dp.validate_app_name(app)

    def one(conn, spec, rep):
        box = _open_served_box(c, conn, spec, rep)
        releases = dp.list_releases(conn, box.layout, app)
        current = dp.current_release(conn, box.layout, app)
        if not releases:
            raise UsageError(f"no releases of {app!r} on {spec.name}")
        if to:
            if to not in releases:
                raise UsageError(f"release {to!r} of {app} not found on {spec.name} (have: {', '.join(releases)})")
            target = to
        else:
            older = [r for r in releases if current is None or r < current]
            if not older:
                raise UsageError(f"{app} on {spec.name} has no release older than {current}")
            target = older[0]
        sha = run(conn, f"sha256sum {q(box.layout.release(app, target))} | cut -c1-64").stdout.strip()
        run(conn, f"{dp.switch_command(box.layout, app, target)} && {dp.hup_server_command(box.layout)}")
        dp.wait_for_app(box, app, sha, _wait_timeout(box))
        if not json:
            rep.out(f"{spec.name}: {app} rolled back {current} -> {target}")
        return {"host": spec.name, "app": app, "from": current, "to": target, "sha256": sha}

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help={"app": "app name", "host": HOST_HELP, "yes": "do not ask (scripts)"}, positional=["app"])
def remove(c, app, host=None, yes=False):
    """Stop serving an app and delete its releases (its log is kept)."""
    dp.validate_app_name(app)
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError(f"remove deletes {app} and its releases: confirm with --yes")
        if input(f"Remove {app} and its releases? [y/N] ").strip().lower() not in ("y", "yes"):
            raise Exit("tiramisu: remove cancelled", code=1)

    def one(conn, spec, rep):
        box = _open_served_box(c, conn, spec, rep)
        routes_text = dp.read_text(conn, box.layout.routes_file)
        if dp.routes_for(routes_text, app):
            dp.write_routes(box, dp.routes_without_app(routes_text, app))
        run(conn, f"{join(['rm', '-f', box.layout.app_module(app)])}; {dp.hup_server_command(box.layout)}")
        deadline = time.monotonic() + 30
        while app in dp.server_apps(box):
            if time.monotonic() > deadline:
                raise RemoteError(f"the server still lists {app} after 30s")
            time.sleep(0.05)
        run(conn, join(["rm", "-rf", "--", box.layout.app_releases(app)]))
        rep.out(f"{spec.name}: {app} removed")

    run_on_hosts(c, host, one)


@task(help={"app": "app name", "host": HOST_HELP, "lines": "how many lines (default 50)",
            "follow": "keep printing new lines (Ctrl-C stops)"}, positional=["app"])
def logs(c, app, host=None, lines=50, follow=False):
    """Show an app's log (its guest stderr, one file per app on the box)."""
    dp.validate_app_name(app)

    def one(conn, spec, rep):
        box = lc.open_box(c, conn, spec, rep, need_supported=False)
        path = box.layout.app_log(app)
        if not run(conn, f"test -f {q(path)}", warn=True).ok:
            rep.out(f"{spec.name}: no log for {app} yet ({path})")
            return
        conn.run(join(["tail", "-n", str(int(lines))] + (["-F"] if follow else []) + [path]),
                 pty=False, hide=False, warn=True, in_stream=False)

    run_on_hosts(c, host, one)
