"""HTTPS on the real x86_64 test host: self-signed, files and ACME against a real
Pebble (Let's Encrypt's test CA, Debian package) whose mock DNS
(pebble-challtestsrv) resolves the test domains to the host's address.

Every certificate is checked by a real TLS client (Python's ssl, curl) trusting
only what it should: the kept self-signed certificate, or Pebble's root.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request

import pytest

from tests.helpers import cli, free_port, host_result, one_line_error
from tiramisu_tasks import tlsfiles as tf

pytestmark = pytest.mark.slow

PORTS = {"http_port": 8180, "server_port": 9180, "https_port": 8543}
SETTINGS = dict(PORTS, env_dir="tls-env")


@pytest.fixture(scope="module")
def box(x86_host, tmp_path_factory):
    home = tmp_path_factory.mktemp("tls-home")
    inventory = home / "tiramisu.yaml"
    env = {"TIRAMISU_HOME": str(home), "TIRAMISU_INVENTORY": str(inventory)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    x86_host.register(inventory, "box", settings=dict(SETTINGS))
    yield Box(x86_host, home, inventory)
    cli("tiramisu", "teardown", "--host", "box", "--yes")
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


class Box:
    """The test host plus this module's local user dir and inventory."""

    def __init__(self, host, home, inventory):
        self.host, self.local, self.inventory = host, home, inventory
        self.hostname = host.hostname

    def ssh(self, *a, **kw):
        return self.host.ssh(*a, **kw)

    def register(self, *a, **kw):
        return self.host.register(*a, **kw)


def settings(box, **over):
    box.register(box.inventory, "box", settings=dict(SETTINGS, **over))


