"""Run a per-host function on one or many hosts, and report the outcome.

Every run takes the same path, one host or many (``--host a,b``, a group,
``-H a,b``): one thread per host — the model of ``fabric.ThreadingGroup``,
which only runs a single command per host, whereas our tasks are multi-step
plans — then the outcome, reported by :func:`finish`:

* text: one host's failure is one ``tiramisu: HOST: message`` line and its
  own exit code; several hosts get a summary table on stderr, then one line
  naming the failed hosts, exit 1;
* ``--json``: one document on stdout (:func:`document`), the same shape for
  one host and many, then the same line on stderr and the same exit code.

The main thread only waits, so one Ctrl-C always reaches it: it closes every
host's connection (which ends remote commands such as ``tail -F``) and ends
the run (exit 130, or 0 where the caller says an interrupt is the normal end).
"""

import concurrent.futures
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import invoke

from .connect import connect, host_config, resolve_specs
from .inventory import Inventory
from .taskkit import debug_enabled, describe_exception, emit_json, print_debug_traceback, table

_print_lock = threading.Lock()

# Hosts run at once (one thread and one SSH connection each). Most of a
# host's time is waiting on its box, so a queue behind a small pool only
# adds whole host-times to a group's run (measured: 20 hosts with 16
# workers, the last 4 started when the first finished; BENCHMARKS.md "Fleet").
MAX_PARALLEL_HOSTS = 64


class Reporter:
    """Per-host output; prefixes lines with ``[host] `` when several run at once.

    ``json``: a ``--json`` run, whose stdout holds only the JSON document, so
    ``out`` goes to stderr as well.
    """

    def __init__(self, name, prefixed=False, json=False):
        self.name = name
        self.prefixed = prefixed
        self.json = json

    def _fmt(self, parts):
        text = " ".join(str(p) for p in parts)
        if not self.prefixed:
            return text
        return "\n".join(f"[{self.name}] {line}" for line in text.splitlines() or [""])

    def out(self, *parts):
        with _print_lock:
            print(self._fmt(parts), file=sys.stderr if self.json else sys.stdout, flush=True)

    def note(self, *parts):
        with _print_lock:
            print(self._fmt(parts), file=sys.stderr, flush=True)

    def plan(self, text, dry):
        """A plan: the result of a dry run (stdout; the document carries it under
        ``--json``), progress otherwise (stderr)."""
        if dry:
            self.out(text)
        else:
            self.note(text)

    def stream(self):
        """A writable text stream for streamed remote output (``logs --follow``)."""
        return LabelledStream(self)


class LabelledStream:
    """File-like: whole lines to the reporter's stdout, ``[host] `` first when prefixed."""

    def __init__(self, reporter):
        self.reporter = reporter
        self.pending = ""

    def write(self, data):
        self.pending += data
        *lines, self.pending = self.pending.split("\n")
        if lines:
            text = "\n".join(f"[{self.reporter.name}] {ln}" if self.reporter.prefixed else ln for ln in lines)
            with _print_lock:
                print(text, file=sys.stderr if self.reporter.json else sys.stdout, flush=True)
        return len(data)

    def flush(self):
        if self.pending:
            data, self.pending = self.pending, ""
            self.write(data + "\n")


@dataclass
class HostResult:
    name: str
    ok: bool
    value: Any = None
    error: Optional[str] = None  # the message, without the host name
    code: int = 0  # the exit code this host alone would give
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def fail(self, error, code=1):
        """Mark a host that ran but did not meet the task's bar (e.g. unhealthy)."""
        self.ok, self.error, self.code = False, error, code


