"""The `task` decorator every Tiramisu task uses, and output helpers.

Why a wrapper around ``fabric.task``: scripts chain our tasks
(``inv setup --host pi && inv deploy ...``), so every failure a user can cause
must end as one line on stderr and a meaningful exit code, never a traceback.
The wrapper translates our own errors, Fabric/Paramiko connection errors and
remote command failures into ``invoke.Exit``.
"""

import contextvars
import functools
import inspect
import json as jsonlib
import logging
import os
import socket
import sys
import traceback

import fabric
import invoke
import paramiko
from invoke.exceptions import UnexpectedExit

from . import options
from .errors import LocalError, TiramisuError, UsageError, is_local_os_error


def describe_exception(exc, host=None, address=None):
    """(message, exit code) for an exception a task let escape, or None if it is a bug.

    ``host``: prefix the message with it; ``address`` (``host:port``): how the
    box was reached, named when the port answered but is not an SSH server.
    """
    where = f"{host}: " if host else ""
    if isinstance(exc, TiramisuError):
        return where + exc.message, exc.code
    if isinstance(exc, UnexpectedExit):
        res = exc.result
        cmd = res.command if len(res.command) < 120 else res.command[:117] + "..."
        detail = (res.stderr or res.stdout or "").strip().splitlines()
        tail = f": {detail[-1]}" if detail else ""
        return f"{where}remote command failed (exit {res.exited}): {cmd}{tail}", res.exited or 1
    if isinstance(exc, paramiko.BadHostKeyException):
        return (
            f"{where}host key for {exc.hostname} CHANGED (got {exc.key.get_name()} "
            f"{exc.key.fingerprint}); refusing to connect. If the box was reinstalled, "
            f"remove the old key from the known_hosts file and run host.check --accept-new",
            255,
        )
    if isinstance(exc, BrokenPipeError):
        return "output closed (broken pipe)", 141
    if isinstance(exc, paramiko.AuthenticationException) or "No authentication methods" in str(exc):
        hint = ""
        if "No authentication methods" in str(exc):
            hint = " (no usable key: give one with host.add --key PATH, ~/.ssh/config or ssh-agent)"
        return f"{where}authentication failed: {exc}{hint}", 255
    if isinstance(exc, paramiko.SSHException) and _not_ssh(exc):
        return f"{where}{address or 'the host'} is not an SSH server: {_banner_error(exc)}", 255
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        return f"{where}cannot connect: {exc.strerror or exc}", 255
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"{where}connection timed out", 255
    if isinstance(exc, socket.gaierror):
        return (
            f"{where}cannot resolve host name ({exc.strerror or exc}); not an inventory name either (see host.list)",
            255,
        )
    if is_local_os_error(exc):  # this machine's disk: no host prefix, not a connection code
        return LocalError.from_os_error(exc).message, LocalError.code
    if isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError, OSError)) and not isinstance(
        exc, FileNotFoundError
    ):
        return f"{where}connection error: {exc or exc.__class__.__name__}", 255
    return None


def _not_ssh(exc):
    """Paramiko's words for a peer that answered without an SSH banner."""
    text = str(exc)
    return "protocol banner" in text or "Indecipherable protocol version" in text


def _banner_error(exc):
    """Paramiko glues the socket error to its text ("...banner[Errno 104] ..."); part them."""
    text, head = str(exc), "Error reading SSH protocol banner"
    if text.startswith(head) and text != head:
        return f"{head} ({text[len(head) :].strip()})"
    return text


def fail(exc, host=None):
    """Raise invoke.Exit for a user-facing error; a bug (an exception nobody
    described) is one ``internal error`` line, exit 70 (its traceback under
    :func:`debug_enabled`)."""
    described = describe_exception(exc, host)
    if described is None:
        print_debug_traceback(exc)
        hint = "" if debug_enabled() else " (TIRAMISU_DEBUG=1 shows the traceback)"
        raise invoke.Exit(f"tiramisu: internal error: {exc.__class__.__name__}: {exc}{hint}", code=70)
    message, code = described
    for line in getattr(exc, "details", None) or ():  # e.g. a compiler's errors, above the one line
        sys.stderr.write(f"  {line}\n")
    raise invoke.Exit(f"tiramisu: {message}", code=code)


