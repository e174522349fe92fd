"""The sandbox: a user-level sshd on 127.0.0.1 that logs into this machine as you.

No root needed: sshd runs as the current user on a high port with its own host
key, its own authorized_keys and ``StrictModes no`` (the keys live under the
user's Tiramisu dir, not in ~/.ssh). It is registered in the inventory as
``sandbox``, so every task can target it (``tiramisu setup --host sandbox``)
exactly like a remote box. Root works too (CI): sshd then needs ``/run/sshd``
and logs root in with its key (``PermitRootLogin prohibit-password``).

Files, all under ``<user dir>/sandbox/``::

    ssh_host_ed25519_key{,.pub}   host key          client_ed25519{,.pub}  login key
    authorized_keys               client key        sshd_config, sshd.pid, sshd.log
    state.json                    last port (so a restart keeps the known host line)
"""

import contextlib
import getpass
import json
import os
import pwd
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from . import inventory as invmod
from . import sshd as cmd
from .errors import TiramisuError, ToolMissing, UsageError
from .paths import ensure_dir, user_dir
from .polling import poll_until
from .sshd import add_known_host, proc_alive, proc_comm
from .subproc import last_line, run_local

NAME = "sandbox"
LISTEN = "127.0.0.1"
DEFAULT_PORT = 2222
DEFAULT_HTTP_PORT = 8080
DEFAULT_SERVER_PORT = 9000


class SandboxError(TiramisuError):
    """The sandbox sshd could not be configured, started or stopped."""


@dataclass(frozen=True)
class SandboxPaths:
    dir: Path

    @property
    def host_key(self):
        return self.dir / "ssh_host_ed25519_key"

    @property
    def client_key(self):
        return self.dir / "client_ed25519"

    @property
    def authorized_keys(self):
        return self.dir / "authorized_keys"

    @property
    def config(self):
        return self.dir / "sshd_config"

    @property
    def pid_file(self):
        return self.dir / "sshd.pid"

    @property
    def log(self):
        return self.dir / "sshd.log"

    @property
    def state(self):
        return self.dir / "state.json"


def sandbox_paths(base=None):
    return SandboxPaths(Path(base) if base else user_dir() / NAME)


def current_user():
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


# ------------------------------------------------------------------ pure ---


def render_config(paths, port, user, is_root):
    return cmd.sshd_config(
        port=port,
        listen=LISTEN,
        host_keys=[str(paths.host_key)],
        pid_file=str(paths.pid_file),
        authorized_keys=str(paths.authorized_keys),
        allow_users=[user],
        strict_modes=False,  # keys live under the Tiramisu dir, not ~/.ssh
        permit_root="prohibit-password" if is_root else None,
    )


def choose_port(requested, previous, default, is_free):
    """The port to listen on: an explicit request (must be free), else the last one, else default, else any."""
    if requested is not None:
        if not is_free(requested):
            raise UsageError(f"port {requested} on {LISTEN} is busy; pick another with --port")
        return requested
    for candidate in (previous, default):
        if candidate and is_free(candidate):
            return candidate
    return None  # caller asks the kernel for any free port


# --------------------------------------------------------------- effects ---


def port_is_free(port, host=LISTEN):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError:
            return False
    return True


def any_free_port(host=LISTEN, avoid=()):
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port
    raise SandboxError("no free TCP port on 127.0.0.1")


def _read_state(paths):
    with contextlib.suppress(OSError, ValueError):
        return json.loads(paths.state.read_text())
    return {}


