"""A recording fake box: the three effects of ``tiramisu_tasks.box`` from a script.

``FakeBox`` stands where ``box.SshBox`` stands (``run``, ``upload``, ``http``),
so the procedures of ``lifecycle`` and ``deploy`` run against it unchanged:

- ``on(pattern, ...)`` scripts command answers by regex (``re.search`` on
  the command; the rule added last wins, so a test can override a default);
  a reply is stdout/stderr/exit, a list of replies (used in turn, the last
  repeats), or a callable ``command -> Reply``;
- ``on_http(path, ...)`` scripts HTTP answers the same way (status + JSON or
  text body, or an exception to raise such as ``ConnectError``);
- every call is recorded in ``calls`` (``("run", command)``,
  ``("upload", manifest)``, ``("http", method, port, path)``);
- a command or request nobody scripted fails the test at once
  (:class:`Unscripted`), like invocations' ``MockContext``;
- uploaded files are remembered by sha256 in ``files`` and the ``sha256sum``
  command answers from it, so a second run sees what the first uploaded.

``probe_output()`` writes what the probe script prints on a box in a given state.
"""

import json
import re
from dataclasses import dataclass
from types import SimpleNamespace

from invoke.exceptions import UnexpectedExit
from invoke.runners import Result

from tiramisu_tasks.probe import MARK_END, MARK_TCP
from tiramisu_tasks.sshhttp import HttpResponse


class Unscripted(AssertionError):
    """The procedure ran a command or made a request the test did not script."""


@dataclass
class Reply:
    stdout: str = ""
    stderr: str = ""
    exited: int = 0


class _Rule:
    def __init__(self, pattern, replies):
        self.pattern = re.compile(pattern)
        self.replies = list(replies)
        self.used = 0

    def next(self, key):
        reply = self.replies[min(self.used, len(self.replies) - 1)]
        self.used += 1
        return reply(key) if callable(reply) else reply


def _replies(reply, stdout, stderr, exited, cls):
    if reply is None:
        return [cls(stdout, stderr, exited)] if cls is Reply else [stdout]
    return reply if isinstance(reply, list) else [reply]


class FakeBox:
    """Scripted, recording stand-in for ``box.SshBox``."""

    def __init__(self, host="fake.example"):
        self.host = host
        self.calls = []
        self.files = {}  # remote path -> sha256 of what was uploaded (or preset)
        self.upload_error = None  # an exception the next upload raises
        self._runs = []
        self._http = []
        self.on(r"^\{ \[ -f .* sha256sum ", reply=self._sha256)

    # ------------------------------------------------------------ script ---
    def on(self, pattern, stdout="", stderr="", exited=0, reply=None):
        """Answer commands matching ``pattern`` (see the module docstring); returns self."""
        self._runs.append(_Rule(pattern, _replies(reply, stdout, stderr, exited, Reply)))
        return self

    def on_http(self, path, status=200, body=None, port=None, reply=None):
        """Answer requests to ``path`` (a regex matched whole; any port unless given); returns self.

        ``body``: bytes, str or a JSON-able value; ``reply``: an HttpResponse,
        an exception, a list of them, or a callable ``(port, path) -> either``.
        """
        if reply is None:
            reply = http_response(status, body)
        rule = _Rule(f"^{path}$", reply if isinstance(reply, list) else [reply])
        self._http.append((port, rule))
        return self

    # ----------------------------------------------------------- effects ---
    def run(self, command, warn=False, timeout=None, echo=False):
        self.calls.append(("run", command))
        rule = next((r for r in reversed(self._runs) if r.pattern.search(command)), None)
        if rule is None:
            raise Unscripted(f"unscripted command: {command[:300]}")
        reply = rule.next(command)
        result = Result(stdout=reply.stdout, stderr=reply.stderr, command=command, exited=reply.exited)
        if reply.exited != 0 and not warn:
            raise UnexpectedExit(result)
        return result

    def upload(self, root, uploads, check=None, note=lambda *a: None, codec=None):
        manifest = {
            "root": root,
            "check": check,
            "files": [{"remote": u.remote, "sha256": u.sha256, "size": u.size, "mode": u.mode} for u in uploads],
        }
        self.calls.append(("upload", manifest))
        if self.upload_error is not None:
            error, self.upload_error = self.upload_error, None
            raise error
        for u in uploads:
            self.files[u.remote] = u.sha256

    def http(self, port, path, method="GET", timeout=10.0):
        self.calls.append(("http", method, int(port), path))
        rule = next(
            (r for p, r in reversed(self._http) if (p is None or int(p) == int(port)) and r.pattern.match(path)), None
        )
        if rule is None and path.startswith("/_tiramisu/apps/"):
            return http_response(404, "unknown admin endpoint\n")  # as a server older than /_tiramisu/apps/<app>
        if rule is None:
            raise Unscripted(f"unscripted HTTP request: {method} 127.0.0.1:{port}{path}")
        reply = rule.replies[min(rule.used, len(rule.replies) - 1)]
        rule.used += 1
        if callable(reply) and not isinstance(reply, HttpResponse):
            reply = reply(port, path)
        if isinstance(reply, BaseException):
            raise reply
        return reply

    # ----------------------------------------------------------- reading ---
    @property
    def commands(self):
        return [c[1] for c in self.calls if c[0] == "run"]

    @property
    def uploads(self):
        return [c[1] for c in self.calls if c[0] == "upload"]

    @property
    def requests(self):
        return [c[1:] for c in self.calls if c[0] == "http"]

    def ran(self, pattern):
        """The commands matching ``pattern``."""
        return [c for c in self.commands if re.search(pattern, c)]

    def uploaded(self, root):
        """Env-relative paths of every file uploaded, in order."""
        return [f["remote"][len(root) + 1 :] for m in self.uploads for f in m["files"]]

    def _sha256(self, command):
        paths = re.findall(r"\[ -f ('[^']*'|\S+) \]", command)
        lines = []
        for quoted in paths:
            path = quoted.strip("'")
            if path in self.files:
                lines.append(f"{self.files[path]}  {path}")
        return Reply("\n".join(lines) + ("\n" if lines else ""))