# ----------------------------------------------------------------- debug ---


def debug_enabled(environ=None):
    """``TIRAMISU_DEBUG=1`` (any front end) or Invoke's core ``--debug``/``-d``
    (which turns the root logger to DEBUG): tracebacks and library logs on stderr."""
    value = (environ if environ is not None else os.environ).get("TIRAMISU_DEBUG", "")
    if value.strip().lower() in ("1", "yes", "true", "on"):
        return True
    return environ is None and logging.getLogger().level == logging.DEBUG


def configure_logging():
    """Library logs (paramiko's "Secsh channel N open FAILED", the banner
    traceback of its transport thread) go nowhere unless debugging; our own
    one-line error says what went wrong."""
    log = logging.getLogger("paramiko")
    if debug_enabled():
        log.propagate = True
        if not logging.getLogger().handlers:
            logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
        return
    log.propagate = False
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())


def print_debug_traceback(exc):
    """Under :func:`debug_enabled`, the traceback of ``exc`` on stderr."""
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


HELP_TOKENS = ("--help", "-h")
HOST_HELP = "inventory name, group, ssh_config alias or user@host:port (comma list runs in parallel)"


# Tasks that change nothing (on a box or here) and so run as usual under
# Invoke's core dry-run flag (`tiramisu --dry TASK`, `inv -R TASK`, `fab --dry`);
# tasks with their own `--dry` print their plan; every other task refuses it.
READ_ONLY_TASKS = frozenset(
    {
        "tiramisu_tasks.tasks.deploy.apps",
        "tiramisu_tasks.tasks.deploy.logs",
        "tiramisu_tasks.tasks.deploy.env",
        "tiramisu_tasks.tasks.lifecycle.status",
        "tiramisu_tasks.tasks.lifecycle.logs",
        "tiramisu_tasks.tasks.host.list_",
        "tiramisu_tasks.tasks.host.show",
        "tiramisu_tasks.tasks.artifacts.list_",
        "tiramisu_tasks.tasks.sandbox.status",
        "tiramisu_tasks.tasks.toolchain.doctor",
        "tiramisu_tasks.tasks.apps_build.build_languages",
        "tiramisu_tasks.tasks.lock.status",
        "tiramisu_tasks.tasks.history.history",
        "tiramisu_tasks.tasks.tls.status",
    }
)


# The parameter that names the hosts, where it is not ``host`` (host.check takes
# the comma list, group or name as its positional NAME).
HOST_PARAMETERS = {"tiramisu_tasks.tasks.host.check": "name"}


def host_parameter(qualname, parameters):
    """The name of the task's hosts parameter, or None for a task that acts on no host (pure)."""
    name = HOST_PARAMETERS.get(qualname, "host")
    return name if name in parameters else None


def core_dry_run(c):
    """Whether Invoke's core ``--dry``/``-R`` flag was given (it sets ``run.dry``)."""
    try:
        return bool(c.config.run.dry)
    except AttributeError:
        return False


def apply_core_dry_run(task_name, qualname, arguments, has_dry):
    """Honour the core dry-run flag for one task call (pure): sets ``dry`` in
    ``arguments`` when the task has its own dry run, lets read-only tasks run,
    and refuses the others with a UsageError (exit 2) before anything happens."""
    if has_dry:
        arguments["dry"] = True
    elif qualname not in READ_ONLY_TASKS:
        raise UsageError(
            f"{task_name} has no dry run (--dry/-R): it would change things, so nothing was done; run it without --dry"
        )


