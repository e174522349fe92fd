"""Typed task options: one place that says what each numeric option accepts.

Invoke parses a flag whose default is an ``int`` with ``int(value)`` inside its
parser, so ``--lines x`` ended in a traceback, and flags that default to
``None`` (``--http-port``) reached the task as strings and failed only after
connecting. Here every numeric option is declared once (by option name in
:data:`OPTION_TYPES`, or per task with ``@task(types=...)``); the task
decorator shows Invoke a string option and checks the value with
:func:`parse_option` before the task body runs, so a bad value is one line,
exit 2, and nothing was touched.

Everything in this module is pure.
"""

import os
import re
from dataclasses import dataclass
from typing import Optional

from .errors import UsageError

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class IntOption:
    """An integer in ``[low, high]`` (``high`` None: no upper bound)."""

    low: int
    high: Optional[int] = None
    unit: str = ""  # e.g. "seconds", shown in help

    def accepts(self):
        """What the option accepts, for errors and help: ``an integer 1-65535``."""
        span = f"{self.low}-{self.high}" if self.high is not None else f">= {self.low}"
        return f"an integer {span}" + (f" ({self.unit})" if self.unit else "")

    def convert(self, value):
        """The int for ``value`` (str or int), or None if it is not acceptable."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            return None
        if number < self.low or (self.high is not None and number > self.high):
            return None
        return number


@dataclass(frozen=True)
class AutoIntOption(IntOption):
    """``auto`` (the program decides) or an integer in ``[low, high]``."""

    def accepts(self):
        return "auto or " + super().accepts()

    def convert(self, value):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return super().convert(value)


@dataclass(frozen=True)
class ChoiceOption:
    """One of a few words."""

    choices: tuple

    def accepts(self):
        return "one of " + ", ".join(self.choices)

    def convert(self, value):
        text = str(value).strip().lower() if isinstance(value, str) else None
        return text if text in self.choices else None


@dataclass(frozen=True)
class TextOption:
    """Free text (checked where it is used, e.g. server_name by the renderer)."""

    what: str = "text"

    def accepts(self):
        return self.what

    def convert(self, value):
        if value is None or isinstance(value, (bool, dict, list)):
            return None
        text = str(value).strip()
        return text or None


@dataclass(frozen=True)
class CheckedText(TextOption):
    """Text that ``check(text)`` accepts (it returns False or raises UsageError
    for a bad one), so the inventory refuses it on write as the flag would at use."""

    check: object = None

    def convert(self, value):
        text = super().convert(value)
        if text is None:
            return None
        try:
            return text if self.check(text) else None
        except UsageError:
            return None


def _local_file(text):
    return os.path.isfile(os.path.expanduser(text))


def _dns_names(text):
    from .tlsfiles import parse_domains  # lazy: cryptography is slow to import

    return bool(parse_domains(text))


def _http_url(text):
    return re.fullmatch(r"https?://[^\s/]+(/\S*)?", text) is not None


def _email(text):
    return re.fullmatch(r"[^\s@]+@[^\s@]+\.[^\s@]+", text) is not None


def _health_path(text):
    from .healthgate import validate_path

    return bool(validate_path(text))


def _health_status(text):
    from .healthgate import parse_statuses

    return bool(parse_statuses(text))


@dataclass(frozen=True)
class BoolOption:
    def accepts(self):
        return "true or false"

    def convert(self, value):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return {
            "true": True,
            "yes": True,
            "on": True,
            "1": True,
            "false": False,
            "no": False,
            "off": False,
            "0": False,
        }.get(text)


PORT = IntOption(1, 65535)
RELEASES = IntOption(1, 1000)
LINES = IntOption(0, 1_000_000)
SECONDS = IntOption(0, 86400, unit="seconds")
WORKERS = IntOption(1, 256)
MIB = 1024 * 1024

# Option name (Python parameter name) -> type, for every task that has it.
OPTION_TYPES = {
    "http_port": PORT,
    "server_port": PORT,
    "port": PORT,
    "keep": RELEASES,
    "lines": LINES,
    "timeout": SECONDS,
    "lock_wait": SECONDS,
}


@dataclass(frozen=True)
class Setting:
    """One row of the settings table (:data:`SETTINGS`).

    ``scope``: ``host`` — per host (inventory ``settings:``, ``defaults:``,
    ``host.add --set``) and in config files; ``global`` — inventory
    ``defaults:`` and config files only (not per host); ``config`` — config
    files (``tiramisu:``) only.
    ``server``: the server.conf key it is rendered to (None: not the
    server's); ``nginx``: what it sets in nginx.conf, for the reference.
    """

    name: str
    kind: object
    default: object
    help: str
    scope: str = "host"
    server: Optional[str] = None
    nginx: Optional[str] = None

    @property
    def per_host(self):
        return self.scope == "host"


# The one settings table: validation (host.add --set, inventory), built-in
# defaults (config.DEFAULTS), rendering (render.server_conf_lines) and the
# README reference (a unit test keeps the README's table in step) all read it.
SETTINGS = (
    Setting("env_dir", TextOption("a path on the box"), "~/tiramisu-env", "the env dir on the box"),
    Setting("http_port", PORT, 8080, "public port", nginx="listen"),
    Setting("server_port", PORT, 9000, "custom_server's port on 127.0.0.1", server="listen", nginx="upstream"),
    Setting(
        "server_name",
        TextOption("a DNS name or address"),
        None,
        "name for requests without Host (default: the address the host is reached at)",
        server="server-name",
        nginx="server_name",
    ),
    Setting("toolchain", ChoiceOption(("auto", "zig", "gcc", "docker")), "auto", "how custom_server is built"),
    Setting("nginx_provider", ChoiceOption(("wheel", "source")), "wheel", "where nginx comes from"),
    Setting("keep_releases", RELEASES, 5, "releases kept per app"),
    Setting("workers", WORKERS, 2, "server I/O threads (event loops)", server="workers"),
    Setting(
        "guest_threads",
        AutoIntOption(1, 1024),
        "auto",
        "threads running guests (auto = max(4, 2 x workers))",
        server="guest-threads",
    ),
    Setting(
        "app_concurrency",
        AutoIntOption(1, 1024),
        "auto",
        "guests of one app at once (auto = max(1, guest_threads / 2))",
        server="app-concurrency",
    ),
    Setting(
        "app_queue",
        IntOption(0, 1_000_000),
        64,
        "requests of one app waiting for a guest; beyond it -> 503",
        server="app-queue",
    ),
    Setting(
        "request_timeout_ms",
        IntOption(100, 3_600_000, unit="ms"),
        10000,
        "wall-clock limit per request (-> 504)",
        server="timeout-ms",
        nginx="proxy_read_timeout (seconds + 5)",
    ),
    Setting(
        "memory_limit_mb", IntOption(1, 65536, unit="MiB"), 128, "linear memory per guest instance", server="memory-mb"
    ),
    Setting(
        "max_body_mb",
        IntOption(1, 4096, unit="MiB"),
        10,
        "largest request body (-> 413)",
        server="max-body",
        nginx="client_max_body_size",
    ),
    Setting(
        "max_connections",
        AutoIntOption(1, 1_000_000),
        "auto",
        "server's open client connections (auto = open-file limit less a reserve)",
        server="max-connections",
    ),
    Setting(
        "max_conn_output",
        IntOption(4096, 1024 * MIB, unit="bytes"),
        MIB,
        "queued response bytes per connection before it stops reading",
        server="max-conn-output",
    ),
    Setting(
        "max_app_log",
        IntOption(0, 1024 * MIB, unit="bytes"),
        4 * MIB,
        "an app's stderr log rotates to <app>.log.1 at this size (0 = never)",
        server="max-app-log",
    ),
    Setting(
        "max_response_header",
        IntOption(1024, MIB, unit="bytes"),
        16384,
        "largest guest response head (over it -> 500)",
        server="max-response-header",
        nginx="proxy_buffer_size (+ 4 KiB)",
    ),
    Setting(
        "nginx_workers",
        AutoIntOption(1, 64),
        "auto",
        "nginx worker processes (auto = one per CPU)",
        nginx="worker_processes",
    ),
    Setting(
        "upstream",
        ChoiceOption(("auto", "tcp", "unix")),
        "auto",
        "how nginx reaches the server: tcp (server_port on 127.0.0.1), unix (a socket in the env dir's run/), "
        "auto = unix when the socket path fits a UNIX socket address, else tcp",
        nginx="upstream server",
    ),
    Setting(
        "upstream_keepalive",
        IntOption(1, 4096),
        64,
        "idle keep-alive connections each nginx worker keeps to the server",
        nginx="upstream keepalive",
    ),
    Setting(
        "keep_resident",
        IntOption(0, 1024 * MIB, unit="bytes"),
        64 * 1024,
        "bytes of a guest's memory kept resident between requests and reset by copying (4194304 halves Go's cost)",
        server="keep-resident",
    ),
    Setting("connect_timeout", IntOption(1, 3600, unit="seconds"), 10, "SSH connect timeout"),
    Setting(
        "lock_wait",
        SECONDS,
        10,
        "seconds a change waits for the box's lock before giving up (--lock-wait)",
    ),
    Setting("accept_new_host_keys", BoolOption(), False, "trust unknown host keys on first contact", scope="global"),
    Setting(
        "docker_base_image",
        TextOption("an image name"),
        None,
        "toolchain docker: base of its build image (default debian:bookworm)",
        scope="config",
    ),
    # deploy's health gate (healthgate.py); the --health-* flags beat these
    Setting(
        "health_path",
        CheckedText("a path such as /hello/ping", _health_path),
        None,
        "deploy health check path (default: the app's route)",
    ),
    Setting(
        "health_status",
        CheckedText("statuses such as 200 or 2xx,301", _health_status),
        None,
        "deploy health check: accepted statuses (default: any below 500)",
    ),
    Setting("health_body", TextOption("text"), None, "deploy health check: text the body must contain"),
    Setting("health_timeout", IntOption(1, 600, unit="seconds"), 10, "deploy health check: seconds per request"),
)
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"

# HTTPS (issue 14; tiramisu_tasks/tls.py). nginx serves it; certificates are
# made, checked or obtained on this machine and shipped by setup.
TLS_SETTINGS = (
    Setting(
        "tls",
        ChoiceOption(("off", "self-signed", "files", "acme")),
        "off",
        "HTTPS: off, self-signed (made here), files (tls_cert/tls_key), acme (obtained here)",
        nginx="listen ... ssl",
    ),
    Setting("https_port", PORT, 8443, "HTTPS port on the box (when tls is not off)", nginx="listen ssl"),
    Setting(
        "tls_public_port",
        PORT,
        None,
        "HTTPS port clients use, e.g. 443 forwarded to https_port; redirects go there (default https_port)",
    ),
    Setting("tls_redirect", BoolOption(), False, "redirect plain HTTP to HTTPS (ACME challenges excepted)"),
    Setting("hsts", BoolOption(), False, "send Strict-Transport-Security (1 year) over HTTPS", nginx="add_header"),
    Setting(
        "tls_cert",
        CheckedText("an existing local PEM file", _local_file),
        None,
        "tls=files: certificate chain (leaf first)",
    ),
    Setting(
        "tls_key",
        CheckedText("an existing local PEM file", _local_file),
        None,
        "tls=files: the certificate's private key",
    ),
    Setting(
        "domains",
        CheckedText("comma list of DNS names", _dns_names),
        None,
        "DNS names of the box: nginx server_name, certificate names",
        nginx="server_name",
    ),
    Setting(
        "acme_directory",
        CheckedText("an ACME directory URL (https://...)", _http_url),
        LETS_ENCRYPT,
        "tls=acme: the CA's directory",
    ),
    Setting(
        "acme_ca_bundle",
        CheckedText("an existing local PEM file", _local_file),
        None,
        "tls=acme: TLS root of a private ACME server",
    ),
    Setting("acme_email", CheckedText("an e-mail address", _email), None, "tls=acme: account contact (optional)"),
    Setting(
        "rate_limit",
        IntOption(0, 1_000_000, unit="requests/s"),
        0,
        "requests per second per client address, bursts of twice that (0 = no limit; over it -> 429)",
        nginx="limit_req",
    ),
)
SETTINGS = SETTINGS + TLS_SETTINGS
SETTINGS_BY_NAME = {s.name: s for s in SETTINGS}
SETTING_TYPES = {s.name: s.kind for s in SETTINGS}


def flag_name(param):
    """``http_port`` -> ``--http-port`` (Invoke's spelling of the flag)."""
    return "--" + param.strip("_").replace("_", "-")


def parse_option(label, value, kind):
    """``value`` converted by ``kind``; a UsageError (exit 2) naming ``label`` if it is not acceptable.

    ``None`` (option not given) stays None.
    """
    if value is None:
        return None
    number = kind.convert(value)
    if number is None:
        raise UsageError(f"{label}: expected {kind.accepts()}, got {str(value)!r}")
    return number


def parse_setting(key, value, label=None):
    """A setting's value (``--set KEY=VALUE``, inventory) checked by its type in :data:`SETTINGS`.

    An unknown key is a UsageError naming the known ones; ``None`` stays None.
    """
    row = SETTINGS_BY_NAME.get(key)
    if row is None:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(SETTINGS_BY_NAME)})")
    return parse_option(label or f"--set {key}", value, row.kind)


def typed_params(param_names, defaults, explicit=None):
    """{param: IntOption} for a task's parameters (pure).

    ``explicit`` (``@task(types=...)``) wins over :data:`OPTION_TYPES`; an
    ``explicit`` value of None opts a parameter out. A parameter whose default
    is an int but has no type is a programming error (Invoke would parse it
    with a bare ``int()``), so it raises TypeError at import time.
    """
    explicit = explicit or {}
    unknown = set(explicit) - set(param_names)
    if unknown:
        raise TypeError(f"types= names unknown parameters: {sorted(unknown)}")
    typed = {}
    for name in param_names:
        kind = explicit[name] if name in explicit else OPTION_TYPES.get(name)
        default = defaults.get(name)
        if kind is None:
            if isinstance(default, int) and not isinstance(default, bool):
                raise TypeError(
                    f"parameter {name!r} has an int default but no option type: "
                    f"declare it in OPTION_TYPES or with @task(types=...)"
                )
            continue
        typed[name] = kind
    return typed


def help_suffix(kind):
    """`` [an integer 1-65535]``: appended to a typed option's help text."""
    return f" [{kind.accepts()}]"