def http_response(status=200, body=None, seconds=0.001):
    if body is None:
        raw = b""
    elif isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode()
    else:
        raw = json.dumps(body).encode()
    return HttpResponse(status, "OK" if status == 200 else "", [], raw, seconds)


def probe_output(
    env_dir="/home/u/tiramisu-env",
    machine="x86_64",
    glibc="2.36",
    env_exists=True,
    version=None,
    pids=None,
    crontab=True,
    home="/home/u",
    listening=(),
    disk_free_kb=10**7,
):
    """What ``probe.probe_command`` prints on a box in this state.

    ``version``: the VERSION file as a dict (None: not installed);
    ``pids``: {service: (pid, alive)}; ``listening``: ports in LISTEN state.
    """
    lines = [
        f"machine={machine}",
        "kernel=6.1.0",
        f"home={home}",
        "user=u",
        "uid=1000",
        "group=u",
        "os_id=debian",
        "os_version=12",
        "os_name=Debian GNU/Linux 12",
        f"glibc={glibc}",
        f"disk_path={env_dir if env_exists else home}",
        f"disk_free_kb={disk_free_kb}",
        f"env_dir={env_dir}",
        "nproc=2",
    ]
    if env_exists:
        lines.append("env_exists=1")
    if version is not None:
        lines.append("version_sha=0123456789ab")
        lines += [f"version_line={k}={v}" for k, v in version.items()]
    for name, (pid, alive) in (pids or {}).items():
        lines.append(f"pid_{name}={pid} {'alive' if alive else 'stale'}")
    if crontab:
        lines.append("crontab=1")
    lines.append(MARK_TCP)
    lines.append("  sl  local_address rem_address   st")
    lines += [f"   0: 00000000:{port:04X} 00000000:0000 0A" for port in listening]
    lines.append(MARK_END)
    return "\n".join(lines) + "\n"


def observed(server=None, nginx=None, orphans=()):
    """What ``services.observe_command`` prints: pid-file states, then the env's processes.

    ``server``/``nginx``: a running pid or None; ``orphans``: (pid, ppid, comm).
    """
    lines = [
        f"state server {server or '-'} {'running' if server else 'stopped'}",
        f"state nginx {nginx or '-'} {'running' if nginx else 'stopped'}",
    ]
    if server:
        lines.append(f"{server} 1 custom_server")
    if nginx:
        lines.append(f"{nginx} 1 nginx")
    lines += [f"{p} {pp} {c}" for p, pp, c in orphans]
    return "\n".join(lines) + "\n"


class Recorder:
    """A ``hostrun.Reporter`` that keeps what it was given."""

    def __init__(self, name="fake"):
        self.name = name
        self.outs, self.notes = [], []

    def out(self, *parts):
        self.outs.append(" ".join(str(p) for p in parts))

    def note(self, *parts):
        self.notes.append(" ".join(str(p) for p in parts))


def spec(name="fake", hostname="fake.example"):
    """A stand-in for ``connect.HostSpec`` (no inventory entry)."""
    return SimpleNamespace(name=name, hostname=hostname, entry=None)
