"""The probe: one round trip that tells what a box is.

``probe_command`` builds a POSIX sh script (pure); ``parse_probe`` turns its
output into a dict (pure); ``summarize`` adds the derived verdicts (target,
port availability). Only :func:`probe` touches the network.
"""

import posixpath
import time

from .commands import q
from .errors import UnsupportedTarget
from .layout import RemoteLayout, resolve_env_dir
from .services import is_ours
from .targets import get_target, supported_list

MARK_TCP = "---tcp---"
MARK_END = "---end---"


def _env_expr(env_dir):
    """Shell expression for the env dir with ~ expanded on the box."""
    env_dir = env_dir or "~/tiramisu-env"
    if env_dir == "~":
        return '"$HOME"'
    if env_dir.startswith("~/"):
        return '"$HOME"/' + q(env_dir[2:])
    if not env_dir.startswith("/"):
        return '"$HOME"/' + q(env_dir)
    return q(env_dir)


def probe_command(env_dir):
    """A read-only sh script printing ``key=value`` lines, then raw socket tables."""
    env = _env_expr(env_dir)
    return "\n".join(
        [
            "LC_ALL=C; export LC_ALL",
            f"E={env}",
            'echo "machine=$(uname -m)"',
            'echo "kernel=$(uname -r)"',
            'echo "home=$HOME"',
            'echo "user=$(id -un 2>/dev/null)"',
            'echo "uid=$(id -u)"',
            'echo "group=$(id -gn 2>/dev/null)"',
            "if [ -r /etc/os-release ]; then . /etc/os-release; "
            'echo "os_id=$ID"; echo "os_version=$VERSION_ID"; echo "os_name=$PRETTY_NAME"; fi',
            # glibc: getconf is the most reliable; musl: its loader exists
            'g=$(getconf GNU_LIBC_VERSION 2>/dev/null) && echo "glibc=${g#glibc }"',
            'for m in /lib/ld-musl-*.so.1; do [ -e "$m" ] && echo "musl_loader=$m"; done',
            'l=$(ldd --version 2>&1 | head -n 1) && echo "ldd=$l"',
            # free disk at the env dir or its nearest existing parent (KiB)
            'd="$E"; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done',
            'echo "disk_path=$d"',
            'echo "disk_free_kb=$(df -Pk "$d" 2>/dev/null | awk \'NR==2 {print $4}\')"',
            'echo "env_dir=$E"',
            '[ -d "$E" ] && echo "env_exists=1"',
            '[ -f "$E/VERSION" ] && echo "version_sha=$(sha256sum "$E/VERSION" | cut -c1-12)" '
            "&& sed -n 's/^/version_line=/p' \"$E/VERSION\" | head -n 20",
            # alive means: the pid exists AND is our program (a recycled pid is stale)
            'for s in nginx:nginx server:custom_server; do n=${s%%:*}; comm=${s#*:}; p="";'
            ' [ -f "$E/run/$n.pid" ] && p=$(cat "$E/run/$n.pid" 2>/dev/null);'
            ' if [ -n "$p" ]; then if ' + is_ours("$p", '"$comm"') + '; then echo "pid_$n=$p alive";'
            ' else echo "pid_$n=$p stale"; fi; fi; done',
            'echo "nproc=$(nproc 2>/dev/null || echo ?)"',
            'echo "nofile_hard=$(ulimit -Hn 2>/dev/null)"',  # nginx.conf: worker_rlimit_nofile within it
            # virtual address space (see user_va_bits): the top user mappings of
            # this shell, read by cut from /proc/$$/maps, i.e. another process's
            # maps (qemu-user fakes only a process's own); plus the CPU's widths
            # where /proc/cpuinfo has them (x86). No root needed.
            "echo \"maps_top=$(cut -d' ' -f1 /proc/$$/maps 2>/dev/null | tail -n 4 | tr '\\n' ' ')\"",
            "echo \"cpu_address_sizes=$(sed -n 's/^address sizes[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null"
            ' | head -n 1)"',
            'command -v crontab >/dev/null 2>&1 && echo "crontab=1"',
            # decompressors for uploads (transfer.pick_codec)
            'for z in zstd xz gzip; do command -v $z >/dev/null 2>&1 && echo "codec_$z=1"; done',
            f"echo {MARK_TCP}",
            "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
            f"echo {MARK_END}",
        ]
    )


