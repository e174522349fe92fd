"""App procedures on a set-up box: deploy, rollback, remove, apps, logs.

Box layout per app (see layout.py)::

    releases/<app>/<id>.wasm     every deployed version (last N kept)
    releases/<app>/CURRENT       the id that is live
    wasm_modules/<app>.wasm      what the server serves (watched by inotify)
    conf/routes.conf             extra prefixes: "PREFIX APP" lines

Switching is a rename into wasm_modules/ (atomic); the server compiles the new
module off the request path and swaps it in, finishing in-flight requests on
the old one. If the server reports an error for the new sha256, the previous
release is renamed back so the file on disk matches what is serving.

Like :mod:`lifecycle`, each procedure takes a :class:`box.Box`, observes,
plans with a pure function of :mod:`plans`, and applies the plan. The tasks
run them under the box's lock with a history record (``locked_*`` and
``*_held`` at the end of this module; see :mod:`boxlock`, :mod:`history`).
"""

import os
import tempfile
import time

from . import commands as cmd
from . import healthgate as hg
from .errors import DiskFullError, RemoteError, TiramisuError, UsageError
from .plans import plan_deploy, plan_prune, plan_remove, plan_rollback
from .polling import poll_until
from .routes import routes_for
from .transfer import Upload


def wait_timeout(box):
    # Compiling under emulation (qemu-user test hosts, slow boards) takes longer.
    from .targets import canonical_arch

    return 180.0 if canonical_arch(box.report.get("machine")) != "x86_64" else 60.0


def require_served(box):
    """UsageError unless Tiramisu is installed on the box and its server runs."""
    if not box.report["installed"]:
        raise UsageError(f"Tiramisu is not installed on {box.name}: run setup --host {box.name} first")
    if box.report["services"]["server"]["state"] != "running":
        raise UsageError(f"custom_server is not running on {box.name}: run webserv.start --host {box.name}")
    return box


# ------------------------------------------------------------ observe ---


def admin_apps(box, app=None):
    """The server's /_tiramisu/apps document; with ``app``, /_tiramisu/apps/<app> (that app's
    record only: ~1 KB where the whole list of a thousand apps is ~400 KB), or the whole
    document from a server older than that endpoint (it answers 404). RemoteError unless HTTP 200."""
    port = box.settings["server_port"]
    resp = box.http(port, f"/_tiramisu/apps/{app}", timeout=10) if app else None
    if resp is None or resp.status == 404:
        resp = box.http(port, "/_tiramisu/apps", timeout=10)
    if resp.status != 200:
        raise RemoteError(f"server admin API answered HTTP {resp.status}")
    return resp.json()


def server_apps(box, app=None):
    """The server's view: {name: {...}} from /_tiramisu/apps (see :func:`admin_apps`: with
    ``app``, at least that app's record when it has one); RemoteError unless HTTP 200."""
    data = admin_apps(box, app)
    apps = data.get("apps", data) if isinstance(data, dict) else data
    return {a["name"]: a for a in apps}


def wait_for_app(box, app, sha256, timeout):
    """Until the server serves sha256 for app (returns its record).

    Raises RemoteError with the server's error when it rejects that module,
    or when it is not active within ``timeout`` seconds.
    """
    seen = {"last": None}

    def active():
        try:
            last = server_apps(box, app).get(app)
        except TiramisuError:
            last = None
        seen["last"] = last
        if last and last.get("sha256") == sha256:
            if last.get("state") == "active":
                return last
            if last.get("error"):
                raise RemoteError(f"the server rejected the new {app} module: {last['error']}")
        if last and last.get("error") and last.get("failed_sha256") == sha256:
            raise RemoteError(f"the server rejected the new {app} module: {last['error']}")
        return None

    def too_late():
        last = seen["last"]
        state = f"{last.get('state')} {str(last.get('sha256'))[:12]}" if last else "not listed"
        return RemoteError(f"the server did not activate {app} {sha256[:12]} within {timeout:.0f}s (now: {state})")

    return poll_until(active, timeout, interval=0.05, on_timeout=too_late)