def run_on_hosts(c, host, fn, accept_new=None, summary=True, quiet=False, interrupt_ok=False, json=None):
    """Call ``fn(conn, spec, reporter)`` for each host; returns [HostResult].

    ``quiet`` (``--json``): return every result, failed ones included, and let
    the caller :func:`finish`; otherwise failures are reported here and end the
    task (``invoke.Exit``). Raises ``UsageError`` (exit 2) before connecting
    when a host cannot be resolved (:func:`connect.resolve_specs`).
    ``interrupt_ok``: Ctrl-C is the normal end (``--follow``): exit 0.
    ``json`` (default: ``quiet``): stdout is kept for the document, so the
    reporters' output goes to stderr.
    """
    json = quiet if json is None else json
    inventory = Inventory.load()
    specs = resolve_specs(c, host, inventory)
    prefixed = len(specs) > 1
    # Each host gets its own copy of the config, made here, in this thread,
    # before any worker starts: Invoke rebuilds a config on every write, so one
    # shared by threads loses keys (see connect.host_config). The task's
    # context `c` is only read from the workers.
    configs = [host_config(c) for _ in specs]
    open_conns = []
    interrupted = threading.Event()

    def one(spec, config):
        reporter = Reporter(spec.name, prefixed=prefixed, json=json)
        started = time.monotonic()
        conn = None
        try:
            conn = connect(c, spec, inventory, accept_new=accept_new, notify=reporter.note, config=config)
            open_conns.append(conn)
            value = fn(conn, spec, reporter)
            return HostResult(spec.name, True, value, seconds=time.monotonic() - started)
        except BaseException as exc:  # noqa: BLE001 - each host reports its own failure
            message, code = host_error(exc, conn, spec)
            if interrupted.is_set():
                message, code = "interrupted", 130
            return HostResult(spec.name, False, error=message, code=code, seconds=time.monotonic() - started)
        finally:
            if conn is not None:
                conn.close()

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(len(specs), MAX_PARALLEL_HOSTS))
    futures = [pool.submit(one, spec, config) for spec, config in zip(specs, configs)]
    try:
        concurrent.futures.wait(futures)
    except KeyboardInterrupt:
        interrupted.set()
        for conn in list(open_conns):  # ends the remote commands; the workers return
            conn.close()
        pool.shutdown(wait=False, cancel_futures=True)
        if interrupt_ok:
            raise invoke.Exit(code=0) from None
        raise invoke.Exit("tiramisu: interrupted", code=130) from None
    pool.shutdown()
    results = [f.result() for f in futures]
    if not quiet:
        finish(results, json=False, summary=summary)
    return results


def host_error(exc, conn, spec):
    """(message without the host name, exit code) for what ended one host's run."""
    if isinstance(exc, invoke.Exit):
        text = str(exc.message or "failed")
        text = text[len("tiramisu: ") :] if text.startswith("tiramisu: ") else text
        return text, exc.code or 1
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", 130
    address = f"{conn.host}:{conn.port}" if conn is not None else spec.hostname
    described = describe_exception(exc, address=address)
    if described is None:
        print_debug_traceback(exc)
        hint = "" if debug_enabled() else " (TIRAMISU_DEBUG=1 shows the traceback)"
        return f"internal error: {exc.__class__.__name__}: {exc}{hint}", 70
    return described


def exit_code(results):
    """The run's exit code (pure): 0 when every host is ok; one host: its own
    code; several: 1."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return 0
    if len(results) == 1:
        return failed[0].code or 1
    return 1


def failure_line(results):
    """The one ``tiramisu:`` line for a failed run (pure); None when all are ok."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    if len(results) == 1:
        error = failed[0].error or "failed"
        if error.startswith("local: "):  # this machine's disk: the box is not involved
            return f"tiramisu: {error}"
        return f"tiramisu: {failed[0].name}: {error}"
    return f"tiramisu: {len(failed)} of {len(results)} hosts failed: " + ", ".join(r.name for r in failed)


def host_entry(result):
    """One host's object in a ``--json`` document (pure): the task's own fields,
    then ``host``, ``ok``, ``exit_code``, ``error`` and ``seconds``."""
    value = result.value
    entry = dict(value) if isinstance(value, dict) else ({} if value is None else {"result": value})
    entry.update(
        host=result.name,
        ok=result.ok,
        exit_code=0 if result.ok else (result.code or 1),
        error=None if result.ok else result.error,
        seconds=round(result.seconds, 3),
    )
    return entry


def document(results):
    """The per-host ``--json`` document body (pure; :func:`taskkit.emit_json`
    adds ``schema``): ``{"ok", "exit_code", "hosts": [host_entry, ...]}``."""
    code = exit_code(results)
    return {"ok": code == 0, "exit_code": code, "hosts": [host_entry(r) for r in results]}


def finish(results, json, summary=True):
    """Report a run: the JSON document or the text summary, then the one error
    line and ``invoke.Exit`` with :func:`exit_code` if any host failed."""
    if json:
        emit_json(document(results))
    elif summary and len(results) > 1:
        rows = [[r.name, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}s", r.error or ""] for r in results]
        with _print_lock:
            print(table(rows, ["HOST", "RESULT", "TIME", "ERROR"]), file=sys.stderr, flush=True)
    line = failure_line(results)
    if line is not None:
        raise invoke.Exit(line, code=exit_code(results))
    return results


def emit_results(results, json):
    """With ``--json``: print the document, then exit non-zero if any host failed."""
    if json:
        finish(results, json=True)
