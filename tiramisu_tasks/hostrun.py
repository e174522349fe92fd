"""Run a per-host function on one or many hosts.

One host: the function runs in the calling thread and its errors end the task
with one line (taskkit). Several hosts (``--host a,b`` or a group): one thread
per host — the same model as ``fabric.ThreadingGroup``, which only runs a single
command per host, whereas our tasks are multi-step plans — then a per-host
summary, and a non-zero exit if any host failed.
"""

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import invoke

from .connect import connect, host_config, resolve_specs
from .inventory import Inventory
from .taskkit import describe_exception, fail, table

_print_lock = threading.Lock()


class Reporter:
    """Per-host output; prefixes lines with the host name when several run at once."""

    def __init__(self, name, prefixed=False):
        self.name = name
        self.prefixed = prefixed

    def _fmt(self, parts):
        text = " ".join(str(p) for p in parts)
        if not self.prefixed:
            return text
        return "\n".join(f"[{self.name}] {line}" for line in text.splitlines() or [""])

    def out(self, *parts):
        with _print_lock:
            print(self._fmt(parts), flush=True)

    def note(self, *parts):
        with _print_lock:
            print(self._fmt(parts), file=sys.stderr, flush=True)


@dataclass
class HostResult:
    name: str
    ok: bool
    value: Any = None
    error: Optional[str] = None
    code: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def run_on_hosts(c, host, fn, accept_new=None, summary=True, quiet=False):
    """Call ``fn(conn, spec, reporter)`` for each host; returns [HostResult].

    With one host, exceptions propagate (the task decorator reports them).
    With several, each host's error is caught and summarized; if any failed,
    raises ``invoke.Exit`` with code 1 after the summary.
    """
    inventory = Inventory.load()
    specs = resolve_specs(c, host, inventory)
    if len(specs) == 1:
        spec = specs[0]
        reporter = Reporter(spec.name)
        conn = connect(c, spec, inventory, accept_new=accept_new, notify=reporter.note)
        started = time.monotonic()
        try:
            value = fn(conn, spec, reporter)
        except (invoke.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - name the host in the one-line error
            fail(exc, host=spec.name)
        finally:
            conn.close()
        return [HostResult(spec.name, True, value, seconds=time.monotonic() - started)]

    # Each host gets its own copy of the config, made here, in this thread,
    # before any worker starts: Invoke rebuilds a config on every write, so one
    # shared by threads loses keys (see connect.host_config). The task's
    # context `c` is only read from the workers.
    configs = [host_config(c) for _ in specs]

    def one(spec, config):
        reporter = Reporter(spec.name, prefixed=True)
        started = time.monotonic()
        conn = None
        try:
            conn = connect(c, spec, inventory, accept_new=accept_new, notify=reporter.note, config=config)
            value = fn(conn, spec, reporter)
            return HostResult(spec.name, True, value, seconds=time.monotonic() - started)
        except invoke.Exit as exc:
            return HostResult(
                spec.name,
                False,
                error=str(exc.message or "failed"),
                code=exc.code or 1,
                seconds=time.monotonic() - started,
            )
        except Exception as exc:  # noqa: BLE001 - each host reports its own failure
            described = describe_exception(exc)  # host shown in the summary row
            if described is None:
                message, code = f"internal error: {exc.__class__.__name__}: {exc}", 70
            else:
                message, code = described
            return HostResult(spec.name, False, error=message, code=code, seconds=time.monotonic() - started)
        finally:
            if conn is not None:
                conn.close()

    with ThreadPoolExecutor(max_workers=min(len(specs), 16)) as pool:
        results = list(pool.map(one, specs, configs))
    failed = [r for r in results if not r.ok]
    if summary and not quiet:
        rows = [[r.name, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}s", r.error or ""] for r in results]
        with _print_lock:
            print(table(rows, ["HOST", "RESULT", "TIME", "ERROR"]), file=sys.stderr, flush=True)
    if failed and not quiet:
        raise invoke.Exit(
            f"tiramisu: {len(failed)} of {len(results)} hosts failed: " + ", ".join(r.name for r in failed),
            code=1,
        )
    return results


def emit_results(results, json):
    """With --json: print one object (one host) or a list, then exit 1 if any host failed."""
    if not json:
        return
    from .taskkit import emit_json

    values = [r.value if r.ok else {"host": r.name, "error": r.error} for r in results]
    emit_json(values[0] if len(values) == 1 else values)
    failed = [r for r in results if not r.ok]
    if failed:
        raise invoke.Exit(f"tiramisu: {len(failed)} of {len(results)} hosts failed", code=1)
