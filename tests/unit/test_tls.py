"""TLS without a box: certificate checks (tlsfiles), the rendered nginx config for
every mode (crossplane here; the real nginx -t in tests/artifacts/test_nginx_tls.py),
the provider table and the settings."""

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from tiramisu_tasks import commands as cmd
from tiramisu_tasks import tls
from tiramisu_tasks import tlsfiles as tf
from tiramisu_tasks.config import DEFAULTS
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.options import parse_setting
from tiramisu_tasks.render import config_values, render_nginx_conf, validate_nginx_conf

LAYOUT = RemoteLayout("/home/pi/tiramisu-env")
PATHS = {"cert": "/home/pi/tiramisu-env/tls/a.crt", "key": "/home/pi/tiramisu-env/tls/a.key"}
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


def _ca(name, signer=None, days=(-10, 100)):
    key = tf.new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_name = (signer[1], signer[0].subject) if signer else (key, subject)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert, key


def _leaf(names, signer, days=(-1, 90)):
    key = tf.new_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(signer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + datetime.timedelta(days=days[0]))
        .not_valid_after(NOW + datetime.timedelta(days=days[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(signer[1], hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki():
    root = _ca("Test Root")
    inter = _ca("Test Intermediate", signer=root)
    leaf = _leaf(["a.example", "*.b.example"], inter)
    return root, inter, leaf


def test_a_good_chain_passes(pki):
    _, inter, leaf = pki
    tf.check_pair([leaf[0], inter[0]], leaf[1], ["a.example", "x.b.example"], "cert", "key", NOW)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("wrong key", "key does not match the certificate in cert"),
        ("expired", "the certificate expired on"),
        ("not yet", "is not valid before"),
        ("names", "does not cover c.example (it names a.example, *.b.example)"),
        ("deep wildcard", "does not cover x.y.b.example"),
        ("order", "chain out of order: certificate 2 (CN=Test Root) did not issue certificate 1"),
    ],
)
def test_bad_pairs_are_refused_in_one_line(pki, case, expected):
    root, inter, leaf = pki
    chain, key, domains, now = [leaf[0], inter[0]], leaf[1], ["a.example"], NOW
    if case == "wrong key":
        key = tf.new_key()
    elif case == "expired":
        now = NOW + datetime.timedelta(days=91)
    elif case == "not yet":
        now = NOW - datetime.timedelta(days=2)
    elif case == "names":
        domains = ["a.example", "c.example"]
    elif case == "deep wildcard":
        domains = ["x.y.b.example"]
    elif case == "order":
        chain = [leaf[0], root[0], inter[0]]
    with pytest.raises(UsageError) as err:
        tf.check_pair(chain, key, domains, "cert", "key", now)
    assert expected in err.value.message and "\n" not in err.value.message


def test_read_pair_refuses_unreadable_and_non_pem_files(tmp_path, pki):
    _, _, leaf = pki
    (tmp_path / "cert.pem").write_bytes(tf.cert_pem(leaf[0]))
    (tmp_path / "junk").write_text("hello")
    with pytest.raises(UsageError, match="tls_cert .*/missing.pem: No such file"):
        tf.read_pair(tmp_path / "missing.pem", tmp_path / "junk", [], NOW)
    with pytest.raises(UsageError, match="not a PEM private key"):
        tf.read_pair(tmp_path / "cert.pem", tmp_path / "junk", [], NOW)
    with pytest.raises(UsageError, match="no PEM certificate"):
        tf.read_pair(tmp_path / "junk", tmp_path / "cert.pem", [], NOW)
    with pytest.raises(UsageError, match="tls=files needs tls_key"):
        tf.read_pair(tmp_path / "cert.pem", None, [], NOW)


def test_self_signed_covers_names_and_addresses():
    cert, key = tf.self_signed(["Box.Example", "10.0.0.7", "[fd00::1]"])
    assert tf.cert_names(cert) == ["box.example", "10.0.0.7", "fd00::1"]
    assert tf.key_matches(cert, key)
    assert tf.days_left(cert) >= tf.SELF_SIGNED_DAYS - 1
    assert len(tf.fingerprint(cert).split(":")) == 32


def test_self_signed_pair_is_kept_until_names_change(tmp_path):
    said = []
    one = tls.self_signed_pair(tmp_path, ["a.example"], said.append)
    again = tls.self_signed_pair(tmp_path, ["a.example"], said.append)
    assert one[2]["fingerprint_sha256"] == again[2]["fingerprint_sha256"] and len(said) == 1
    assert one[2]["fingerprint_sha256"] in said[0]
    assert oct(os.stat(one[1]).st_mode & 0o777) == "0o600"
    other = tls.self_signed_pair(tmp_path, ["b.example"], said.append)
    assert other[2]["fingerprint_sha256"] != one[2]["fingerprint_sha256"]


@pytest.mark.parametrize(
    "value, expected",
    [(None, []), ("a.example, B.example.,a.example", ["a.example", "b.example"]), ("*.x.example", ["*.x.example"])],
)
def test_domains_parse(value, expected):
    assert tf.parse_domains(value) == expected


@pytest.mark.parametrize("value", ["a b.example", "a;b", "x.*.example", "a..b"])
def test_bad_domains_refused(value):
    with pytest.raises(UsageError, match="is not a DNS name"):
        tf.parse_domains(value)


# ------------------------------------------------------------- nginx ---


def render(**over):
    values = config_values(LAYOUT, "pi", dict(DEFAULTS, **over), address="10.0.0.7", tls_paths=PATHS)
    return render_nginx_conf(values)


def servers(text):
    http = next(d for d in validate_nginx_conf(text)["config"][0]["parsed"] if d["directive"] == "http")
    return http["block"], [d["block"] for d in http["block"] if d["directive"] == "server"]


def directives(block, name):
    return [" ".join(d["args"]) for d in block if d["directive"] == name]


def test_tls_off_has_one_plain_server_with_the_public_face():
    http, (server,) = servers(render())
    assert directives(server, "listen") == ["0.0.0.0:8080 reuseport"]
    assert directives(http, "ssl_protocols") == []
    assert directives(server, "add_header") == [
        "X-Content-Type-Options $tiramisu_nosniff always",
        "X-Frame-Options $tiramisu_frame_options always",
        "Referrer-Policy $tiramisu_referrer_policy always",
    ]
    assert directives(server, "error_page") == ["502 @tiramisu_502", "504 @tiramisu_504"]
    assert "nginx" not in " ".join(d for d in render().splitlines() if "return 50" in d)
    assert directives(server, "limit_req") == []


@pytest.mark.parametrize("mode", ["self-signed", "files", "acme"])
def test_tls_modes_add_an_https_server(mode):
    http, (plain, secure) = servers(render(tls=mode, domains="a.example,b.example"))
    assert directives(secure, "listen") == ["0.0.0.0:8443 ssl reuseport"]
    assert directives(secure, "http2") == ["on"]
    assert directives(secure, "ssl_certificate") == [PATHS["cert"]]
    assert directives(secure, "ssl_certificate_key") == [PATHS["key"]]
    assert directives(http, "ssl_protocols") == ["TLSv1.2 TLSv1.3"]
    assert "RSA-AES128-SHA:" not in directives(http, "ssl_ciphers")[0]  # no CBC/non-forward-secret suites
    assert directives(secure, "server_name") == ["10.0.0.7 a.example b.example"]
    challenge = [d for d in plain if d["directive"] == "location" and "acme-challenge" in " ".join(d["args"])]
    assert bool(challenge) == (mode == "acme")
    assert not [d for d in secure if d["directive"] == "location" and "acme-challenge" in " ".join(d["args"])]


def test_redirect_keeps_health_and_challenges_on_http():
    _, (plain, secure) = servers(render(tls="acme", domains="a.example", tls_redirect=True, hsts=True))
    locations = {" ".join(d["args"]): d["block"] for d in plain if d["directive"] == "location"}
    assert directives(locations["/"], "return") == ["301 https://$host:8443$request_uri"]
    assert "= /.well-known/tiramisu/health" in locations and "^~ /.well-known/acme-challenge/" in locations
    assert "Strict-Transport-Security max-age=31536000 always" in directives(secure, "add_header")
    assert not [h for h in directives(plain, "add_header") if "Strict" in h]  # HSTS only over HTTPS


def test_redirect_to_a_forwarded_443_drops_the_port():
    _, (plain, _) = servers(render(tls="self-signed", tls_redirect=True, tls_public_port=443))
    loc = next(d["block"] for d in plain if d["directive"] == "location" and d["args"] == ["/"])
    assert directives(loc, "return") == ["301 https://$host$request_uri"]


def test_rate_limit_per_client_address():
    http, (server,) = servers(render(rate_limit=20))
    assert directives(http, "limit_req_zone") == ["$binary_remote_addr zone=tiramisu_rate:10m rate=20r/s"]
    assert directives(http, "limit_req_status") == ["429"]
    assert directives(server, "limit_req") == ["zone=tiramisu_rate burst=40 nodelay"]


def test_https_port_must_differ():
    with pytest.raises(UsageError, match="https_port and http_port are both 8080"):
        render(tls="self-signed", https_port=8080)


def test_source_nginx_cannot_serve_tls():
    tls.check_provider({"tls": "off", "nginx_provider": "source"})
    tls.check_provider({"tls": "acme", "nginx_provider": "wheel"})
    with pytest.raises(UsageError, match="lacks: use nginx_provider=wheel or tls=off"):
        tls.check_provider({"tls": "files", "nginx_provider": "source"})


@pytest.mark.parametrize(
    "key, value, ok",
    [
        ("tls", "self-signed", "self-signed"),
        ("tls", "ACME", "acme"),
        ("tls", "on", None),
        ("https_port", "443", 443),
        ("https_port", "0", None),
        ("hsts", "yes", True),
        ("rate_limit", "-1", None),
    ],
)
def test_tls_settings_are_typed(key, value, ok):
    if ok is None:
        with pytest.raises(UsageError):
            parse_setting(key, value)
    else:
        assert parse_setting(key, value) == ok


def test_prune_keeps_the_named_pair(tmp_path):
    import subprocess

    for name in ("old.crt", "old.key", "new.crt", "new.key", "notes.txt"):
        (tmp_path / name).write_text("x")
    keep = [str(tmp_path / "new.crt"), str(tmp_path / "new.key")]
    subprocess.run(["sh", "-c", cmd.tls_prune(str(tmp_path), keep)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.crt", "new.key", "notes.txt"]


# -------------------------------------------------------------- ACME ---


def test_acme_refuses_a_directory_that_is_not_a_url(tmp_path):
    from tiramisu_tasks import acmeflow

    with pytest.raises(UsageError, match="acme_directory 'letsencrypt' is not an http"):
        acmeflow.obtain("letsencrypt", ["a.example"], tmp_path, publish=None)


def test_acme_unreachable_ca_is_one_line_and_keeps_the_account_key_private(tmp_path):
    import socket

    from tiramisu_tasks import acmeflow

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(acmeflow.AcmeError) as err:
        acmeflow.obtain(f"https://127.0.0.1:{port}/dir", ["a.example"], tmp_path, publish=None)
    assert err.value.message.startswith(f"ACME: cannot reach https://127.0.0.1:{port}/dir")
    assert "\n" not in err.value.message and err.value.code == 1
    assert oct(os.stat(tmp_path / "account-key.pem").st_mode & 0o777) == "0o600"


def test_acme_problem_detail_is_what_the_user_sees():
    from acme import messages

    from tiramisu_tasks import acmeflow

    problem = messages.Error(typ="urn:ietf:params:acme:error:rejectedIdentifier", detail="policy forbids x.local")
    assert acmeflow.problem_text(problem) == "policy forbids x.local"


def test_acme_state_matches_only_the_same_names_and_ca():
    meta = {"domains": ["a.example", "b.example"], "directory": "https://ca/dir"}
    assert tls.acme_matches(meta, ["b.example", "a.example"], "https://ca/dir")
    assert not tls.acme_matches(meta, ["a.example"], "https://ca/dir")
    assert not tls.acme_matches(meta, ["a.example", "b.example"], "https://other/dir")
