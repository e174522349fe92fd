"""One exclusive lock per box: every change to a box happens under it.

The lock is a directory, ``<env>/state/lock`` (``mkdir`` either creates it or
fails, atomically, on every POSIX file system and shell), holding one
``info`` file of ``key=value`` lines written by the holder (temp + rename)::

    who=alice@laptop      the local user@host that holds it
    host=laptop           the local host name (for the pid check)
    pid=4242              the local process
    task=deploy           what it is doing: setup, deploy, rollback, ...
    app=hello             the app, when there is one
    release=3f2a...       what is being switched to (sha256 prefix or release id)
    since=2026-11-30T12:00:00Z
    token=...             a random id: only its holder releases or refreshes it

The holder refreshes the info file's mtime (its heartbeat) every
:data:`HEARTBEAT_EVERY` seconds from a thread while it holds the lock. A
lock is *stale* when its heartbeat is older than :data:`STALE_AFTER` seconds
(measured by the box's own clock, so the two machines' clocks do not matter),
or when its holder ran on this very machine and its pid is gone. A stale
lock is never broken by another change: it is reported, and
``tiramisu lock.release --host H`` breaks it.

A change that finds the lock held retries until ``lock_wait`` seconds have
passed, then gives up with :class:`LockBusy` (exit 1) naming the holder.
"""

import getpass
import os
import secrets
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Optional

from . import commands as cmd
from .errors import RemoteError, TiramisuError, UsageError

HEARTBEAT_EVERY = 5.0  # seconds between two touches of the info file by the holder
STALE_AFTER = 30  # seconds without a heartbeat after which a lock counts as abandoned
RETRY_EVERY = 0.25  # seconds between two attempts while waiting
DEFAULT_WAIT = 10  # the lock_wait setting's default (options.SETTINGS)


class LockBusy(TiramisuError):
    """Another change holds the box's lock (exit 1)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a box's lock, from its info file (``age``: seconds since its heartbeat)."""

    who: str = "?"
    host: str = ""
    pid: Optional[int] = None
    task: str = "?"
    app: str = ""
    release: str = ""
    since: str = ""
    token: str = ""
    age: Optional[int] = None

    def what(self):
        return " ".join(p for p in (self.task, self.app, self.release[:12]) if p)

    def describe(self):
        """``alice@laptop (pid 4242): deploy hello 3f2a, since ..., heartbeat 2s ago``."""
        pid = f" (pid {self.pid})" if self.pid else ""
        beat = f", heartbeat {self.age}s ago" if self.age is not None else ""
        since = f", since {self.since}" if self.since else ""
        return f"{self.who}{pid}: {self.what()}{since}{beat}"

    def as_dict(self):
        return {
            "who": self.who,
            "host": self.host,
            "pid": self.pid,
            "task": self.task,
            "app": self.app or None,
            "release": self.release or None,
            "since": self.since,
            "heartbeat_age": self.age,
        }


def info_lines(task, app, release, token, identity, now):
    """The info file's lines (pure). ``identity``: (user, host, pid); ``now``: epoch seconds."""
    user, host, pid = identity
    fields = {
        "who": f"{user}@{host}",
        "host": host,
        "pid": pid,
        "task": task,
        "app": app or "",
        "release": release or "",
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "token": token,
    }
    # One line per field: a value never carries a newline into the file.
    return [f"{k}={' '.join(str(v).split())}" for k, v in fields.items()]


def parse_holder(lines):
    """A :class:`Holder` from info lines plus ``age=`` (pure); unknown keys are ignored."""
    values = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    pid = values.get("pid", "")
    age = values.get("age", "")
    return Holder(
        who=values.get("who") or "unknown holder (no info file yet)",
        host=values.get("host", ""),
        pid=int(pid) if pid.isdigit() else None,
        task=values.get("task", "?"),
        app=values.get("app", ""),
        release=values.get("release", ""),
        since=values.get("since", ""),
        token=values.get("token", ""),
        age=int(age) if age.lstrip("-").isdigit() else None,
    )