def handshake(host, port, server_hostname, cafile, alpn=("h2", "http/1.1")):
    """(leaf certificate DER, negotiated ALPN) of a verified TLS handshake."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.set_alpn_protocols(list(alpn))
    with socket.create_connection((host, port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()


def fingerprint_of(der):
    from cryptography import x509

    return tf.fingerprint(x509.load_der_x509_certificate(der))


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "15", *args], capture_output=True, text=True, timeout=30)


# ------------------------------------------------------------- refusals ---


def test_source_nginx_refuses_tls_before_anything(box):
    proc = cli("tiramisu", "setup", "--host", "box", "--tls", "self-signed", "--nginx-provider", "source")
    line = one_line_error(proc)
    assert proc.returncode == 2 and "ssl and http_v2" in line and "nginx_provider=wheel" in line


def test_acme_without_domains_is_a_usage_error(box):
    proc = cli("tiramisu", "setup", "--host", "box", "--tls", "acme", "--dry")
    assert proc.returncode == 2 and "needs the box's DNS names" in one_line_error(proc)


# ---------------------------------------------------------- self-signed ---


def test_self_signed_served_with_h2_and_kept(box):
    proc = cli("tiramisu", "setup", "--host", "box", "--tls", "self-signed", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = host_result(proc)
    fp = summary["tls"]["certificate"]["fingerprint_sha256"]
    assert fp in proc.stderr  # printed
    kept = box.local / "tls" / "box" / "self-signed"
    assert (kept / "fingerprint").read_text().strip() == fp
    assert oct((kept / "key.pem").stat().st_mode & 0o777) == "0o600"
    der, alpn = handshake(box.hostname, 8543, box.hostname, kept / "cert.pem")
    assert fingerprint_of(der) == fp and alpn == "h2"
    # the key on the box is 0600, in tls/, named by content
    modes = box.ssh("stat -c '%a %n' tls-env/tls/*", check=True).stdout.split()
    assert modes[0::2] == ["600", "600"]
    assert "BEGIN" not in proc.stdout + proc.stderr.replace("BEGIN CERTIFICATE", "")
    # a second setup keeps the certificate (not made again) and uploads nothing
    again = cli("tiramisu", "setup", "--host", "box", "--tls", "self-signed", "--json")
    assert again.returncode == 0, again.stderr
    assert host_result(again)["tls"]["certificate"]["fingerprint_sha256"] == fp
    assert host_result(again)["uploaded"] == []
    # HTTP/2 through curl too, and the public face
    out = curl(
        "--cacert",
        str(kept / "cert.pem"),
        "--http2",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-w",
        "%{http_version}",
        f"https://{box.hostname}:8543/no-such-app/",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("2")
    head = out.stdout.lower()
    assert "x-content-type-options: nosniff" in head and "x-frame-options: sameorigin" in head
    assert "referrer-policy: strict-origin-when-cross-origin" in head
    assert "strict-transport-security" not in head  # hsts off by default


def test_redirect_and_hsts(box):
    settings(box, tls="self-signed", tls_redirect=True, hsts=True)
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    plain = curl("-o", "/dev/null", "-D", "-", f"http://{box.hostname}:8180/some/path?q=1")
    assert " 301" in plain.stdout.splitlines()[0]
    assert f"location: https://{box.hostname}:8543/some/path?q=1" in plain.stdout.lower()
    # the health check stays on plain HTTP (setup's own check, load balancers)
    health = curl("-o", "/dev/null", "-w", "%{http_code}", f"http://{box.hostname}:8180/.well-known/tiramisu/health")
    assert health.stdout == "200"
    kept = box.local / "tls" / "box" / "self-signed" / "cert.pem"
    secure = curl("--cacert", str(kept), "-o", "/dev/null", "-D", "-", f"https://{box.hostname}:8543/")
    assert "strict-transport-security: max-age=31536000" in secure.stdout.lower()
    settings(box)


def test_plain_502_names_no_internals(box):
    assert cli("tiramisu", "setup", "--host", "box").returncode == 0  # tls off again
    box.ssh("kill $(cat tls-env/run/server.pid)", check=True)
    try:
        out = curl("-w", "%{http_code}", f"http://{box.hostname}:8180/anything")
        # the body names neither nginx nor the server's address (the Server header
        # still says nginx, without a version: stock nginx cannot drop it)
        assert out.stdout.endswith("502") and "not available" in out.stdout
        assert "nginx" not in out.stdout.lower() and "127.0.0.1" not in out.stdout
    finally:
        assert cli("tiramisu", "webserv.start", "--host", "box").returncode == 0


# ---------------------------------------------------------------- files ---


def test_files_mode_checked_before_upload(box, tmp_path):
    cert, key = tf.self_signed(["files.test"])
    _, other = tf.self_signed(["files.test"])
    (tmp_path / "cert.pem").write_bytes(tf.cert_pem(cert))
    (tmp_path / "key.pem").write_bytes(tf.key_pem(key))
    (tmp_path / "other.pem").write_bytes(tf.key_pem(other))
    served_before = box.ssh("ls tls-env/tls 2>/dev/null || true", check=True).stdout
    settings(box, tls="files", tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "other.pem"))
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 2 and "does not match the certificate" in one_line_error(proc)
    assert box.ssh("ls tls-env/tls 2>/dev/null || true", check=True).stdout == served_before  # nothing uploaded
    settings(
        box,
        tls="files",
        tls_cert=str(tmp_path / "cert.pem"),
        tls_key=str(tmp_path / "key.pem"),
        domains="files.test,other.test",
    )
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 2 and "does not cover other.test" in one_line_error(proc)
    settings(
        box, tls="files", tls_cert=str(tmp_path / "cert.pem"), tls_key=str(tmp_path / "key.pem"), domains="files.test"
    )
    proc = cli("tiramisu", "setup", "--host", "box")
    assert proc.returncode == 0, proc.stderr
    der, alpn = handshake(box.hostname, 8543, "files.test", tmp_path / "cert.pem")
    assert fingerprint_of(der) == tf.fingerprint(cert) and alpn == "h2"
    # the old pair was pruned once the new one served
    assert len(box.ssh("ls tls-env/tls 2>/dev/null || true", check=True).stdout.split()) == 2
    settings(box)


# ----------------------------------------------------------------- ACME ---


def _wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def pebble(box, tmp_path_factory):
    if not shutil.which("pebble") or not shutil.which("pebble-challtestsrv"):
        pytest.fail("Debian's pebble package is missing (scripts/bootstrap test installs it)")
    work = tmp_path_factory.mktemp("pebble")
    cert, key = tf.self_signed(["localhost", "127.0.0.1"])
    (work / "api.pem").write_bytes(tf.cert_pem(cert))
    (work / "api.key").write_bytes(tf.key_pem(key))
    api, mgmt, dns, dns_mgmt = free_port(), free_port(), free_port(), free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{api}",
            "managementListenAddress": f"127.0.0.1:{mgmt}",
            "certificate": str(work / "api.pem"),
            "privateKey": str(work / "api.key"),
            "httpPort": PORTS["http_port"],  # where it validates HTTP-01: the box's nginx
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "pebble.json").write_text(json.dumps(config))
    logs = [open(work / "challtestsrv.log", "w"), open(work / "pebble.log", "w")]
    dnssrv = subprocess.Popen(
        ["pebble-challtestsrv", "-defaultIPv4", box.hostname, "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns}",
         "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_mgmt}"],
        stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0", PEBBLE_AUTHZREUSE="0")
    server = subprocess.Popen(
        ["pebble", "-config", str(work / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
        stdout=logs[1], stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_port(api)
        _wait_port(mgmt)
        _wait_port(dns_mgmt)
        ctx = ssl.create_default_context(cafile=str(work / "api.pem"))
        with urllib.request.urlopen(f"https://127.0.0.1:{mgmt}/roots/0", context=ctx, timeout=10) as resp:
            (work / "root.pem").write_bytes(resp.read())
        yield {
            "directory": f"https://127.0.0.1:{api}/dir",
            "bundle": str(work / "api.pem"),
            "root": work / "root.pem",
            "dns_mgmt": dns_mgmt,
            "work": work,
        }
    finally:
        for proc in (server, dnssrv):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        for fh in logs:
            fh.close()


def test_issue_on_a_box_not_set_up_for_acme_says_so_before_asking_a_ca(box):
    settings(box, domains="good.test")
    proc = cli("tiramisu", "tls.issue", "--host", "box")
    line = one_line_error(proc)
    assert proc.returncode == 1 and "does not serve /.well-known/acme-challenge/" in line
    assert "run setup with tls=acme first" in line
    assert box.ssh("ls -A tls-env/acme-challenge 2>/dev/null || true", check=True).stdout.strip() == ""
    settings(box)


def acme_settings(pebble, domains="good.test"):
    return dict(tls="acme", domains=domains, acme_directory=pebble["directory"], acme_ca_bundle=pebble["bundle"])


def test_acme_issue_serve_renew_and_failed_validation(box, pebble):
    # without the private CA's root this machine cannot trust Pebble: one line naming the setting
    untrusted = dict(acme_settings(pebble), acme_ca_bundle=None)
    settings(box, **{k: v for k, v in untrusted.items() if v is not None})
    proc = cli("tiramisu", "setup", "--host", "box")
    line = one_line_error(proc)
    assert proc.returncode == 1 and "cannot verify" in line and "acme_ca_bundle" in line, proc.stderr

    settings(box, **acme_settings(pebble))
    proc = cli("tiramisu", "setup", "--host", "box", "--json")
    assert proc.returncode == 0, proc.stderr + (pebble["work"] / "pebble.log").read_text()[-2000:]
    summary = host_result(proc)
    obtained = summary["tls"]["obtained"]["certificate"]
    assert obtained["names"] == ["good.test"] and "Pebble" in obtained["issuer"]
    # a real TLS client trusting only Pebble's root, through the box's nginx, with h2
    der, alpn = handshake(box.hostname, 8543, "good.test", pebble["root"])
    first = fingerprint_of(der)
    assert first == obtained["fingerprint_sha256"] and alpn == "h2"
    out = curl("--cacert", str(pebble["root"]), "--resolve", f"good.test:8543:{box.hostname}", "--http2",
               "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
               "https://good.test:8543/.well-known/tiramisu/health")  # fmt: skip
    assert out.stdout == "200 2", out.stderr
    # the account key is kept here, 0600
    keys = list((box.local / "acme").glob("*/account-key.pem"))
    assert len(keys) == 1 and oct(keys[0].stat().st_mode & 0o777) == "0o600"

    # setup again: the certificate is kept, nothing obtained
    again = cli("tiramisu", "setup", "--host", "box", "--json")
    assert again.returncode == 0 and "obtained" not in host_result(again)["tls"], again.stderr

    # tls.renew: far from expiry, a no-op; --force renews and the new one serves
    noop = cli("tiramisu", "tls.renew", "--host", "box", "--json")
    assert noop.returncode == 0, noop.stderr
    assert host_result(noop)["renewed"] is False
    assert fingerprint_of(handshake(box.hostname, 8543, "good.test", pebble["root"])[0]) == first
    forced = cli("tiramisu", "tls.renew", "--host", "box", "--force")
    assert forced.returncode == 0 and "now served" in forced.stdout, forced.stderr
    second = fingerprint_of(handshake(box.hostname, 8543, "good.test", pebble["root"])[0])
    assert second != first

    # a certificate change is a change: it waits for another change's lock, then refuses
    held = box.ssh(
        "mkdir -p tls-env/state/lock && printf 'who=bob@elsewhere\\nhost=elsewhere\\npid=1\\ntask=deploy\\n"
        "token=tb\\n' > tls-env/state/lock/info",
        check=True,
    )
    assert held.returncode == 0
    busy = cli("tiramisu", "tls.renew", "--host", "box", "--force", "--lock-wait", "1")
    assert busy.returncode == 1 and "is locked by bob@elsewhere" in one_line_error(busy), busy.stderr
    assert fingerprint_of(handshake(box.hostname, 8543, "good.test", pebble["root"])[0]) == second
    box.ssh("rm -rf tls-env/state/lock", check=True)

    # tls.status names what is served
    status = cli("tiramisu", "tls.status", "--host", "box")
    assert status.returncode == 0 and "good.test" in status.stdout and "Pebble" in status.stdout, status.stderr
    report = host_result(cli("tiramisu", "tls.status", "--host", "box", "--json"))
    assert report["served"]["fingerprint_sha256"] == second and report["served"]["days_left"] > 30
    assert report["local"]["fingerprint_sha256"] == second

    # a failing validation: bad.test resolves where nothing answers; one line with the
    # CA's problem detail, exit 1, and the old certificate keeps serving
    req = urllib.request.Request(
        f"http://127.0.0.1:{pebble['dns_mgmt']}/add-a",
        data=json.dumps({"host": "bad.test.", "addresses": ["127.0.0.1"]}).encode(),
        method="POST",
    )
    urllib.request.urlopen(req, timeout=10).read()
    failed = cli("tiramisu", "tls.issue", "--host", "box", "--domains", "good.test,bad.test")
    line = one_line_error(failed)
    assert failed.returncode == 1 and "validation failed" in line and "bad.test" in line, failed.stderr
    assert fingerprint_of(handshake(box.hostname, 8543, "good.test", pebble["root"])[0]) == second
    # the challenge folder is empty again
    assert box.ssh("ls -A tls-env/acme-challenge", check=True).stdout.strip() == ""
    settings(box)


# -------------------------------------------------------------- aarch64 ---


@pytest.mark.aarch64
def test_self_signed_and_files_on_aarch64(aarch64_host, tmp_path, monkeypatch):
    """The same HTTPS through the arm64 static nginx under qemu: self-signed, then files."""
    inventory = tmp_path / "tiramisu.yaml"
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path))
    monkeypatch.setenv("TIRAMISU_INVENTORY", str(inventory))
    arm = Box(aarch64_host, tmp_path, inventory)
    settings(arm, tls="self-signed")
    try:
        proc = cli("tiramisu", "setup", "--host", "box", "--json")
        assert proc.returncode == 0, proc.stderr
        kept = tmp_path / "tls" / "box" / "self-signed" / "cert.pem"
        der, alpn = handshake(arm.hostname, 8543, arm.hostname, kept)
        assert alpn == "h2" and fingerprint_of(der) == host_result(proc)["tls"]["certificate"]["fingerprint_sha256"]
        cert, key = tf.self_signed(["arm.test"])
        (tmp_path / "c.pem").write_bytes(tf.cert_pem(cert))
        (tmp_path / "k.pem").write_bytes(tf.key_pem(key))
        settings(
            arm, tls="files", tls_cert=str(tmp_path / "c.pem"), tls_key=str(tmp_path / "k.pem"), domains="arm.test"
        )
        proc = cli("tiramisu", "setup", "--host", "box")
        assert proc.returncode == 0, proc.stderr
        der, alpn = handshake(arm.hostname, 8543, "arm.test", tmp_path / "c.pem")
        assert alpn == "h2" and fingerprint_of(der) == tf.fingerprint(cert)
    finally:
        cli("tiramisu", "teardown", "--host", "box", "--yes")
