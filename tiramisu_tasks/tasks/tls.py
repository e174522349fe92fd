"""tls.*: obtain, renew and inspect a box's HTTPS certificate (ACME from this machine).

Tasks only parse flags, call a procedure of :mod:`tiramisu_tasks.tls` per
host and print; the procedures do the work.
"""

from invoke import Collection

from .. import boxlock
from .. import tls as tlsmod
from ..box import connect_box
from ..hostrun import emit_results as _emit
from ..hostrun import run_on_hosts
from ..taskkit import HOST_HELP, table, task
from .lifecycle import tls_flags

_HELP = {
    "host": HOST_HELP,
    "domains": "the box's DNS names, comma list (default: the domains setting)",
    "staging": "use Let's Encrypt's staging CA instead of acme_directory",
    "json": "print JSON",
    "lock_wait": "seconds to wait for another change's lock on the box (default: lock_wait setting, 10)",
}


def _describe(result):
    cert = result["certificate"] or {}
    if not result["renewed"]:
        return f"{result['host']}: not renewed ({result['reason']}); expires {cert.get('not_after')}"
    served = "now served" if result["reloaded"] else "installed (nginx not running: served at its next start)"
    return (
        f"{result['host']}: certificate for {', '.join(cert.get('names', []))} from {cert.get('issuer')} "
        f"({result['reason']}), expires {cert.get('not_after')}; {served}"
    )


def _run(c, host, domains, staging, json, force, task_name, lock_wait):
    flags = tls_flags("acme", domains, staging)
    if lock_wait is not None:
        flags = {**flags, "lock_wait": lock_wait}

    def one(conn, spec, rep):
        # A certificate change reloads nginx and rewrites tls/: one change at a
        # time on the box, like deploy and setup (LockBusy names the holder).
        with boxlock.locked(lambda: connect_box(c, conn, spec, rep, flags), task_name) as box:
            result = tlsmod.issue(box, force=force)
        if not json:
            rep.out(_describe(result))
        return result

    _emit(run_on_hosts(c, host, one, quiet=json), json)


@task(help=_HELP)
def issue(c, host=None, domains=None, staging=False, json=False, lock_wait=None):
    """Obtain a certificate now (ACME HTTP-01 answered by the box's nginx) and serve it."""
    _run(c, host, domains, staging, json, True, "tls.issue", lock_wait)


@task(help={**_HELP, "force": "renew even when more than 30 days remain"})
def renew(c, host=None, domains=None, staging=False, json=False, force=False, lock_wait=None):
    """Renew the ACME certificate when fewer than 30 days remain (else nothing happens)."""
    _run(c, host, domains, staging, json, force, "tls.renew", lock_wait)


@task(help={"host": HOST_HELP, "json": "print JSON"})
def status(c, host=None, json=False):
    """The certificate the box serves: names, issuer, expiry, days left."""

    def one(conn, spec, rep):
        report = tlsmod.status(connect_box(c, conn, spec, rep, need_supported=False))
        if not json:
            rows = []
            for label, cert in (("served", report["served"]), ("kept here", report["local"])):
                if cert:
                    rows.append([label, ",".join(cert["names"]), cert["issuer"], cert["not_after"], cert["days_left"]])
            rep.out(f"{spec.name}: tls={report['mode']}" + ("" if rows else "; no certificate served"))
            if rows:
                rep.out(table(rows, ["", "NAMES", "ISSUER", "EXPIRES", "DAYS LEFT"]))
        return report

    _emit(run_on_hosts(c, host, one, quiet=json), json)


ns = Collection("tls", issue, renew, status)
