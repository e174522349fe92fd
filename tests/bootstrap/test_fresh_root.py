"""The bootstrap on a fresh Debian 12 root: scripts/fresh-root-check, run from CI.

A green suite on a machine where something was installed by hand proves nothing
about a fresh one (libc6-dev-arm64-cross, only a Recommends, was once
missing that way). The check makes a pure debootstrap root, runs `scripts/bootstrap
test` in it and builds the server (both arches, every toolchain) and one app
per language there. The work is in the script (run it by hand the same way);
this test only runs it.

Like the real-host tests it needs root: elsewhere it is skipped with the
reason, but under CI (CI=true or TIRAMISU_REQUIRE_TESTHOSTS=1) a missing
requirement fails instead. Locally TIRAMISU_FRESH_ROOT=0 skips it (a warm run
takes minutes); CI refuses that too.
"""

import datetime
import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys

import pytest

from tiramisu_tasks.paths import repo_root

SCRIPT = repo_root() / "scripts" / "fresh-root-check"


def _load_script():
    loader = importlib.machinery.SourceFileLoader("fresh_root_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


frc = _load_script()


def _in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TIRAMISU_REQUIRE_TESTHOSTS", ""
    ) not in ("", "0")


# ------------------------------------------------------------- pure parts ---

DEB822 = """\
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main

Types: deb deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main contrib
"""


def test_apt_sources_keep_only_the_debian_suites():
    entries = frc.debian_entries(
        frc.parse_apt_sources(DEB822)
        + frc.parse_apt_sources("deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n", one_line=True)
    )
    assert [e["uris"] for e in entries] == [["http://deb.debian.org/debian"], ["http://deb.debian.org/debian-security"]]
    assert entries[1]["types"] == ["deb"]
    assert frc.pick_mirror(entries) == "http://deb.debian.org/debian"
    text = frc.render_sources(entries)
    assert "Suites: bookworm bookworm-updates\n" in text and "nodesource" not in text


def test_one_line_sources_with_options():
    (e,) = frc.parse_apt_sources("deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main\n", one_line=True)
    assert e == {
        "types": ["deb"],
        "uris": ["http://m/debian"],
        "suites": ["bookworm"],
        "components": ["main"],
        "signed_by": "/k.gpg",
    }


PIP = [
    (
        "local-only",
        [
            "[global]\nfind-links = /opt/wheels\nextra-index-url = file:///opt/pypi/simple\n",
            "[global]\nconstraint = /etc/xdg/pip/constraints.txt\n",
        ],
        {},
        {},
    ),
    (
        "proxy-index",
        ["[global]\nindex-url = https://pypi.corp/simple\ntrusted-host = pypi.corp\n"],
        {},
        {"index-url": "https://pypi.corp/simple", "trusted-host": "pypi.corp"},
    ),
    (
        "env-wins",
        ["[global]\nindex-url = https://a/simple\n"],
        {"PIP_INDEX_URL": "https://b/simple"},
        {"index-url": "https://b/simple"},
    ),
    ("env-local-dropped", [], {"PIP_FIND_LINKS": "/opt/wheels"}, {}),
    (
        "system-ca-bundle",
        ["[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"],
        {},
        {"cert": "/etc/ssl/certs/ca-certificates.crt"},
    ),
    ("private-ca-file-dropped", ["[global]\ncert = /home/me/ca.pem\n"], {}, {}),
]


@pytest.mark.parametrize("texts,environ,expected", [p[1:] for p in PIP], ids=[p[0] for p in PIP])
def test_pip_settings_carried_into_the_root(texts, environ, expected):
    assert frc.network_pip_settings(texts, environ) == expected


def _pem(body):
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----"


def test_extra_certificates_are_the_ones_debian_does_not_ship():
    bundle = "\n".join([_pem("AAAA"), _pem("PROXY"), _pem("BBBB")])
    packaged = [_pem("AAAA"), _pem("BB\nBB")]  # line breaks do not matter
    assert frc.extra_certificates(bundle, packaged) == [_pem("PROXY")]


def test_only_system_store_tls_variables_enter_the_root():
    env = {
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "SSL_CERT_FILE": "/home/me/ca.pem",
        "HOME": "/root",
        "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
    }
    assert frc.tls_environment(env) == {
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "NODE_EXTRA_CA_CERTS": "/etc/ssl/certs/ca-certificates.crt",
    }


def test_base_is_keyed_by_suite_arch_and_week():
    assert frc.base_key(datetime.date(2026, 11, 30)) == "bookworm-amd64-minbase-2026w49"
    assert frc.base_key(datetime.date(2026, 12, 6)) == frc.base_key(datetime.date(2026, 11, 30))


def test_root_goes_to_tmpfs_only_with_enough_memory():
    gib = 1024 * 1024
    assert frc.tmpfs_size(23 * gib) == "16g"
    assert frc.tmpfs_size(10 * gib) == "8g"
    assert frc.tmpfs_size(7 * gib) is None  # on disk then


def test_mounts_under_matches_whole_path_components():
    info = "1 0 8:1 / /w/run-1/root/proc rw - proc proc rw\n2 0 8:1 / /w/run-10 rw - ext4 x rw\n"
    assert frc.mounts_under("/w/run-1", info) == ["/w/run-1/root/proc"]


# --------------------------------------------------------------- the check ---


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_bootstrap_builds_everything_in_a_fresh_debian_root(tmp_path):
    problems = frc.host_missing()
    if os.environ.get("TIRAMISU_FRESH_ROOT", "") == "0" and not problems:
        problems = ["TIRAMISU_FRESH_ROOT=0"]
    if problems:
        reason = "fresh-root check cannot run: " + "; ".join(problems)
        if _in_ci():
            pytest.fail(f"CI must run the fresh-root check: {reason}", pytrace=False)
        pytest.skip(reason)
    summary_file = tmp_path / "summary.json"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--json", str(summary_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=3300)
    except BaseException:
        # Timeout or Ctrl-C: SIGTERM lets the script unmount and delete its root.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    print(output)
    assert proc.returncode == 0, output[-6000:]
    steps = {s["step"]: s for s in json.loads(summary_file.read_text())["steps"]}
    expected = {"base", "extract", "bootstrap", "dockerd", "docker-import"}
    expected |= {
        f"{kind}-{tc}-{arch}"
        for kind in ("server", "run")
        for tc in ("zig", "gcc", "docker")
        for arch in ("x86_64", "aarch64")
    }
    expected |= {f"app-{lang}" for lang in frc.APPS}
    assert expected <= set(steps), f"steps missing from the check: {sorted(expected - set(steps))}"
    assert all(s["ok"] for s in steps.values())
