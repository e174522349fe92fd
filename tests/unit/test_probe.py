"""The box probe: parsing /proc/net/tcp for listening ports, summarizing a
probe's output (arch, libc, installed version, live and stale pids),
refusing an unsupported architecture or a too old glibc with the versions and
the reason, and the real probe script run under the local sh."""

import subprocess

import pytest

from tiramisu_tasks.errors import UnsupportedTarget
from tiramisu_tasks.probe import libc_of, parse_listening_ports, parse_probe, probe_command, summarize

TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:C350 0100007F:2328 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
"""  # noqa: E501 - real /proc/net/tcp lines


def sample(machine="aarch64", extra=""):
    return (
        f"machine={machine}\nkernel=6.1.0\nhome=/home/pi\nuser=pi\nuid=1000\nos_id=debian\nos_version=12\n"
        f"os_name=Debian GNU/Linux 12 (bookworm)\nglibc=2.36\ndisk_path=/home/pi\ndisk_free_kb=2048000\n"
        f"env_dir=/home/pi/tiramisu-env\n{extra}---tcp---\n{TCP}---end---\n"
    )


def test_listening_ports_only_listen_state():
    assert parse_listening_ports(TCP) == [0x1F90, 0x1F91]


def test_summary_of_a_pi():
    r = summarize(parse_probe(sample()), 8080, 9000, "~/tiramisu-env")
    assert (r["arch"], r["target"], r["libc"], r["libc_version"], r["supported"]) == (
        "aarch64",
        "aarch64-linux-gnu",
        "glibc",
        "2.36",
        True,
    )
    assert r["disk_free_mb"] == 2000
    assert r["ports"]["http"] == {"port": 8080, "state": "in use"}
    assert r["ports"]["server"] == {"port": 9000, "state": "free"}
    assert r["listening_ports"] == [8080, 8081]  # setup's port check reads these
    assert not r["installed"]


@pytest.mark.parametrize("machine", ["armv7l", "armv6l", "riscv64", "i686", ""])
def test_unsupported_arch_is_reported_with_targets_and_reason(machine):
    r = summarize(parse_probe(sample(machine)), 8080, 9000, "~/tiramisu-env")
    assert not r["supported"]
    assert "x86_64-linux-gnu" in r["reason"] and "aarch64-linux-gnu" in r["reason"]
    assert "Wasmtime" in r["reason"]


def test_installed_and_stale_pid():
    extra = (
        "env_exists=1\nversion_sha=abc\nversion_line=tiramisu=0.1.0\nversion_line=http_port=8080\n"
        "pid_nginx=123 alive\npid_server=456 stale\n"
    )
    r = summarize(parse_probe(sample(extra=extra)), 8080, 9000, "~/tiramisu-env")
    assert r["installed"] and r["version"]["http_port"] == "8080"
    assert r["services"]["nginx"] == {"pid": 123, "state": "running"}
    assert r["services"]["server"] == {"pid": 456, "state": "stale"}
    assert r["ports"]["http"]["state"] == "in use (tiramisu running)"


@pytest.mark.parametrize(
    "facts, expected",
    [
        ({"glibc": "2.36"}, ("glibc", "2.36")),
        ({"musl_loader": "/lib/ld-musl-aarch64.so.1", "ldd": "musl libc (aarch64) Version 1.2.4"}, ("musl", "1.2.4")),
        ({"ldd": "ldd (GNU libc) 2.31"}, ("glibc", "2.31")),
        ({}, ("unknown", None)),
    ],
    ids=["getconf", "musl", "ldd-only", "nothing"],
)
def test_libc_detection(facts, expected):
    assert libc_of(facts) == expected


def test_old_glibc_is_refused_with_versions():
    text = sample().replace("glibc=2.36", "glibc=2.12")
    r = summarize(parse_probe(text), 8080, 9000, "~")
    assert not r["supported"] and "2.12" in r["reason"] and "2.18" in r["reason"]


def test_probe_script_runs_here_and_parses(tmp_path):
    """The real script under the local sh: everything it reports parses."""
    out = subprocess.run(
        ["sh", "-c", probe_command(str(tmp_path / "env"))], capture_output=True, text=True, check=True
    ).stdout
    r = summarize(parse_probe(out), 8080, 9000, str(tmp_path / "env"))
    import platform

    assert r["machine"] == platform.machine()
    assert r["env_dir"] == str(tmp_path / "env") and not r["env_exists"]
    assert r["disk_free_mb"] > 0


def test_unsupported_target_error_class():
    from tiramisu_tasks.targets import normalize_arch

    with pytest.raises(UnsupportedTarget):
        normalize_arch("armv7l")