def task(*args, types=None, **kwargs):
    """``fabric.task`` whose body's user-facing errors become one-line exits.

    Before the body runs (so before any connection): ``TASK --help`` that
    Invoke's parser took for a positional value shows the task's help, and
    every numeric option (:mod:`options`; ``types=`` adds or overrides per
    task) is checked and converted, a bad one ending as one line, exit 2.
    """

    def decorate(fn):
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())[1:]  # after the context
        defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
        typed = options.typed_params([p.name for p in params], defaults, types)
        positional = kwargs.get("positional")
        if positional is None:
            positional = [p.name for p in params if p.default is inspect.Parameter.empty]
        holder = {}

        takes_hosts = host_parameter(f"{fn.__module__}.{fn.__name__}", sig.parameters) is not None

        @functools.wraps(fn)
        def body(c, *a, **kw):
            configure_logging()
            name = getattr(holder["task"], "cli_name", fn.__name__)
            run = TaskRun(name, bool(kw.get("json")), takes_hosts)
            token = _current_run.set(run)
            try:
                bound = sig.bind(c, *a, **kw)
                _help_if_asked(holder["task"], [bound.arguments.get(n) for n in positional])
                if core_dry_run(c):
                    apply_core_dry_run(name, f"{fn.__module__}.{fn.__name__}", bound.arguments, "dry" in sig.parameters)
                for name, kind in typed.items():
                    value = bound.arguments.get(name)
                    if value is None:
                        value = defaults.get(name)
                    bound.arguments[name] = options.parse_option(options.flag_name(name), value, kind)
                return fn(*bound.args, **bound.kwargs)
            except invoke.Exit as exc:
                if exc.code:
                    _error_document(run, exc)
                raise
            except KeyboardInterrupt:
                exit_ = invoke.Exit("tiramisu: interrupted", code=130)
                _error_document(run, exit_)
                raise exit_ from None
            except Exception as exc:  # noqa: BLE001 - translated
                try:
                    fail(exc)
                except invoke.Exit as exit_:
                    _error_document(run, exit_)
                    raise exit_ from None
            finally:
                _current_run.reset(token)

        # What Invoke sees: typed options default to None, so its parser hands
        # us the raw text (an int default would make it call int() itself).
        body.__signature__ = sig.replace(
            parameters=[
                p.replace(default=None) if p.name in typed and p.default is not inspect.Parameter.empty else p
                for p in sig.parameters.values()
            ]
        )
        helps = dict(kwargs.get("help") or {})
        for name, kind in typed.items():
            helps[name] = helps.get(name, "") + options.help_suffix(kind)
        made = fabric.task(*args, **{"klass": TiramisuTask, **kwargs, "help": helps})(body)
        made.option_types = dict(typed)  # for tests and docs
        made.original_help = dict(helps)  # Invoke pops help texts as it builds its parser
        holder["task"] = made
        return made

    if len(args) == 1 and callable(args[0]) and not kwargs and types is None:
        fn = args[0]
        args = ()
        return decorate(fn)
    return decorate


class TiramisuTask(fabric.Task):
    """A Fabric task whose ``--host`` also answers to ``-H``, so ``inv TASK -H a,b``,
    ``fab TASK -H a,b`` and ``fab -H a,b TASK`` all mean ``--host a,b``; and
    whose automatic short flags are letters or digits (Invoke takes the first
    character of the long name not yet taken, which can be the ``-`` of
    ``health-timeout``, shown as ``--`` and unusable)."""

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        names = opts["names"]
        if len(names) > 1 and not names[1].isalnum():
            names.pop()
            for char in names[0]:
                if char.isalnum() and char not in taken_names:
                    names.append(char)
                    break
        return opts

    def get_arguments(self, *args, **kwargs):
        arguments = super().get_arguments(*args, **kwargs)
        taken = {n for a in arguments for n in a.names}
        for argument in arguments:
            if argument.name == "host" and "H" not in taken:
                argument.names = (*argument.names, "H")
        return arguments


def help_requested(values, task_has_h_flag):
    """Whether a positional value is really a request for help (pure).

    Invoke's parser gives a missing positional argument whatever comes next,
    ``--help`` included. ``-h`` counts only where the task has no ``-h`` of
    its own (most tasks give it to ``--host``).
    """
    tokens = ("--help",) if task_has_h_flag else HELP_TOKENS
    return any(isinstance(v, str) and v in tokens for v in values)


