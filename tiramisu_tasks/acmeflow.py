"""One ACME (RFC 8555) certificate order from this machine, over certbot's ``acme`` library.

The protocol (JWS, nonces, directory, orders, polling) is the library's;
this module only strings its calls together for HTTP-01 and keeps the
account key. ``publish(token, key_authorization)`` puts an answer where the
CA will fetch it (the box's challenge folder, see :mod:`tls`).
"""

import datetime
from pathlib import Path

from .errors import TiramisuError, UsageError

ACCOUNT_KEY_BITS = 2048
ORDER_TIMEOUT = 120  # seconds for validation and issuance
USER_AGENT = "tiramisu-acme"


class AcmeError(TiramisuError):
    """The CA refused or validation failed; the message carries the CA's problem detail."""

    code = 1


def account_key(folder):
    """The account key (josepy JWK) in ``folder/account-key.pem``, made (0600) the first time."""
    import josepy
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from .tls import write_private

    path = Path(folder) / "account-key.pem"
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=ACCOUNT_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(path, pem)
    return josepy.JWKRSA(key=key)


def problem_text(exc):
    """One line for an ACME failure: the problem document's detail where there is one."""
    from acme import errors, messages

    if isinstance(exc, errors.ValidationError):
        details = []
        for authzr in exc.failed_authzrs:
            name = authzr.body.identifier.value
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    details.append(f"{name}: {challb.error.detail or challb.error.typ}")
        return "validation failed: " + ("; ".join(details) or "no detail from the CA")
    if isinstance(exc, errors.IssuanceError) and exc.error is not None:
        return exc.error.detail or exc.error.typ
    if isinstance(exc, messages.Error):
        return exc.detail or exc.typ or str(exc)
    if isinstance(exc, errors.TimeoutError):
        return f"the CA did not finish within {ORDER_TIMEOUT}s"
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def _client(directory, folder, ca_bundle, email):
    from acme import client, errors, messages

    net = client.ClientNetwork(account_key(folder), user_agent=USER_AGENT, verify_ssl=ca_bundle or True)
    acme = client.ClientV2(client.ClientV2.get_directory(directory, net), net=net)
    registration = messages.NewRegistration.from_data(email=email, terms_of_service_agreed=True)
    try:
        # The key is the account: a CA that knows it answers with its URL.
        net.account = acme.new_account(registration)
    except errors.ConflictError as exc:
        known = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        net.account = acme.query_registration(known)
    return acme, net


def obtain(directory, domains, folder, publish, ca_bundle=None, email=None, note=lambda *a: None, timeout=None):
    """(fullchain PEM bytes, private key PEM bytes) of a new certificate for ``domains``.

    ``folder``: where the account key is kept (made 0600 the first time).
    Raises AcmeError with the CA's problem detail (validation failed,
    rejected names, rate limits) or when the CA cannot be reached.
    """
    import requests
    from acme import challenges, crypto_util, errors, messages

    from .tlsfiles import key_pem, new_key

    if not directory or not str(directory).startswith(("https://", "http://")):
        raise UsageError(f"acme_directory {directory!r} is not an http(s) URL")
    try:
        acme, net = _client(directory, folder, ca_bundle, email)
        key = key_pem(new_key())
        order = acme.new_order(crypto_util.make_csr(key, list(domains)))
        for authzr in order.authorizations:
            if authzr.body.status == messages.STATUS_VALID:
                continue
            challb = next((c for c in authzr.body.challenges if isinstance(c.chall, challenges.HTTP01)), None)
            if challb is None:
                raise AcmeError(f"ACME: the CA offers no http-01 challenge for {authzr.body.identifier.value}")
            response, validation = challb.response_and_validation(net.key)
            publish(challb.chall.encode("token"), validation)
            acme.answer_challenge(challb, response)
        note(f"ACME: answered {len(order.authorizations)} http-01 challenge(s); waiting for {directory}")
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=timeout or ORDER_TIMEOUT)
        order = acme.poll_and_finalize(order, deadline)
    except AcmeError:
        raise
    except (errors.Error, messages.Error) as exc:
        raise AcmeError(f"ACME ({directory}): {problem_text(exc)}") from None
    except requests.exceptions.SSLError as exc:
        raise AcmeError(
            f"ACME: cannot verify {directory}'s TLS certificate ({_short(exc)}); "
            f"for a private CA set acme_ca_bundle to its root"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise AcmeError(f"ACME: cannot reach {directory}: {_short(exc)}") from None
    return order.fullchain_pem.encode(), key


def _short(exc):
    text = str(exc)
    for mark in ("Caused by ", "] "):
        if mark in text:
            text = text.split(mark, 1)[1]
    return text.strip("()'\" ")[:200]