def parse_lock_output(text):
    """(``acquired``/``held``/``free``, Holder or None, client address) from a lock command's output (pure)."""
    lines = [ln for ln in (text or "").splitlines() if ln.strip()]
    client = next((ln.split("=", 1)[1] for ln in lines if ln.startswith("client=")), "")
    rest = [ln for ln in lines if not ln.startswith("client=")]
    word = rest[0].strip() if rest else ""
    if word == cmd.LOCK_HELD:
        return word, parse_holder(rest[1:]), client
    if word in (cmd.LOCK_ACQUIRED, cmd.LOCK_FREE, cmd.LOCK_NO_ENV):
        return word, None, client
    raise RemoteError(f"unexpected answer from the box's lock: {(text or '').strip()[:200]!r}")


def is_stale(holder, local_host, pid_alive, stale_after=STALE_AFTER):
    """Whether the holder is gone (pure, given ``pid_alive(pid)`` for this machine).

    Stale: no heartbeat for ``stale_after`` seconds, or the holder ran here
    (same host name) and its process no longer exists.
    """
    if holder.age is not None and holder.age > stale_after:
        return True
    if holder.host and holder.host == local_host and holder.pid:
        return not pid_alive(holder.pid)
    return False


def local_identity():
    """(user, host name, pid) of this process: who takes a lock from here."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname(), os.getpid()


def local_pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def holder_state(holder):
    """``stale`` or ``fresh`` for a holder seen from this machine."""
    return "stale" if is_stale(holder, socket.gethostname(), local_pid_alive) else "fresh"


def busy_message(box, holder, waited):
    gone = holder_state(holder) == "stale"
    advice = (
        f"its holder is gone: break it with tiramisu lock.release --host {box.name}"
        if gone
        else "try again later or give a longer --lock-wait"
    )
    return f"{box.name} is locked by {holder.describe()}; waited {waited:.0f}s; {advice}"


class Held:
    """A lock this process holds on one box; :meth:`release` it (the context manager does)."""

    def __init__(self, box, token, client, waited, heartbeat_every=HEARTBEAT_EVERY):
        self.box = box
        self.token = token
        self.client = client  # the address the box sees us come from
        self.waited = waited  # seconds spent waiting for another holder (0.0: it was free)
        self.lost = False
        self.released = False
        self.tidy = False  # set for setup's lock: an env it created and left empty goes again
        self._stop = threading.Event()
        self._thread = None
        if heartbeat_every:
            self._thread = threading.Thread(
                target=self._beat, args=(heartbeat_every,), name=f"lock-heartbeat-{box.name}", daemon=True
            )
            self._thread.start()

    def _beat(self, every):
        while not self._stop.wait(every):
            try:
                out = self.box.run(cmd.lock_heartbeat(self.box.layout, self.token), warn=True, timeout=20).stdout
            except Exception:  # noqa: BLE001 - a missed beat is retried; the change itself reports errors
                continue
            if out.strip() == "lost" and not self.lost:
                self.lost = True
                self.box.note(f"{self.box.name}: the box's lock was broken by someone else while this change held it")

    def _stop_heartbeat(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def release(self):
        """Stop the heartbeat and remove the lock if it is still ours (never raises for a lost lock).

        A no-op after :meth:`run_and_release` already released it.
        """
        self._stop_heartbeat()
        if self.released:
            return True
        out = self.box.run(cmd.lock_release(self.box.layout, self.token, self.tidy), warn=True, timeout=30).stdout
        self.released = True
        return out.strip() == "released"

    def run_and_release(self, command):
        """Run the change's last command and release the lock in the same round trip.

        The lock is released whether ``command`` succeeds or not; its exit
        status is the result (a failure raises as ``box.run`` does).
        """
        self._stop_heartbeat()
        self.released = True
        return self.box.run(cmd.then_always(command, cmd.lock_release(self.box.layout, self.token, self.tidy)))


def acquire(
    box, task, app=None, release=None, wait=None, heartbeat_every=HEARTBEAT_EVERY, identity=None, create_env=False
):
    """Take ``box``'s lock for ``task``, waiting up to ``wait`` seconds (default:
    the box's ``lock_wait`` setting); returns a :class:`Held`.

    Raises :class:`LockBusy` naming the holder when it is still held after
    ``wait``; RemoteError when the state folder cannot be made.
    """
    if wait is None:
        wait = box.settings.get("lock_wait", DEFAULT_WAIT)
    wait = float(wait if wait is not None else DEFAULT_WAIT)
    token = secrets.token_hex(8)
    lines = info_lines(task, app, release, token, identity or local_identity(), time.time())
    command = cmd.lock_acquire(box.layout, lines, create_env=create_env)
    started = time.monotonic()
    announced = False
    while True:
        result = box.run(command, warn=True, timeout=30)
        if not result.ok:
            why = (result.stderr or result.stdout).strip().splitlines()
            raise RemoteError(
                f"cannot take the lock on {box.name} ({box.layout.lock_dir}): {why[-1] if why else 'mkdir failed'}"
            )
        word, holder, client = parse_lock_output(result.stdout)
        waited = time.monotonic() - started
        if word == cmd.LOCK_NO_ENV:
            raise UsageError(
                f"Tiramisu is not installed on {box.name} ({box.layout.root}): run setup --host {box.name} first"
            )
        if word == cmd.LOCK_ACQUIRED:
            held_lock = Held(box, token, client, waited if announced else 0.0, heartbeat_every)
            held_lock.tidy = create_env
            return held_lock
        if waited >= wait:
            raise LockBusy(busy_message(box, holder, waited))
        if not announced:
            box.note(f"{box.name}: waiting up to {wait:.0f}s for the lock held by {holder.describe()}")
            announced = True
        time.sleep(min(RETRY_EVERY, max(0.0, wait - waited)))


@contextmanager
def held(box, task, app=None, release=None, wait=None, heartbeat_every=HEARTBEAT_EVERY, create_env=False):
    """``with held(box, "deploy", app): ...``: the lock for the block (see :func:`acquire`)."""
    lock = acquire(box, task, app, release, wait, heartbeat_every, create_env=create_env)
    try:
        yield lock
    finally:
        try:
            lock.release()
        except Exception as exc:  # noqa: BLE001 - never hide the change's own error; the lock goes stale
            box.note(
                f"{box.name}: could not release the box's lock ({exc}); lock.status shows it, lock.release breaks it"
            )


@contextmanager
def locked(open_box, task, app=None, release=None, wait=None, create_env=False):
    """The task layer's way in: ``with locked(lambda: connect_box(...), "webserv.start") as box:``.

    ``open_box()`` observes the box (a probe) and returns its Box. A box
    without an env dir has nothing to protect: it is yielded unlocked
    (unless ``create_env``: setup makes it). When the lock had to be waited
    for, the box is observed again under the lock: the other change may
    have changed what the first look saw.
    """
    box = open_box()
    if not create_env and not box.report.get("env_exists"):
        yield box
        return
    with held(box, task, app, release, wait, create_env=create_env) as lock:
        yield open_box() if lock.waited else box


# --------------------------------------------------- status / release ---


def observe(box):
    """(``free``/``held``, Holder or None): one read of the box's lock."""
    word, holder, _ = parse_lock_output(box.run(cmd.lock_status(box.layout)).stdout)
    return word, holder


