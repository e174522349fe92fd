"""Rolling deploys: one built app to many hosts, a batch at a time.

``deploy --host GROUP --batch N|P% [--pause S] [--max-failed K] [--keep-partial]``

- The hosts, sorted by name, are cut into batches of ``N`` hosts (or ``P``
  percent of them, rounded up, at least one): :func:`plan_batches`, pure.
- Per batch: the boxes' locks are taken one after the other in that sorted
  order (two rollouts over the same fleet then queue on the same first host
  instead of each holding half), the batch deploys in parallel, the locks go.
- Failures are counted over the whole rollout; once more than ``K`` hosts
  have failed (default 0), the rollout stops after that batch: the hosts it
  already updated are switched back to the release they had
  (``--keep-partial`` leaves them), hosts of later batches are not touched.
- ``--pause`` seconds pass between two batches.

The runner uses the same per-host procedures as a plain deploy
(:func:`deploy.deploy_held`, :func:`deploy.restore_held`), so every host's
history records each attempt and each restore.
"""

import math
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .errors import UsageError

_BATCH = re.compile(r"^\s*([0-9]+)\s*(%?)\s*$")


@dataclass(frozen=True)
class BatchSpec:
    """``--batch``: a host count, or a percentage of the hosts."""

    count: int
    percent: bool = False

    def size(self, hosts):
        if self.percent:
            return max(1, math.ceil(hosts * self.count / 100))
        return self.count


def parse_batch(text):
    """``"2"`` -> 2 hosts, ``"25%"`` -> a quarter of them (pure); UsageError otherwise."""
    m = _BATCH.match(str(text))
    if not m or int(m.group(1)) < 1 or (m.group(2) and int(m.group(1)) > 100):
        raise UsageError(f"--batch: expected a host count (e.g. 2) or a percentage 1-100% (e.g. 25%), got {text!r}")
    return BatchSpec(int(m.group(1)), bool(m.group(2)))


def plan_batches(hosts, spec):
    """The batches, in order: the host names sorted, cut by ``spec`` (pure)."""
    names = sorted(set(hosts))
    if not names:
        return ()
    size = spec.size(len(names))
    return tuple(tuple(names[i : i + size]) for i in range(0, len(names), size))


def should_stop(failed_so_far, max_failed):
    """Whether the rollout stops after this batch (pure): more than ``max_failed`` hosts failed."""
    return failed_so_far > max_failed


@dataclass
class HostOutcome:
    """One host's line of the rollout summary."""

    host: str
    batch: int
    result: str = "untouched"  # updated, unchanged, failed, restored, restore-failed, untouched
    old: Optional[str] = None
    new: Optional[str] = None
    seconds: float = 0.0
    error: Optional[str] = None
    code: int = 0
    summary: dict = field(default_factory=dict)

    def row(self):
        return [
            self.host,
            self.batch + 1,
            self.old or "-",
            self.new or "-",
            self.result,
            f"{self.seconds:.1f}s",
            self.error or "",
        ]

    def as_dict(self):
        return {
            "host": self.host,
            "batch": self.batch + 1,
            "old": self.old,
            "new": self.new,
            "result": self.result,
            # the CLI contract's per-host fields: ok when the host ended on the new release
            "ok": self.result in ("updated", "unchanged"),
            "exit_code": 0 if self.result in ("updated", "unchanged") else (self.code or 1),
            "seconds": round(self.seconds, 2),
            "error": self.error,
        }


HEADERS = ["HOST", "BATCH", "OLD", "NEW", "RESULT", "TIME", "ERROR"]


@dataclass
class Rollout:
    """The result: per-host outcomes and whether the rollout stopped early."""

    app: str
    batches: Tuple[Tuple[str, ...], ...]
    outcomes: List[HostOutcome]
    stopped_after: Optional[int] = None  # batch index
    kept_partial: bool = False

    @property
    def failed(self):
        return [o for o in self.outcomes if o.result in ("failed", "restore-failed")]

    @property
    def ok(self):
        return not self.failed and self.stopped_after is None

    def as_dict(self):
        return {
            "app": self.app,
            "batches": [list(b) for b in self.batches],
            "stopped_after_batch": None if self.stopped_after is None else self.stopped_after + 1,
            "kept_partial": self.kept_partial,
            "ok": self.ok,
            "exit_code": 0 if self.ok else 1,
            "hosts": [o.as_dict() for o in self.outcomes],
        }


