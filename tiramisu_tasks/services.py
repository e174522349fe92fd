"""The two services on the box (nginx, custom_server): command builders (pure).

Processes are started with ``nohup setsid ... </dev/null >LOG 2>&1 &`` and run
with ``pty=False``: otherwise Fabric waits for them (they would hold the
channel's output open) or the end of the SSH session kills them (SIGHUP to
the session's processes). Each service writes its own pid file in ``run/``;
liveness is judged by pid *and* process name (``/proc/PID/comm``) so a recycled
pid is reported as stale, not running.

Pid files are not the whole truth: a master killed with -9 leaves its workers
serving the port (nginx listens with ``reuseport``, so a new master binds
beside them). :func:`env_processes_fn` finds every process of this env
directly in ``/proc`` (see there), :func:`classify` (pure) tells the pid-file
process and its children from *orphans*, and :func:`reap_command` stops
orphans; status reports them, start and stop clean them.
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
    return [
        layout.nginx_bin,
        "-p",
        layout.root,
        "-c",
        layout.nginx_conf,
        "-e",
        layout.log_file("nginx-error.log"),
        "-g",
        "daemon off;",
    ]


def start_command(layout, name):
    """Start detached; prints the new pid (pure)."""
    svc = service(name)
    argv = exec_argv(layout, name)
    out = layout.log_file(svc.out_log)
    # `cd || exit` first: with `cd && cmd &` the whole list would be the
    # background job and $! would be a subshell's pid, not the service's.
    return f"cd {q(layout.root)} || exit 1; nohup setsid {join(argv)} </dev/null >>{q(out)} 2>&1 & echo $!"


def env_processes_fn(layout):
    """An sh function ``envprocs`` printing ``PID PPID COMM`` for each live process of this env (pure).

    A process belongs to the env when it is owned by the box user (``-O``),
    its ``comm`` is one of our programs, and its working directory is the env
    root (both services are started from there and never chdir) or its
    executable is one of ours. ``comm`` and ``cwd`` are right under qemu-user
    too, where ``exe`` and ``cmdline`` name the emulator (binfmt_misc starts qemu, which runs our
    program in its own process); ``-ef``
    compares inodes, so symlinks in $HOME don't matter. Only shell builtins
    run per process: every exec costs 60-90 ms on an emulated box.
    """
    root = q(layout.root)
    comms = "|".join(service(n).comm for n in SERVICES)
    bins = " || ".join(
        f'[ "$d/exe" -ef {q(layout.server_bin if n == "server" else layout.nginx_bin)} ]' for n in SERVICES
    )
    return (
        "envprocs() { for d in /proc/[0-9]*; do "
        '[ -O "$d" ] || continue; '
        'read -r c 2>/dev/null < "$d/comm" || continue; '
        f'case "$c" in {comms}) ;; *) continue ;; esac; '
        f'{{ [ "$d/cwd" -ef {root} ] || {bins}; }} 2>/dev/null || continue; '
        'read -r s 2>/dev/null < "$d/stat" || continue; s=${s##*) }; set -- $s; '
        '[ "$1" = Z ] && continue; '
        'echo "${d#/proc/} $2 $c"; done; }'
    )


def parse_env_processes(text):
    """``PID PPID COMM`` lines → [(pid, ppid, comm)] (pure); other lines are ignored."""
    rows = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            rows.append((int(parts[0]), int(parts[1]), parts[2]))
    return rows


def classify(name, pid, state, rows):
    """(state, orphans) of one service from its pid-file state and the env's processes (pure).

    Orphans: processes of this service in this env that are neither the
    pid-file process (when it runs) nor its children (nginx workers). When the
    pid file names nothing alive but orphans exist, the state is ``orphaned``.
    """
    comm = service(name).comm
    main = pid if state == "running" else None
    orphans = sorted(p for p, ppid, c in rows if c == comm and main not in (p, ppid))
    if orphans and state != "running":
        state = "orphaned"
    return state, orphans


def reap_command(layout, name, keep=None, timeout=5):
    """Stop this service's orphans: graceful signal, then SIGKILL after timeout (pure).

    ``keep``: the pid-file process to spare with its children (None: spare
    nothing). The set is looked up again before every signal, so a pid reused
    meanwhile by someone else is never hit. Prints ``reaped PID...`` (maybe none).
    """
    svc = service(name)
    keep = int(keep) if keep else 0
    ticks = int(timeout * 10)
    return (
        f"{env_processes_fn(layout)}; "
        f"orphans() {{ envprocs | while read -r p pp c; do "
        f'[ "$c" = {q(svc.comm)} ] && [ "$p" != {keep} ] && [ "$pp" != {keep} ] && echo "$p"; done; }}; '
        "v=$(orphans); "
        f'if [ -n "$v" ]; then kill -{svc.stop_signal} $v 2>/dev/null; i=0; '
        f'while [ -n "$(orphans)" ] && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; '
        'w=$(orphans); if [ -n "$w" ]; then kill -KILL $w 2>/dev/null; fi; fi; '
        'echo "reaped" $v'
    )


def parse_reaped(text):
    """The pids a :func:`reap_command` stopped (pure)."""
    for line in reversed((text or "").splitlines()):
        if line.startswith("reaped"):
            return [int(w) for w in line.split()[1:] if w.isdigit()]
    return []


def is_ours(pid_expr, comm):
    """sh test: the pid is alive, not a zombie, and runs our program (pure).

    A killed process can linger as a zombie until its parent (often pid 1)
    reaps it; its comm still reads like ours, so the state letter decides.
    """
    return (
        f'[ "$(cat /proc/{pid_expr}/comm 2>/dev/null)" = {comm} ] && '
        f'! grep -q "^State:[[:space:]]*Z" /proc/{pid_expr}/status 2>/dev/null'
    )


def pid_state_script(layout, name):
    """Prints ``<pid> running|stale|stopped`` (pure)."""
    svc = service(name)
    pidfile = q(layout.pid_file(name))
    return (
        f"p=$(cat {pidfile} 2>/dev/null); "
        f'if [ -z "$p" ]; then echo "- stopped"; '
        f'elif {is_ours("$p", q(svc.comm))}; then echo "$p running"; '
        f'else echo "$p stale"; fi'
    )


def observe_command(layout):
    """Pid-file states of both services, then every process of the env (pure).

    Prints ``state NAME PID STATE`` lines and ``PID PPID COMM`` lines; see
    :func:`parse_observed`.
    """
    states = "; ".join(f"echo state {name} $({pid_state_script(layout, name)})" for name in SERVICES)
    return f"{states}; {env_processes_fn(layout)}; envprocs"


def parse_observed(text):
    """Output of :func:`observe_command` → {name: {pid, state, orphans}} (pure)."""
    pidfiles = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[0] == "state":
            pidfiles[parts[1]] = (int(parts[2]) if parts[2].isdigit() else None, parts[3])
    rows = parse_env_processes(text)
    views = {}
    for name in SERVICES:
        pid, state = pidfiles.get(name, (None, "stopped"))
        state, orphans = classify(name, pid, state, rows)
        views[name] = {"pid": pid, "state": state, "orphans": orphans}
    return views


def stop_command(layout, name, timeout=10):
    """Graceful signal, wait up to timeout, then SIGKILL; removes the pid file (pure).

    Prints one of: ``stopped``, ``killed``, ``not-running``, ``stale``.
    """
    svc = service(name)
    pidfile = q(layout.pid_file(name))
    ticks = int(timeout * 10)
    return (
        f"p=$(cat {pidfile} 2>/dev/null); "
        f'if [ -z "$p" ]; then echo not-running; exit 0; fi; '
        f"if ! {{ {is_ours('$p', q(svc.comm))}; }}; then rm -f {pidfile}; echo stale; exit 0; fi; "
        f'kill -{svc.stop_signal} "$p" 2>/dev/null; i=0; '
        f"while {is_ours('$p', q(svc.comm))} && [ $i -lt {ticks} ]; do sleep 0.1; i=$((i+1)); done; "
        f'if {is_ours("$p", q(svc.comm))}; then kill -KILL "$p"; sleep 0.2; rm -f {pidfile}; echo killed; '
        f"else rm -f {pidfile}; echo stopped; fi"
    )


def stop_all_command(layout, name, timeout=10):
    """:func:`stop_command`, then every other process of the service in this env (pure).

    Prints the stop word, then ``reaped PID...``.
    """
    return f"( {stop_command(layout, name, timeout)} ); {reap_command(layout, name, None, min(timeout, 5))}"


def nginx_test_command(layout, conf_path=None):
    """``nginx -t`` for a config (pure); conf_path lets setup test before switching."""
    return join(
        [
            layout.nginx_bin,
            "-t",
            "-q",
            "-p",
            layout.root,
            "-c",
            conf_path or layout.nginx_conf,
            "-e",
            layout.log_file("nginx-error.log"),
        ]
    )


def nginx_reload_command(layout):
    return join(
        [
            layout.nginx_bin,
            "-s",
            "reload",
            "-p",
            layout.root,
            "-c",
            layout.nginx_conf,
            "-e",
            layout.log_file("nginx-error.log"),
        ]
    )


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