def parse_listening_ports(text):
    """Local ports in LISTEN state from /proc/net/tcp{,6} text (pure)."""
    ports = set()
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) < 4 or parts[0] == "sl":
            continue
        local, state = parts[1], parts[3]
        if state != "0A" or ":" not in local:
            continue
        try:
            ports.add(int(local.rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return sorted(ports)


def parse_probe(text):
    """Probe output → raw facts dict (pure)."""
    facts = {"version_lines": []}
    head, _, rest = (text or "").partition(MARK_TCP)
    tcp, _, _ = rest.partition(MARK_END)
    for line in head.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key == "version_line":
            facts["version_lines"].append(value)
        elif key:
            facts[key] = value.strip()
    facts["listening_ports"] = parse_listening_ports(tcp)
    return facts


def libc_of(facts):
    """(family, version) from raw facts (pure)."""
    if facts.get("glibc"):
        return "glibc", facts["glibc"].strip()
    if facts.get("musl_loader"):
        ldd = facts.get("ldd", "")
        version = None
        for token in ldd.replace("(", " ").replace(")", " ").split():
            if token[:1].isdigit():
                version = token
        return "musl", version
    ldd = facts.get("ldd", "").lower()
    if "musl" in ldd:
        return "musl", None
    if "glibc" in ldd or "gnu libc" in ldd:
        return "glibc", ldd.split()[-1] if ldd else None
    return "unknown", None


# Pooling needs several multi-GiB reservations at once; on kernels whose user
# address space has 39 bits (512 GiB, Raspberry Pi arm64) custom_server falls
# back to the on-demand allocator (it probes with a mapping at start; see
# cserver/ts_engine.c). Wider spaces keep pooling.
POOLING_MIN_BITS = 40
KERNEL_HALF = 1 << 63  # [vsyscall] and the like live up here: not user space


def parse_maps_ranges(text):
    """``start-end`` address ranges (ints) from /proc/PID/maps text or its first fields (pure)."""
    ranges = []
    for token in (text or "").split():
        start, sep, end = token.partition("-")
        if not sep:
            continue
        try:
            ranges.append((int(start, 16), int(end, 16)))
        except ValueError:
            continue
    return ranges


def user_va_bits(ranges):
    """Width of the user address space, from the highest user mapping (pure).

    The kernel puts a process's stack (and, on arm64, the vdso) just below its
    user limit (TASK_SIZE), so the bit length of the highest user address is
    the width of the user address space: 47 on x86_64 with 4-level paging (the
    lower half of 48-bit virtual addresses), 39 or 48 on arm64
    (CONFIG_ARM64_VA_BITS; 39 on many Raspberry Pi kernels). Mappings in the
    kernel half ([vsyscall]) are ignored. None if unknown.

    The maps must be another process's: under qemu-user a process reading its
    own /proc/self/maps sees qemu's guest layout (everything near
    0x55_0000_0000, which would read as 39 bits), while other processes' maps
    show the real ones (the host's 47 bits, which is what the emulated server
    can use). The probe reads its shell's maps from a child process.
    """
    tops = [end - 1 for start, end in ranges if 0 < end <= KERNEL_HALF and end > start]
    return max(tops).bit_length() if tops else None


def cpu_virtual_bits(address_sizes):
    """48 from ``39 bits physical, 48 bits virtual`` (/proc/cpuinfo on x86), else None (pure)."""
    for part in (address_sizes or "").split(","):
        words = part.split()
        if len(words) == 3 and words[1:] == ["bits", "virtual"] and words[0].isdigit():
            return int(words[0])
    return None


def pooling_verdict(bits):
    """``ok`` / ``falls back (39-bit)`` / ``unknown`` for custom_server's pooling allocator (pure)."""
    if bits is None:
        return "unknown"
    return "ok" if bits >= POOLING_MIN_BITS else f"falls back ({bits}-bit)"


def address_space(raw):
    """The ``address_space`` part of a probe report from raw facts (pure)."""
    bits = user_va_bits(parse_maps_ranges(raw.get("maps_top")))
    return {
        "bits": bits,
        "size_gib": (1 << bits) // (1 << 30) if bits else None,
        "source": "/proc/PID/maps" if bits else None,
        "cpu_virtual_bits": cpu_virtual_bits(raw.get("cpu_address_sizes")),
        "pooling": pooling_verdict(bits),
    }


def _pid_state(value):
    if not value:
        return {"pid": None, "state": "stopped"}
    pid, _, state = value.partition(" ")
    return {"pid": int(pid) if pid.isdigit() else None, "state": "running" if state == "alive" else "stale"}


def summarize(raw, http_port, server_port, env_dir_setting):
    """Raw facts → the report host.check prints and stores (pure)."""
    libc, libc_version = libc_of(raw)
    machine = raw.get("machine", "")
    report = {
        "machine": machine,
        "arch": None,
        "target": None,
        "supported": False,
        "reason": None,
        "os": raw.get("os_name") or raw.get("os_id") or "unknown",
        "os_id": raw.get("os_id"),
        "os_version": raw.get("os_version"),
        "kernel": raw.get("kernel"),
        "libc": libc,
        "libc_version": libc_version,
        "user": raw.get("user"),
        "uid": raw.get("uid"),
        "group": raw.get("group"),
        "home": raw.get("home"),
        "env_dir": raw.get("env_dir") or env_dir_setting,
        "disk_free_mb": None,
        "disk_path": raw.get("disk_path"),
        "nproc": raw.get("nproc"),
        "nofile_hard": raw.get("nofile_hard"),
        "crontab": bool(raw.get("crontab")),
        "codecs": [z for z in ("zstd", "xz", "gzip") if raw.get(f"codec_{z}")],
        "installed": bool(raw.get("env_exists")) and bool(raw.get("version_sha")),
        "env_exists": bool(raw.get("env_exists")),
        "version": _parse_version_lines(raw.get("version_lines") or []),
        "services": {"nginx": _pid_state(raw.get("pid_nginx")), "server": _pid_state(raw.get("pid_server"))},
        "ports": {},
        "listening_ports": list(raw.get("listening_ports") or []),
        "address_space": address_space(raw),
    }
    kb = raw.get("disk_free_kb")
    if kb and kb.isdigit():
        report["disk_free_mb"] = int(kb) // 1024
    try:
        target = get_target(machine, libc if libc != "unknown" else "glibc", libc_version if libc == "glibc" else None)
        report.update(arch=target.arch, target=target.name, supported=True)
    except UnsupportedTarget as exc:
        report["reason"] = exc.message
        try:
            from .targets import normalize_arch

            report["arch"] = normalize_arch(machine)
        except UnsupportedTarget:
            report["arch"] = machine or None
    listening = set(raw.get("listening_ports") or [])
    ours_running = any(s["state"] == "running" for s in report["services"].values())
    for label, port in (("http", http_port), ("server", server_port)):
        port = int(port)
        if port not in listening:
            state = "free"
        elif ours_running:
            state = "in use (tiramisu running)"
        else:
            state = "in use"
        report["ports"][label] = {"port": port, "state": state}
    return report


def _parse_version_lines(lines):
    out = {}
    for line in lines:
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def probe(effects, env_dir, http_port, server_port):
    """Run the probe through a box context's ``run`` effect (:mod:`box`); returns the summarized report."""
    started = time.monotonic()
    result = effects.run(probe_command(env_dir), timeout=60)
    report = summarize(parse_probe(result.stdout), http_port, server_port, env_dir)
    report["probe_seconds"] = round(time.monotonic() - started, 3)
    return report


def layout_for(report):
    """The RemoteLayout for a probed box."""
    return RemoteLayout(
        resolve_env_dir(report["env_dir"], report["home"])
        if not report["env_dir"].startswith("/")
        else posixpath.normpath(report["env_dir"])
    )


def unsupported_message(report):
    return report["reason"] or f"unsupported box (supported: {supported_list()})"
