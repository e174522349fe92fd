"""X.509 on this machine: self-signed certificates, checks of given PEM files,
what a certificate says (pure, over the ``cryptography`` library).

Nothing here prints a private key; errors are one-line UsageErrors naming the
file and what is wrong with it, raised before anything is uploaded.
"""

import datetime
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import UsageError

SELF_SIGNED_DAYS = 825  # the longest server certificate lifetime clients accepted (Apple's rule)
RENEW_DAYS = 30  # renew (or regenerate) when fewer days than this remain


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def new_key():
    """A fresh ECDSA P-256 private key (``cryptography`` key object)."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    """The unencrypted PKCS#8 PEM bytes of ``key`` (written 0600, never printed)."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def split_names(names):
    """(DNS names, IP addresses) of ``names`` (strings), duplicates dropped, order kept."""
    dns, ips = [], []
    for name in names:
        text = str(name).strip().strip("[]").lower()
        if not text:
            continue
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            if text not in dns:
                dns.append(text)
        else:
            if ip not in ips:
                ips.append(ip)
    return dns, ips


def parse_domains(value):
    """The ``domains`` setting (comma list) as a list of lower-case DNS names; UsageError for a bad one."""
    if value in (None, ""):
        return []
    out = []
    for part in str(value).split(","):
        name = part.strip().lower().rstrip(".")
        if not name:
            continue
        label_ok = all(
            label and len(label) <= 63 and all(ch.isalnum() or ch == "-" for ch in label) or label == "*"
            for label in name.split(".")
        )
        if not label_ok or "*" in name[1:] or len(name) > 253:
            raise UsageError(f"domains: {part.strip()!r} is not a DNS name")
        if name not in out:
            out.append(name)
    return out


def self_signed(names, days=SELF_SIGNED_DAYS, now=None):
    """(certificate, key) of a new self-signed server certificate for ``names`` (DNS names or addresses)."""
    dns, ips = split_names(names)
    if not dns and not ips:
        raise UsageError("a self-signed certificate needs at least one name or address")
    key = new_key()
    now = now or utcnow()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns or [str(ips[0])])[0][:64])])
    alt = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def fingerprint(cert):
    """SHA-256 fingerprint ``AB:CD:...`` (what browsers and ``openssl x509 -fingerprint`` show)."""
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def cert_names(cert):
    """DNS names and addresses (as text) the certificate is for: its SANs, else its common name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [a.value.lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)] + [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    ]


def covers(cert_name_list, name):
    """Whether one of the certificate names matches ``name`` (exact, or ``*.`` one label deep)."""
    name = name.lower().rstrip(".")
    for have in cert_name_list:
        if have == name:
            return True
        if have.startswith("*.") and "." in name and name.split(".", 1)[1] == have[2:]:
            return True
    return False


def not_after(cert):
    return cert.not_valid_after_utc


def days_left(cert, now=None):
    """Whole days until the certificate expires (negative once expired)."""
    return int((not_after(cert) - (now or utcnow())).total_seconds() // 86400)


def info(chain, now=None):
    """{names, issuer, subject, not_after, days_left, fingerprint_sha256} of a chain's leaf (JSON-ready)."""
    leaf = chain[0]
    return {
        "names": cert_names(leaf),
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "not_after": not_after(leaf).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days_left": days_left(leaf, now),
        "fingerprint_sha256": fingerprint(leaf),
    }


def load_chain(data, label):
    """The certificates of PEM ``data`` (bytes), leaf first; UsageError naming ``label`` if there are none."""
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        chain = []
    if not chain:
        raise UsageError(f"{label}: no PEM certificate in it")
    return chain


def load_key(data, label):
    """The private key of PEM ``data`` (bytes, unencrypted); UsageError naming ``label`` otherwise."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"{label}: the key is encrypted; nginx needs it without a passphrase") from None
    except (ValueError, Exception):  # noqa: BLE001 - any parse failure is the same user error
        raise UsageError(f"{label}: not a PEM private key") from None


def _public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(cert, key):
    return _public_der(cert.public_key()) == _public_der(key.public_key())


def issued(child, parent):
    """Whether ``parent`` signed ``child`` (names and signature)."""
    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and unsupported keys alike
        return False
    return True


def check_pair(chain, key, domains, cert_label, key_label, now=None):
    """Refuse (UsageError, one line) a chain and key nginx should not serve.

    Checks, in this order: the key matches the leaf; every certificate is in
    its validity period; the leaf's names cover every name of ``domains``;
    each certificate was issued by the next one (leaf first, as nginx wants).
    """
    now = now or utcnow()
    leaf = chain[0]
    if not key_matches(leaf, key):
        raise UsageError(f"{key_label} does not match the certificate in {cert_label}")
    for i, cert in enumerate(chain):
        which = "the certificate" if i == 0 else f"chain certificate {i + 1} ({cert.subject.rfc4514_string()})"
        if cert.not_valid_after_utc <= now:
            raise UsageError(f"{cert_label}: {which} expired on {cert.not_valid_after_utc:%Y-%m-%d}")
        if cert.not_valid_before_utc > now:
            raise UsageError(f"{cert_label}: {which} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M}")
    names = cert_names(leaf)
    for name in domains:
        if not covers(names, name):
            raise UsageError(f"{cert_label}: the certificate does not cover {name} (it names {', '.join(names)})")
    for i in range(len(chain) - 1):
        if not issued(chain[i], chain[i + 1]):
            raise UsageError(
                f"{cert_label}: chain out of order: certificate {i + 2} ({chain[i + 1].subject.rfc4514_string()}) "
                f"did not issue certificate {i + 1}; put the leaf first, then each issuer"
            )


def read_pair(cert_path, key_path, domains, now=None):
    """(chain, key) from the local files ``tls_cert``/``tls_key`` after :func:`check_pair`.

    UsageError (one line) for a missing or unreadable file and every failed check.
    """
    data = {}
    for label, path in (("tls_cert", cert_path), ("tls_key", key_path)):
        if not path:
            raise UsageError(
                f"tls=files needs {label} (host.set HOST --set {label}=PATH, "
                f"or TIRAMISU_{label.upper()}=PATH for one run)"
            )
        try:
            with open(str(path), "rb") as fh:
                data[label] = fh.read()
        except OSError as exc:
            raise UsageError(f"{label} {path}: {exc.strerror or exc}") from None
    chain = load_chain(data["tls_cert"], f"tls_cert {cert_path}")
    key = load_key(data["tls_key"], f"tls_key {key_path}")
    check_pair(chain, key, domains, f"tls_cert {cert_path}", f"tls_key {key_path}", now)
    return chain, key


def chain_pem(chain):
    return b"".join(cert_pem(c) for c in chain)


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()