def _describe(exc):
    from .taskkit import describe_exception

    described = describe_exception(exc)
    if described is None:
        return f"internal error: {exc.__class__.__name__}: {exc}", 70
    return described


def run_rollout(
    app, open_box, hosts, spec, deploy_one, restore_one, acquire, pause=0, max_failed=0, keep_partial=False
):
    """Carry out a rolling deploy; returns a :class:`Rollout` (never raises for a host's failure).

    ``open_box(name)`` -> Box; ``acquire(box)`` -> a held lock (boxlock.Held);
    ``deploy_one(box, lock)`` -> the deploy summary; ``restore_one(box, lock,
    previous)`` switches the app back. The effects come in as functions so the
    orchestration tests run this over fake boxes.
    """
    batches = plan_batches(hosts, spec)
    outcomes = {name: HostOutcome(name, i) for i, batch in enumerate(batches) for name in batch}
    boxes = {}
    failed = 0
    rollout = Rollout(app, batches, [outcomes[n] for b in batches for n in b])
    for index, batch in enumerate(batches):
        if index and pause:
            time.sleep(pause)
        locks = {}
        for name in batch:  # one after the other, in sorted order (see the module docstring)
            started = time.monotonic()
            try:
                boxes[name] = boxes.get(name) or open_box(name)
                locks[name] = acquire(boxes[name])
            except Exception as exc:  # noqa: BLE001 - this host fails; the batch goes on
                outcome = outcomes[name]
                outcome.result, outcome.seconds = "failed", time.monotonic() - started
                outcome.error, outcome.code = _describe(exc)

        def one(name, locks=locks):
            outcome = outcomes[name]
            started = time.monotonic()
            try:
                summary = deploy_one(boxes[name], locks[name])
                outcome.summary = summary
                outcome.old = summary.get("previous") if summary.get("changed") else summary.get("release")
                outcome.new = summary.get("release")
                outcome.result = "updated" if summary.get("changed") else "unchanged"
            except Exception as exc:  # noqa: BLE001 - each host reports its own failure
                outcome.result = "failed"
                outcome.error, outcome.code = _describe(exc)
            finally:
                outcome.seconds += time.monotonic() - started
                try:
                    locks[name].release()
                except Exception:  # noqa: BLE001 - a lock left behind goes stale and is reported by lock.status
                    pass

        if locks:
            with ThreadPoolExecutor(max_workers=min(len(locks), 16)) as pool:
                list(pool.map(one, sorted(locks)))
        failed += sum(1 for n in batch if outcomes[n].result == "failed")
        if should_stop(failed, max_failed):
            rollout.stopped_after = index
            break
    if rollout.stopped_after is not None and not keep_partial:
        _restore(rollout, boxes, restore_one, acquire)
    rollout.kept_partial = rollout.stopped_after is not None and keep_partial
    for box in boxes.values():
        close = getattr(getattr(box.effects, "conn", None), "close", None)
        if close is not None:
            close()
    return rollout


def _restore(rollout, boxes, restore_one, acquire):
    """Switch every host this rollout updated back (sorted order, one lock at a time)."""
    lock_out = threading.Lock()
    for outcome in sorted(rollout.outcomes, key=lambda o: o.host):
        if outcome.result != "updated":
            continue
        started = time.monotonic()
        box = boxes[outcome.host]
        try:
            lock = acquire(box)
            try:
                restore_one(box, lock, outcome.summary.get("previous"))
            finally:
                lock.release()
            with lock_out:
                outcome.result = "restored"
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            outcome.result = "restore-failed"
            outcome.error, outcome.code = _describe(exc)
        outcome.seconds += time.monotonic() - started


def summary_text(rollout):
    """The per-host table and one closing line (for the terminal)."""
    from .taskkit import table

    lines = [table([o.row() for o in rollout.outcomes], HEADERS)]
    if rollout.stopped_after is not None:
        what = "kept as they are (--keep-partial)" if rollout.kept_partial else "switched back"
        lines.append(
            f"rollout of {rollout.app} stopped after batch {rollout.stopped_after + 1} of {len(rollout.batches)}: "
            f"{len(rollout.failed)} host(s) failed; updated hosts {what}; later batches untouched"
        )
    else:
        lines.append(f"rollout of {rollout.app}: {len(rollout.batches)} batch(es), all hosts done")
    return "\n".join(lines)
