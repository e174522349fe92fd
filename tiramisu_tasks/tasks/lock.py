"""lock.status, lock.release: who holds a box's lock, and breaking one whose holder is gone.

Tasks only parse flags and print; :mod:`tiramisu_tasks.boxlock` does the work.
"""

from invoke import Collection

from .. import boxlock
from ..box import connect_box
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..taskkit import HOST_HELP, confirm, task


@task(help={"host": HOST_HELP, "json": "print JSON"})
def status(c, host=None, json=False):
    """Who holds the box's lock (user@host, pid, task, app, since, heartbeat age), or free."""

    def one(conn, spec, rep):
        result = boxlock.status(connect_box(c, conn, spec, rep, need_supported=False))
        if not json:
            if result["state"] == "free":
                rep.out(f"{spec.name}: lock free")
            else:
                stale = "STALE (its holder is gone: lock.release breaks it)" if result["stale"] else "held"
                rep.out(f"{spec.name}: {stale} by {result['description']}")
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(
    help={
        "host": HOST_HELP,
        "yes": "do not ask (scripts)",
        "force": "break the lock even when its holder looks alive (fresh heartbeat)",
        "json": "print JSON",
    }
)
def release(c, host=None, yes=False, force=False, json=False):
    """Break the box's lock when its holder is gone (asks on a terminal unless --yes)."""

    def ask(question):
        if not yes:
            confirm(question, "lock.release breaks another change's lock: confirm with --yes", "lock.release cancelled")

    def one(conn, spec, rep):
        result = boxlock.break_lock(connect_box(c, conn, spec, rep, need_supported=False), force=force, confirm=ask)
        if not json:
            if result["broken"]:
                rep.out(f"{spec.name}: lock of {result['holder']['who']} ({result['holder']['task']}) broken")
            else:
                rep.out(f"{spec.name}: lock free, nothing to do")
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


ns = Collection("lock", status, release)
