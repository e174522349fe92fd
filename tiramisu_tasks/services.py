"""The two services on the box (nginx, custom_server): command builders (pure).

Processes are started with ``nohup setsid ... </dev/null >LOG 2>&1 &`` and run
with ``pty=False``: otherwise Fabric waits for them or the SSH session end
kills them (FACTS.md). Each service writes its own pid file in ``run/``;
liveness is judged by pid *and* process name (``/proc/PID/comm``) so a recycled
pid is reported as stale, not running.
"""

from dataclasses import dataclass

from .layout import RemoteLayout
from .remote import join, q

SERVICES = ("server", "nginx")  # start order; stop in reverse


@dataclass(frozen=True)
class Service:
    name: str  # server | nginx
    comm: str  # what /proc/PID/comm says
    stop_signal: str  # graceful stop
    out_log: str  # stdout/stderr of the process itself


def service(name):
    if name == "server":
        return Service("server", "custom_server", "TERM", "server.out")
    if name == "nginx":
        return Service("nginx", "nginx", "QUIT", "nginx.out")
    raise ValueError(name)


def exec_argv(layout: RemoteLayout, name):
    """argv of the service's foreground process (pure)."""
    if name == "server":
        return [layout.server_bin, "--config", layout.server_conf]
    return [layout.nginx_bin, "-p", layout.root, "-c", layout.nginx_conf, "-e",
            layout.log_file("nginx-error.log"), "-g", "daemon off;"]


def start_command(layout, name):
    """Start detached; prints the new pid (pure)."""
    svc = service(name)
    argv = exec_argv(layout, name)
    out = layout.log_file(svc.out_log)
    # `cd || exit` first: with `cd && cmd &` the whole list would be the
    # background job and $! would be a subshell's pid, not the service's.
    return f"cd {q(layout.root)} || exit 1; nohup setsid {join(argv)} </dev/null >>{q(out)} 2>&1 & echo $!"


def is_ours(pid_expr, comm):
    """sh test: the pid is alive, not a zombie, and runs our program (pure).

    A killed process can linger as a zombie until its parent (often pid 1)
    reaps it; its comm still reads like ours, so the state letter decides.
    """
    return (f'[ "$(cat /proc/{pid_expr}/comm 2>/dev/null)" = {comm} ] && '
            f'! grep -q "^State:[[:space:]]*Z" /proc/{pid_expr}/status 2>/dev/null')


def pid_state_script(layout, name):
    """Prints ``<pid> running|stale|stopped`` (pure)."""
    svc = service(name)
    pidfile = q(layout.pid_file(name))
    return (
        f'p=$(cat {pidfile} 2>/dev/null); '
        f'if [ -z "$p" ]; then echo "- stopped"; '
        f'elif {is_ours("$p", q(svc.comm))}; then echo "$p running"; '
        f'else echo "$p stale"; fi'
    )


def stop_command(layout, name, timeout=10):
    """Graceful signal, wait up to timeout, then SIGKILL; removes the pid file (pure).

    Prints one of: ``stopped``, ``killed``, ``not-running``, ``stale``.
    """
    svc = service(name)
    pidfile = q(layout.pid_file(name))
    ticks = int(timeout * 10)
    return (
        f'p=$(cat {pidfile} 2>/dev/null); '
        f'if [ -z "$p" ]; then echo not-running; exit 0; fi; '
        f'if ! {{ {is_ours("$p", q(svc.comm))}; }}; then rm -f {pidfile}; echo stale; exit 0; fi; '
        f'kill -{svc.stop_signal} "$p" 2>/dev/null; i=0; '
        f'while {is_ours("$p", q(svc.comm))} && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; '
        f'if {is_ours("$p", q(svc.comm))}; then kill -KILL "$p"; sleep 0.2; rm -f {pidfile}; echo killed; '
        f'else rm -f {pidfile}; echo stopped; fi'
    )


def nginx_test_command(layout, conf_path=None):
    """``nginx -t`` for a config (pure); conf_path lets setup test before switching."""
    return join([layout.nginx_bin, "-t", "-q", "-p", layout.root, "-c", conf_path or layout.nginx_conf,
                 "-e", layout.log_file("nginx-error.log")])


def nginx_reload_command(layout):
    return join([layout.nginx_bin, "-s", "reload", "-p", layout.root, "-c", layout.nginx_conf,
                 "-e", layout.log_file("nginx-error.log")])


def tail_out_command(layout, name, lines=5):
    return join(["tail", "-n", str(lines), layout.log_file(service(name).out_log)]) + " 2>/dev/null; true"


def boot_line(layout):
    """The crontab ``@reboot`` line that starts both services (pure)."""
    # cron runs /bin/sh with a minimal environment; the commands are plain sh.
    parts = [f"cd {q(layout.root)}"]
    for name in SERVICES:
        out = layout.log_file(service(name).out_log)
        parts.append(f"(nohup setsid {join(exec_argv(layout, name))} </dev/null >>{q(out)} 2>&1 &)")
        parts.append("sleep 1")
    return "@reboot " + " && ".join(parts) + f" # tiramisu:{layout.root}"