def status(box):
    """{host, state: free|held, holder, stale, description, lock}: who holds the box's lock (read only)."""
    word, holder = observe(box)
    if word == cmd.LOCK_FREE:
        return {"host": box.name, "state": "free", "holder": None, "stale": None, "lock": box.layout.lock_dir}
    return {
        "host": box.name,
        "state": "held",
        "holder": holder.as_dict(),
        "stale": holder_state(holder) == "stale",
        "description": holder.describe(),
        "lock": box.layout.lock_dir,
    }


def break_lock(box, force=False, confirm=None):
    """Break the box's lock when its holder is gone (or ``force``); returns {host, state, broken, holder}.

    ``confirm(question)`` is asked before breaking (the task asks on a
    terminal). Raises :class:`LockBusy` for a fresh lock without ``force``.
    """
    word, holder = observe(box)
    if word == cmd.LOCK_FREE:
        return {"host": box.name, "state": "free", "broken": False, "holder": None}
    if holder_state(holder) != "stale" and not force:
        raise LockBusy(
            f"{box.name}'s lock is not stale ({holder.describe()}; stale after {STALE_AFTER}s "
            f"without a heartbeat, or when its pid on this machine is gone): not broken; --force breaks it anyway"
        )
    if confirm is not None:
        confirm(f"Break the lock on {box.name} held by {holder.describe()}?")
    word = box.run(cmd.lock_break(box.layout, holder.token)).stdout.strip()
    if word == "changed":
        raise LockBusy(f"{box.name}'s lock changed hands while breaking it: nothing done; look again with lock.status")
    return {"host": box.name, "state": "free", "broken": word == "broken", "holder": holder.as_dict()}