def read_text(box, path):
    return box.run(cmd.read_file(path)).stdout


def current_release(box, app):
    return read_text(box, f"{box.layout.app_releases(app)}/CURRENT").strip() or None


def current_releases(box):
    """{app: live release id} for every app, in one round trip."""
    out = box.run(cmd.current_releases(box.layout)).stdout
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split()) == 2)


def release_listing(box, app):
    """(ids newest first, failed ids, pinned ids) of ``app``'s releases, in one round trip."""
    return cmd.parse_release_listing(box.run(cmd.list_releases(box.layout, app)).stdout)


# --------------------------------------------------------------- act ---


def write_routes(box, text):
    """Replace routes.conf atomically (one upload batch) and ask the server to re-read it (SIGHUP)."""
    fd, path = tempfile.mkstemp(prefix="tiramisu-routes-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    try:
        box.upload([Upload.of(path, box.layout.routes_file, "600")])
    finally:
        os.unlink(path)
    box.run(cmd.hup_server(box.layout))


def _serving(sha):
    return f"the previous version ({sha[:12]}) keeps serving" if sha else "nothing was switched live"


def deploy(box, built, app, route, dry=False, keep=None, aot=False, health=None):
    """Deploy one built module (:class:`apps.build.BuildResult`) to one served box; returns the summary.

    ``health``: {path, status, body, timeout, rollback} from flags (None/missing
    entries: the box's health_* settings, then the defaults of :mod:`healthgate`).

    Raises UsageError when the box is not set up or served or a health option
    is bad, DiskFullError / RemoteError when the upload or the box's check
    fails (nothing switched), RemoteError when the release fails its health
    check on the server's preview slot (nothing switched; the release is
    marked ``<id>.failed``), when the server rejects the module (the previous
    release is restored first) or when the live check through nginx fails
    (the previous release is restored unless ``health["rollback"]`` is False).
    """
    started = time.monotonic()
    require_served(box)
    layout = box.layout
    keep = int(keep or box.settings.get("keep_releases") or 5)
    live = server_apps(box, app).get(app)
    prepared = box.run(cmd.prepare_release(layout, app)).stdout
    if cmd.prepare_saw_app_map(prepared):
        raise UsageError(
            f"{app} on {box.name} is an app with a manifest or module map: deploy its folder, "
            f"or remove it first (tiramisu remove {app} --host {box.name}; its data stays) to deploy one module"
        )
    previous, routes_text = cmd.parse_prepare(prepared)
    plan = plan_deploy(box.name, app, built.sha256, built.size, live, previous, routes_text, route, keep)
    gate = gate_plan(box, plan, health, routes_text)
    summary = {"host": box.name, "app": app, "sha256": built.sha256, "url": box.url(plan.path), "dry": dry}
    box.show_plan(plan.text(), dry)
    if not plan.changed:
        summary.update(changed=False, release=previous)
        return summary
    box.show_plan(gate.text(), dry)
    if dry:
        summary.update(changed=True, release=plan.release, plan=plan.as_dict(), gate=gate.as_dict())
        return summary
    return apply_deploy(box, plan, built, aot, summary, started, gate)


def gate_plan(box, plan, health=None, routes_text=None):
    """The :class:`healthgate.GatePlan` of a deploy plan: flags beat the box's health_* settings."""
    health = health or {}

    def pick(key):
        value = health.get(key)
        return value if value not in (None, "") else box.settings.get(f"health_{key}")

    check = hg.make_check(plan.path, pick("path"), pick("status"), pick("body"), pick("timeout"))
    rollback = health.get("rollback")
    return hg.plan_gate(
        plan.app,
        plan.release,
        check,
        plan.previous,
        True if rollback is None else rollback,
        routes_text if plan.routes is not None else None,
    )


def apply_deploy(box, plan, built, aot, summary, started, gate=None):
    """Upload, check, preview + health check, switch, wait, route, check through nginx (see :func:`deploy`)."""
    layout, app, rid = box.layout, plan.app, plan.release
    gate = gate or gate_plan(box, plan)
    uploads = [Upload.of(built.wasm_path, layout.release(app, rid), "600")]
    routes_tmp = None
    if plan.routes is not None:  # the preview routes as the live server will once the deploy writes them
        routes_tmp = _text_file(plan.routes)
        uploads.append(Upload.of(routes_tmp, cmd.preview_routes_upload(layout, app, rid), "600"))
    check = cmd.check_module(layout)
    if aot:
        shipment = _aot_shipment(box, built)
        if shipment is not None:
            from . import aot as aotmod

            uploads.append(Upload.of(shipment.local, shipment.remote, "600"))
            check = aotmod.check_command(layout.server_bin, layout.server_conf)
    try:
        box.upload(uploads, check=check)
    except DiskFullError as exc:
        raise DiskFullError(f"{exc.message}; {_serving(plan.live_sha256)}") from None
    except RemoteError as exc:
        raise RemoteError(
            f"{app} was not deployed (the box's server cannot load it): "
            f"{exc.message.split(': ', 1)[-1]}; {_serving(plan.live_sha256)}"
        ) from None
    finally:
        if routes_tmp:
            os.unlink(routes_tmp)
    t_gate = time.monotonic()
    offsets, preview = preview_check(box, plan, gate, built.sha256)
    gate_s = time.monotonic() - t_gate
    t_switch = time.monotonic()
    box.run(cmd.activate_previewed(layout, app, rid, plan.keep))
    try:
        record = wait_for_app(box, app, built.sha256, wait_timeout(box))
    except RemoteError as exc:
        box.run(cmd.restore_release(layout, app, plan.previous), warn=True)
        raise RemoteError(f"{exc.message}; {_serving(plan.live_sha256)}") from None
    swap_ms = (time.monotonic() - t_switch) * 1000
    if plan.routes is not None:
        write_routes(box, plan.routes)
    live = run_check(box, box.settings["http_port"], gate.live, gate.check)
    summary.update(
        changed=True,
        release=rid,
        previous=plan.previous,
        status=live.status,
        latency_ms=round(live.seconds * 1000, 1),
        swap_ms=round(swap_ms, 1),
        gate_ms=round(gate_s * 1000, 1),
        health={"preview": preview.as_dict(), "live": live.as_dict(), "check": gate.check.as_dict()},
        seconds=round(time.monotonic() - started, 2),
        state=record.get("state"),
        code=record.get("code"),
        kind=record.get("kind", "module"),
    )
    if not live.ok:
        live_check_failed(box, plan, gate, live, offsets)
    return summary


def _text_file(text):
    fd, path = tempfile.mkstemp(prefix="tiramisu-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path


def run_check(box, port, path, check):
    """One GET of ``path`` on the box's loopback ``port``, judged by ``check`` (:class:`healthgate.Verdict`)."""
    t0 = time.monotonic()
    try:
        resp = box.http(port, path, timeout=check.timeout)
    except TiramisuError as exc:
        return hg.evaluate(check, None, None, time.monotonic() - t0, error=exc.message)
    return hg.evaluate(check, resp.status, resp.text, resp.seconds or (time.monotonic() - t0))


def server_previews(box, app=None):
    """{name: preview record} from /_tiramisu/apps (with ``app``: see :func:`admin_apps`);
    None when the server has no preview slot (older server)."""
    data = admin_apps(box, app)
    if not isinstance(data, dict) or "previews" not in data:
        return None
    return {p["name"]: p for p in data["previews"]}


def wait_for_preview(box, app, sha256, timeout):
    """Until the server's preview slot of ``app`` holds sha256 compiled (its record).

    RemoteError when the server rejects it (the record's error), has no preview
    slot (a server older than the health gate), or within ``timeout`` seconds
    does not report it.
    """
    seen = {"last": None}

    def ready():
        try:
            previews = server_previews(box, app)
        except TiramisuError:
            return None
        if previews is None:
            raise RemoteError(
                f"the server on {box.name} has no preview slot (older than the health gate): "
                f"run setup --host {box.name} to update it"
            )
        last = seen["last"] = previews.get(app)
        if last and last.get("file_sha256") == sha256:
            if last.get("state") == "active" and last.get("sha256") == sha256:
                return last
            if last.get("state") == "failed":
                raise RemoteError(f"the server rejected the new {app} module: {last.get('error')}")
        return None

    def too_late():
        last = seen["last"]
        state = f"{last.get('state')} {str(last.get('file_sha256'))[:12]}" if last else "not listed"
        return RemoteError(
            f"the server did not compile the {app} preview {sha256[:12]} within {timeout:.0f}s ({state})"
        )

    return poll_until(ready, timeout, interval=0.02, on_timeout=too_late)


def preview_check(box, plan, gate, sha256):
    """Place the release in the preview slot, wait for the server, run the check over loopback.

    Returns ((app log offset, server log offset), verdict) when it passes; on
    failure marks the release failed, empties the slot and raises RemoteError
    with the answer, the guest's stderr and the server's lines about the app.
    """
    layout, app, rid = box.layout, plan.app, plan.release
    out = box.run(cmd.place_preview(layout, app, rid, plan.routes is not None)).stdout
    offsets = cmd.parse_log_offsets(out)
    try:
        wait_for_preview(box, app, sha256, wait_timeout(box))
    except RemoteError as exc:
        box.run(cmd.mark_failed(layout, app, rid, exc.message), warn=True)
        raise RemoteError(f"{exc.message}; {_serving(plan.live_sha256)}") from None
    verdict = run_check(box, box.settings["server_port"], gate.preview, gate.check)
    if verdict.ok:
        return offsets, verdict
    show_evidence(box, app, verdict, offsets)
    message = hg.preview_failure_message(app, rid, gate.check, verdict, plan.live_sha256)
    box.run(cmd.mark_failed(layout, app, rid, message), warn=True)
    raise RemoteError(message)


def show_evidence(box, app, verdict, offsets):
    """Print (as notes, on stderr) the failing answer's first body lines, the guest's stderr and the
    server's lines about the app since ``offsets``; returns those lines."""
    text = box.run(cmd.gate_evidence(box.layout, app, *offsets), warn=True).stdout
    guest, server = cmd.parse_gate_evidence(text)
    lines = hg.evidence_lines(verdict, guest, server)
    for line in lines:
        box.note(line)
    return lines


def live_check_failed(box, plan, gate, verdict, offsets):
    """After the switch the check through nginx failed: restore the previous release (unless
    --no-rollback), mark the release failed and raise RemoteError saying which."""
    layout, app, rid = box.layout, plan.app, plan.release
    show_evidence(box, app, verdict, offsets)
    restored = False
    if gate.rollback:
        box.run(cmd.restore_release(layout, app, plan.previous), warn=True)
        if gate.routes_before is not None:
            write_routes(box, gate.routes_before)
        if plan.live_sha256:
            wait_for_app(box, app, plan.live_sha256, wait_timeout(box))
        restored = True
    message = hg.live_failure_message(app, rid, gate.check, verdict, restored, plan.previous)
    box.run(cmd.mark_failed(layout, app, rid, message), warn=True)
    raise RemoteError(message)


def _aot_shipment(box, built):
    """A precompiled module for this box, or None (with the reason) to let the box compile."""
    from . import aot as aotmod

    facts = box.run(aotmod.box_facts_command(box.layout.server_bin, box.layout.server_conf), warn=True)
    shipment = aotmod.prepare_shipment(
        facts.stdout, box.target, built.wasm_path, built.sha256, fallback_cache_dir=box.layout.cache
    )
    box.note(f"aot: {shipment.reason}")
    return shipment if shipment.ok else None


# ----------------------------------------------------- apps / rollback ---


def apps(box):
    """{host, apps: [{name, routes, sha256, release, loaded_at, state, error, requests, kind}]}.

    kind: "module" (WASI preview 1) or "component" (WASI 0.2), None while nothing is loaded."""
    require_served(box)
    served = server_apps(box)
    routes_text = read_text(box, box.layout.routes_file)
    releases = current_releases(box)
    maps = {}
    if any("." in name for name in served):  # modules of manifest / module-map apps: their maps name the routes
        from .appdeploy import parse_maps_dump

        maps = parse_maps_dump(box.run(cmd.dump_app_maps(box.layout)).stdout)
    return {"host": box.name, "apps": app_rows(served, routes_text, releases, maps)}


def app_rows(served, routes_text, releases, maps):
    """The ``apps`` listing (pure): one row per app. A plain app's row is its
    module's; an app with a map (its modules are ``APP.KEY`` on the server)
    gets one row with ``kind`` "map", its map's routes, the sum of its
    modules' requests, the worst state, and ``modules`` (each module's row)."""
    out, grouped = [], {}
    for name in sorted(served):
        a = served[name]
        row = {
            "name": name,
            "routes": [f"/{name}"] + routes_for(routes_text, name),
            "sha256": a.get("sha256"),
            "release": releases.get(name),
            "loaded_at": a.get("loaded_at"),
            "state": a.get("state"),
            "error": a.get("error"),
            "requests": a.get("requests"),
            "kind": a.get("kind"),
        }
        app, dot, key = name.partition(".")
        if not dot:
            out.append(row)
            continue
        grouped.setdefault(app, []).append({**row, "name": key, "routes": []})
    for app, modules in grouped.items():
        routes = [f[1] for f in (line.split("\t") for line in maps.get(app, "").splitlines()) if f[0] == "route"]
        states = [m["state"] for m in modules]
        out.append(
            {
                "name": app,
                "routes": list(dict.fromkeys(routes)),
                "sha256": None,
                "release": releases.get(app),
                "loaded_at": max((m["loaded_at"] for m in modules if m["loaded_at"]), default=None),  # ISO text
                "state": next((s for s in states if s != "active"), "active"),
                "error": next((m["error"] for m in modules if m["error"]), None),
                "requests": sum(m["requests"] or 0 for m in modules),
                "kind": "map",
                "modules": modules,
            }
        )
    return sorted(out, key=lambda r: r["name"])


def rollback(box, app, to=None, dry=False):
    """Switch ``app`` back to ``to`` or the release before the live one; returns {host, app, from, to, sha256}.

    UsageError when there is no such release; RemoteError when the server does not activate it.
    """
    require_served(box)
    ids, failed, _ = release_listing(box, app)
    if not ids:  # an app deployed from tiramisu.toml / modules.toml keeps bundles (appdeploy.py)
        from .appdeploy import bundle_listing, rollback_app

        bundles, bad, _ = bundle_listing(box, app)
        if bundles:
            return rollback_app(box, app, list(bundles), to, dry, bad)
    plan = plan_rollback(box.name, app, list(ids), current_release(box, app), to, failed)
    box.show_plan(plan.text(), dry)
    if dry:
        return {
            "host": box.name,
            "app": app,
            "from": plan.current,
            "to": plan.target,
            "dry": True,
            "plan": plan.as_dict(),
        }
    sha = box.run(cmd.release_sha256(box.layout.release(app, plan.target))).stdout.strip()
    box.run(cmd.rollback_to(box.layout, app, plan.target))
    wait_for_app(box, app, sha, wait_timeout(box))
    return {"host": box.name, "app": app, "from": plan.current, "to": plan.target, "sha256": sha}


def remove(box, app, dry=False, timeout=30, purge_data=False):
    """Stop serving ``app`` (routes, module) and delete its releases; its log stays.
    ``purge_data`` only shapes the plan shown (the caller deletes the data).

    RemoteError when the server still lists the app after ``timeout`` seconds.
    """
    require_served(box)
    if app not in server_apps(box, app) and not box.run(cmd.dir_exists(box.layout.app_releases(app)), warn=True).ok:
        raise UsageError(f"no app {app!r} on {box.name} (apps --host {box.name} lists them)")
    purge = cmd.app_data_paths(box.layout, app) if purge_data else ()
    plan = plan_remove(box.name, app, read_text(box, box.layout.routes_file), box.layout.app_releases(app), purge)
    box.show_plan(plan.text(), dry)
    if dry:
        return {"host": box.name, "app": app, "dry": True, "plan": plan.as_dict()}
    if plan.routes is not None:
        write_routes(box, plan.routes)
    box.run(cmd.unpublish_app(box.layout, app))
    poll_until(
        lambda: None if app in server_apps(box, app) else True,
        timeout,
        interval=0.05,
        on_timeout=lambda: RemoteError(f"the server still lists {app} after {timeout}s"),
    )
    box.run(cmd.remove_tree(plan.releases_dir))
    return {"host": box.name, "app": app, "removed": True}


# ------------------------------------------- under the box's lock (issue 13) ---
#
# The task layer calls these: each takes the box's lock (boxlock), runs the
# procedure above, and appends one history record whatever the outcome. A
# deploy attempt that fails marks the release it uploaded ``<id>.failed``
# (rollback skips it, pruning deletes it first); a deploy that succeeds
# prunes by :func:`plans.plan_prune` and pins with ``pin`` (``--keep-release``).


def _history_record(lock, action, app, result, started, **fields):
    from . import history
    from .boxlock import local_identity

    user, host, _ = local_identity()
    return history.make_record(action, app, result, time.monotonic() - started, f"{user}@{host}", lock.client, **fields)


def _record(box, lock, action, app, result, started, **fields):
    from . import history

    history.append(box, _history_record(lock, action, app, result, started, **fields))


def _record_failure(box, lock, action, app, started, exc, **fields):
    """History for a failed change; never hides the change's own error."""
    try:
        _record(box, lock, action, app, "failed", started, error=getattr(exc, "message", None) or exc, **fields)
    except Exception as again:  # noqa: BLE001 - the box may be gone (the error being reported)
        box.note(f"{box.name}: could not record the failure in the box's history: {again}")


def attempted_releases(ids, sha256, since):
    """The release ids this attempt may have uploaded (pure): ``deploy`` names a
    release ``<UTC time>-<sha256[:10]>`` (:func:`plans.release_id`) by this
    machine's clock, so: that suffix, stamped at or after ``since`` (epoch seconds)."""
    from .plans import release_id

    floor = release_id(sha256, since)
    return [r for r in ids if r.endswith("-" + sha256[:10]) and r >= floor]


def deploy_held(box, lock, built, app, route, keep=None, aot=False, pin=False, **kw):
    """:func:`deploy` while ``lock`` (boxlock.Held) is held; records history, marks, prunes, pins.

    Same return value and errors as :func:`deploy` (the summary gains
    ``pruned`` and ``pinned``). Round trips beyond the deploy's own: one
    listing, then marks, pruning, the history record and the lock's release
    in one command (after a success; a failure releases it separately).
    """
    from . import history

    started, since = time.monotonic(), time.time() - 1
    try:
        summary = deploy(box, built, app, route, keep=keep, aot=aot, **kw)
    except Exception as exc:
        try:
            new = attempted_releases(release_listing(box, app)[0], built.sha256, since)
            for rid in new:
                box.run(cmd.mark_release(box.layout, app, rid, "failed"), warn=True)
        except Exception:  # noqa: BLE001 - reported below with the original error
            new = []
        _record_failure(box, lock, "deploy", app, started, exc, release=new[-1] if new else None, sha256=built.sha256)
        raise
    ids, failed, pinned = release_listing(box, app)
    rid = summary.get("release")
    steps = []
    if pin and rid:
        steps.append(cmd.mark_release(box.layout, app, rid, "keep"))
        pinned = tuple(sorted(set(pinned) | {rid}))
    summary["pinned"] = bool(pin and rid)
    summary["pruned"] = []
    if summary["changed"]:
        plan = plan_prune(
            app,
            ids,
            rid,
            int(keep or box.settings.get("keep_releases") or 5),
            previous=summary.get("previous"),
            pinned=pinned,
            failed=failed,
        )
        if plan.delete:
            box.note(plan.text())
            steps.append(cmd.delete_releases(box.layout, app, plan.delete))
            summary["pruned"] = list(plan.delete)
    result = "ok" if summary["changed"] else "unchanged"
    record = _history_record(
        lock, "deploy", app, result, started, release=rid, sha256=built.sha256, previous=summary.get("previous")
    )
    lock.run_and_release(cmd.chain(*steps, history.append_command(box.layout, record)))
    return summary


def locked_deploy(box, built, app, route, dry=False, keep=None, aot=False, pin=False, wait=None, **kw):
    """:func:`deploy_held` under the box's lock (``wait``: seconds, default the lock_wait setting).

    ``dry`` only observes: no lock, no history. Raises boxlock.LockBusy when
    another change holds the lock longer than ``wait``.
    """
    from . import boxlock

    if dry:
        return deploy(box, built, app, route, dry=True, keep=keep, aot=aot, **kw)
    with boxlock.held(box, "deploy", app, built.sha256, wait) as lock:
        return deploy_held(box, lock, built, app, route, keep=keep, aot=aot, pin=pin, **kw)


def rollback_held(box, lock, app, to=None, action="rollback"):
    """:func:`rollback` while ``lock`` is held, with its history record."""
    started = time.monotonic()
    try:
        result = rollback(box, app, to)
    except Exception as exc:
        _record_failure(box, lock, action, app, started, exc, release=to)
        raise
    _record(
        box,
        lock,
        action,
        app,
        "ok",
        started,
        release=result["to"],
        sha256=result.get("sha256"),
        previous=result["from"],
    )
    return result


def locked_rollback(box, app, to=None, dry=False, wait=None):
    """:func:`rollback` under the box's lock, recorded in its history (``dry``: no lock)."""
    from . import boxlock

    if dry:
        return rollback(box, app, to, dry=True)
    with boxlock.held(box, "rollback", app, to, wait) as lock:
        return rollback_held(box, lock, app, to)


def locked_remove(box, app, dry=False, wait=None, purge_data=False):
    """:func:`remove` under the box's lock, recorded in its history (``dry``: no lock);
    ``purge_data`` also deletes the app's data folders and secrets (appdeploy)."""
    from . import boxlock

    if dry:
        return remove(box, app, dry=True, purge_data=purge_data)
    with boxlock.held(box, "remove", app, None, wait) as lock:
        started = time.monotonic()
        previous = current_release(box, app)
        try:
            result = remove(box, app, purge_data=purge_data)
            if purge_data:
                box.run(cmd.purge_app_data(box.layout, app))
        except Exception as exc:
            _record_failure(box, lock, "remove", app, started, exc, previous=previous)
            raise
        _record(box, lock, "remove", app, "ok", started, previous=previous)
        return result


def restore_held(box, lock, app, previous):
    """Undo this rollout's deploy of ``app``: back to ``previous``, or no module at all
    when there was none (the app was new here); recorded as ``restore``."""
    if previous:
        return rollback_held(box, lock, app, previous, action="restore")
    started = time.monotonic()
    try:
        box.run(cmd.unpublish_app(box.layout, app))
        poll_until(
            lambda: None if app in server_apps(box, app) else True,
            30,
            interval=0.05,
            on_timeout=lambda: RemoteError(f"the server still lists {app} after 30s"),
        )
    except Exception as exc:
        _record_failure(box, lock, "restore", app, started, exc)
        raise
    _record(box, lock, "restore", app, "ok", started)
    return {"host": box.name, "app": app, "from": None, "to": None, "sha256": None}