def _has_h_flag(task_obj):
    return any("h" in arg.names for arg in task_obj.get_arguments())


def _help_if_asked(task_obj, positional_values):
    if not any(isinstance(v, str) and v in HELP_TOKENS for v in positional_values):
        return
    if help_requested(positional_values, _has_h_flag(task_obj)):
        print_task_help(task_obj)
        raise invoke.Exit(code=0)


def task_name(task_obj, collection=None):
    """The dotted name a task has in the namespace (``host.check``)."""
    if collection is None:
        from .namespace import ns as collection
    for name in collection.task_names:
        if collection[name] is task_obj:
            return name
    raise LookupError(f"task {task_obj.name!r} is not in the namespace")


def print_task_help(task_obj, binary=None):
    """The same help ``inv --help TASK`` prints, under the name this program was called as."""
    import os

    from .namespace import ns

    binary = binary or os.path.basename(sys.argv[0] or "tiramisu")
    name = task_name(task_obj, ns)
    task_obj.help = dict(getattr(task_obj, "original_help", None) or {})
    invoke.Program(namespace=ns, binary=binary).run([binary, "--help", name], exit=False)


# ---------------------------------------------------------------- output ---


def confirm(question, refused, cancelled):
    """Ask ``question [y/N]`` on a terminal; return when the answer is yes.

    Without a terminal (scripts) raises UsageError(``refused``), which should
    name the flag that confirms; a no ends the task with ``cancelled`` and exit 1.
    """
    from .errors import UsageError

    if not sys.stdin.isatty():
        raise UsageError(refused)
    if input(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise invoke.Exit(f"tiramisu: {cancelled}", code=1)


def out(*parts):
    """Human output: stdout, flushed (scripts tail it)."""
    print(*parts, flush=True)


def note(*parts):
    """Progress and diagnostics: stderr, so `--json` stdout stays parseable."""
    print(*parts, file=sys.stderr, flush=True)


SCHEMA_VERSION = 1


class TaskRun:
    """What the running task's output needs: its name, ``--json``, whether it
    acts on hosts, and whether its one JSON document was printed."""

    def __init__(self, name, json=False, takes_hosts=False):
        self.name = name
        self.json = json
        self.takes_hosts = takes_hosts
        self.emitted = False


_current_run = contextvars.ContextVar("tiramisu_task_run", default=None)


def schema_name(task_name):
    """``tiramisu.<task>/<version>``: the ``schema`` of a task's JSON document (pure)."""
    return f"tiramisu.{task_name}/{SCHEMA_VERSION}"


def envelope(task_name, data):
    """A task's JSON document (pure): ``schema``, ``ok`` and ``exit_code``
    (true and 0 unless ``data`` says otherwise), then the task's own fields."""
    doc = {"schema": schema_name(task_name), "ok": True, "exit_code": 0}
    doc.update(data if isinstance(data, dict) else {"result": data})
    return doc


def emit_json(data):
    """Print the task's one JSON document on stdout (:func:`envelope`)."""
    run = _current_run.get()
    name = run.name if run is not None else "tiramisu"
    if run is not None:
        run.emitted = True
    print(jsonlib.dumps(envelope(name, data), indent=2, sort_keys=True, default=str), flush=True)


def error_document(task_name, message, code, takes_hosts):
    """The document of a ``--json`` run that failed before it had results (pure)."""
    text = message[len("tiramisu: ") :] if message.startswith("tiramisu: ") else message
    doc = {"ok": False, "exit_code": code, "error": text}
    if takes_hosts:
        doc["hosts"] = []
    return envelope(task_name, doc)


def _error_document(run, exit_):
    """Under ``--json``, a failure before any document still prints one."""
    if run is None or not run.json or run.emitted:
        return
    run.emitted = True
    doc = error_document(run.name, str(exit_.message or "failed"), exit_.code or 1, run.takes_hosts)
    try:
        print(jsonlib.dumps(doc, indent=2, sort_keys=True), flush=True)
    except BrokenPipeError:
        pass


def table(rows, headers):
    """A plain aligned text table (no colour: output is often piped)."""
    rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)
