"""The box context: one box as the procedures see it, with three effects.

Every procedure (setup, deploy, webserv.*, teardown, rollback, remove) talks
to a box only through these three effects of its ``effects`` object:

``run(command, warn=False, timeout=None, echo=False)``
    run one ``sh`` command (built in :mod:`commands`) and return an
    ``invoke.runners.Result``; a non-zero exit raises
    ``invoke.exceptions.UnexpectedExit`` unless ``warn``. ``echo`` streams the
    output to the terminal instead of capturing it (``logs --follow``).
``upload(root, uploads, check=None, note=..., codec=None)``
    send a batch of :class:`transfer.Upload` as one verified, all-or-nothing
    transfer into ``root`` (``check``: an sh snippet run on the staged files;
    ``codec``: how large files travel, see ``transfer.pick_codec``); returns
    the bytes sent (int); raises ``DiskFullError``/``RemoteError``/``ConnectError``.
``http(port, path, method="GET", timeout=10.0)``
    one HTTP request to 127.0.0.1:PORT on the box (over the SSH port
    forward); returns an :class:`sshhttp.HttpResponse`, raises ``ConnectError``
    when nothing answers.

:class:`SshBox` implements them over a Fabric Connection; the recording
``tests/fakebox.FakeBox`` implements them from a script, so every procedure
branch runs in milliseconds without a box.
"""

from dataclasses import dataclass, field
from typing import Dict, List

from .errors import UnsupportedTarget, UsageError
from .layout import RemoteLayout


class SshBox:
    """The three effects on a real box, over one Fabric Connection."""

    def __init__(self, conn, stream=None):
        self.conn = conn
        self.host = conn.host
        self.stream = stream  # where echoed output goes (hostrun.LabelledStream); None: stdout

    def run(self, command, warn=False, timeout=None, echo=False):
        if echo:
            streams = {"out_stream": self.stream, "err_stream": self.stream} if self.stream is not None else {}
            return self.conn.run(command, pty=False, hide=False, warn=True, in_stream=False, **streams)
        from .remote import run

        return run(self.conn, command, warn=warn, timeout=timeout)

    def upload(self, root, uploads, check=None, note=lambda *a: None, codec=None):
        from .transfer import upload_batch

        return upload_batch(self.conn, root, uploads, note=note, check=check, codec=codec)

    def http(self, port, path, method="GET", timeout=10.0):
        from .sshhttp import request

        return request(self.conn, port, path, method=method, timeout=timeout)


@dataclass
class Box:
    """What one procedure run knows about one box, and its effects."""

    effects: object
    spec: object  # connect.HostSpec: name, hostname, entry
    rep: object  # hostrun.Reporter: out(), note()
    settings: Dict[str, object]
    report: Dict[str, object]  # probe.summarize()
    layout: RemoteLayout
    target: object = None
    log: List[str] = field(default_factory=list)
    sent_bytes: int = 0  # bytes this run's uploads put on the wire (transfer.upload_batch)

    @property
    def name(self):
        return self.spec.name

    @property
    def address(self):
        """How this machine reaches the box (inventory hostname or the --host address)."""
        return self.spec.hostname if self.spec.entry is None else self.spec.entry.hostname

    def url(self, path="/"):
        return f"http://{self.address}:{self.settings['http_port']}{path}"

    def note(self, *parts):
        self.rep.note(*parts)

    def show_plan(self, text, dry):
        """A plan: the output of a dry run (stdout), progress otherwise (stderr)."""
        show = getattr(self.rep, "plan", None)
        if show is None:
            self.rep.note(text)
        else:
            show(text, dry)

    # the three effects, with this box's root and reporter filled in
    def run(self, command, warn=False, timeout=None, echo=False):
        return self.effects.run(command, warn=warn, timeout=timeout, echo=echo)

    def upload(self, uploads, check=None):
        """Send a batch (see the module doc), compressed with the best codec the box has;
        :attr:`sent_bytes` grows by what went over the wire."""
        from .transfer import pick_codec

        codec = pick_codec(self.report.get("codecs"))
        sent = self.effects.upload(self.layout.root, uploads, check=check, note=self.rep.note, codec=codec)
        self.sent_bytes += int(sent or 0)

    def http(self, port, path, method="GET", timeout=10.0):
        return self.effects.http(port, path, method=method, timeout=timeout)

    def remote_sha256(self, paths):
        """{path: sha256} of the paths that exist on the box."""
        from .commands import parse_sha256_output, sha256_cmd

        return parse_sha256_output(self.run(sha256_cmd(paths)).stdout)


def resolve_settings(c, spec, flags):
    """{setting: value} for every setting of the table (options.SETTINGS), the
    inventory read once; precedence: flag, host, inventory defaults, config
    files, built-in (config.resolve_settings)."""
    from .config import resolve_settings as resolve_host_settings

    return resolve_host_settings(c, host=spec.entry, flags=flags)


def open_box(effects, spec, rep, settings, flags=None, need_supported=True, installed_wins=True):
    """Probe the box (one round trip) and return its :class:`Box`.

    ``installed_wins``: ports recorded in the box's VERSION file beat config
    (what runs there is the truth for status/deploy); setup passes False so a
    changed setting is applied. Raises ``UsageError`` for bad or equal ports,
    ``UnsupportedTarget`` for an unsupported box when ``need_supported``.
    """
    from .probe import probe, unsupported_message
    from .targets import get_target

    flags = flags or {}
    settings = dict(settings)
    report = probe(effects, settings["env_dir"], settings["http_port"], settings["server_port"])
    installed = report.get("version") or {}
    if installed_wins:
        for key in ("http_port", "server_port"):
            if flags.get(key) is None and str(installed.get(key, "")).isdigit():
                settings[key] = int(installed[key])
    check_ports_differ(settings)
    box = Box(effects, spec, rep, settings, report, RemoteLayout(report["env_dir"]))
    if report["supported"]:
        box.target = get_target(
            report["arch"], report["libc"], report["libc_version"] if report["libc"] == "glibc" else None
        )
    elif need_supported:
        raise UnsupportedTarget(f"{unsupported_message(report)}; nothing was uploaded")
    return box


def check_ports_differ(settings):
    """Raise UsageError unless both ports are valid and different."""
    for key in ("http_port", "server_port"):
        port = int(settings[key])
        if not 1 <= port <= 65535:
            raise UsageError(f"{key} {port} is not a valid TCP port")
    if int(settings["http_port"]) == int(settings["server_port"]):
        raise UsageError(f"http_port and server_port are both {settings['http_port']}: they must differ")


def connect_box(c, conn, spec, rep, flags=None, **kw):
    """The task layer's way in: settings for this host, then :func:`open_box` over SSH."""
    flags = flags or {}
    stream = rep.stream() if hasattr(rep, "stream") else None
    return open_box(SshBox(conn, stream), spec, rep, resolve_settings(c, spec, flags), flags, **kw)