def running_pid(paths):
    """The pid of *our* sandbox sshd (checked by name and config path), or None."""
    try:
        pid = int(paths.pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not proc_alive(pid) or proc_comm(pid) != "sshd":
        return None
    try:
        # The listener rewrites its title ("sshd: /usr/sbin/sshd -f CONF ... [listener]"),
        # so look for the config path anywhere in it.
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return None
    return pid if (b" " + str(paths.config).encode() + b" ") in cmdline + b" " else None


def _keygen(path, comment):
    pub = Path(str(path) + ".pub")
    if not (path.exists() and pub.exists()):
        for stale in (path, pub):  # half a pair is useless: make a new one
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        res = run_local(cmd.keygen_argv(str(path), comment))
        if res.returncode != 0:
            raise SandboxError(f"ssh-keygen failed: {res.stderr.strip()}")


def _wait_ready(port, paths, timeout=15.0):
    """The sshd's pid once it answers with its banner; SandboxError (with its log) if it does not in time."""

    def answering():
        pid = running_pid(paths)
        if pid:
            with contextlib.suppress(OSError):
                with socket.create_connection((LISTEN, port), timeout=2) as s:
                    s.settimeout(5)
                    if s.recv(64).startswith(b"SSH-"):
                        return pid
        return None

    return poll_until(
        answering,
        timeout,
        interval=0.05,
        on_timeout=lambda: SandboxError(f"sandbox sshd did not come up on {LISTEN}:{port}: {_log_tail(paths)}"),
    )


def _log_tail(paths):
    with contextlib.suppress(OSError):
        lines = paths.log.read_text().strip().splitlines()
        if lines:
            return lines[-1]
    return "no log"


def _kill_unverified(paths):
    """After a failed start: stop the sshd we just launched (its pid file, if it is an sshd)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(paths.pid_file.read_text().split()[0])
        if proc_comm(pid) == "sshd":
            os.kill(pid, signal.SIGKILL)


def status(paths=None):
    paths = paths or sandbox_paths()
    state = _read_state(paths)
    pid = running_pid(paths)
    return {
        "name": NAME,
        "state": "running" if pid else "stopped",
        "pid": pid,
        "hostname": LISTEN,
        "port": state.get("port"),
        "user": state.get("user") or current_user(),
        "key": str(paths.client_key),
        "dir": str(paths.dir),
    }


def up(port=None, paths=None, inventory_path=None, note=lambda *a: None):
    """Start the sandbox sshd (if not running) and register it; returns status() plus inventory info."""
    paths = paths or sandbox_paths()
    sshd = cmd.SSHD
    if not os.path.exists(sshd):
        raise ToolMissing("openssh-server is not installed (apt-get install openssh-server): no /usr/sbin/sshd")
    for tool in ("ssh-keygen",):
        if not any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":")):
            raise ToolMissing(f"{tool} is not installed (apt-get install openssh-client)")
    if port is not None:
        try:
            port = int(port)
        except ValueError:
            raise UsageError(f"--port must be a number, got {port!r}") from None
        if not 1 <= port <= 65535:
            raise UsageError(f"--port must be 1..65535, got {port}")
    user = current_user()
    is_root = os.geteuid() == 0
    pid = running_pid(paths)
    state = _read_state(paths)
    started = False
    if pid and port is not None and port != state.get("port"):
        raise UsageError(f"the sandbox already runs on port {state.get('port')}; run sandbox.down first")
    if not pid:
        ensure_dir(paths.dir)
        _keygen(paths.host_key, f"tiramisu-sandbox-host@{socket.gethostname()}")
        _keygen(paths.client_key, f"tiramisu-sandbox-client@{socket.gethostname()}")
        paths.authorized_keys.write_text(Path(str(paths.client_key) + ".pub").read_text())
        os.chmod(paths.authorized_keys, 0o600)
        chosen = choose_port(port, state.get("port"), DEFAULT_PORT, port_is_free) or any_free_port()
        paths.config.write_text(render_config(paths, chosen, user, is_root))
        if is_root:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        check = run_local([sshd, "-t", "-f", paths.config])
        if check.returncode != 0:
            raise SandboxError(f"sshd rejects the sandbox config {paths.config}: {last_line(check.stderr, '?')}")
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file.unlink()
        note(f"sandbox: starting sshd on {LISTEN}:{chosen} as {user}")
        res = run_local([sshd, "-f", paths.config, "-E", paths.log])
        if res.returncode != 0:
            raise SandboxError(
                f"sshd failed to start (exit {res.returncode}): {last_line(res.stderr) or _log_tail(paths)}"
            )
        try:
            pid = _wait_ready(chosen, paths)
        except SandboxError:
            _kill_unverified(paths)
            raise
        state = {"port": chosen, "user": user}
        paths.state.write_text(json.dumps(state))
        started = True
    entry = register(paths, state["port"], user, inventory_path)
    result = status(paths)
    result.update(
        started=started, inventory=entry["inventory"], settings=entry["settings"], known_hosts=entry["known_hosts"]
    )
    return result


def register(paths, port, user, inventory_path=None):
    """Write (or refresh) the ``sandbox`` entry and its host key; keep the user's settings."""
    host_pub = Path(str(paths.host_key) + ".pub").read_text()
    with invmod.locked_inventory(inventory_path) as inv:
        old = inv.hosts.get(NAME)
        settings = dict(old.settings) if old else {}
        # The sandbox box is this machine: give each sandbox (one per user dir)
        # its own env dir so two of them, or a real install, never share one.
        settings.setdefault("env_dir", str(paths.dir / "env"))
        taken = {port}
        for key, default in (("http_port", DEFAULT_HTTP_PORT), ("server_port", DEFAULT_SERVER_PORT)):
            if key not in settings:
                value = default if default not in taken and port_is_free(default) else any_free_port(avoid=taken)
                settings[key] = value
            taken.add(settings[key])
        inv.hosts[NAME] = invmod.HostEntry(
            name=NAME,
            hostname=LISTEN,
            user=user,
            port=port,
            key=str(paths.client_key),
            groups=list(old.groups) if old else [],
            settings=settings,
            facts=dict(old.facts) if old else {},
        )
        known = inv.known_hosts_path
        add_known_host(known, cmd.known_hosts_line(LISTEN, port, host_pub))
        path = inv.path
    return {"inventory": str(path), "known_hosts": str(known), "settings": settings}


def down(paths=None, grace=5.0):
    """Stop the sandbox sshd by pid (TERM, then KILL); the inventory entry stays."""
    paths = paths or sandbox_paths()
    pid = running_pid(paths)
    if pid:
        os.kill(pid, signal.SIGTERM)
        gone = lambda: True if not proc_alive(pid) else None  # noqa: E731
        if not poll_until(gone, grace, interval=0.05):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            poll_until(gone, 5, interval=0.05)
        with contextlib.suppress(FileNotFoundError):
            paths.pid_file.unlink()
    result = status(paths)
    result["stopped"] = bool(pid)
    return result
