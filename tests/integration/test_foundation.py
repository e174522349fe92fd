"""End to end: inventory, probe, host keys and errors through the real
front ends against real SSH hosts (x86_64 netns host, aarch64 qemu host)."""

import json
import subprocess

import yaml

from tests.helpers import REPO, cli, free_port, host_result, host_results, one_line_error


def test_host_check_reports_the_real_architecture(any_host, tmp_inventory):
    any_host.register(tmp_inventory, "box")
    proc = cli("tiramisu", "host.check", "box", "--json")
    assert proc.returncode == 0, proc.stderr
    report = host_result(proc)
    assert report["arch"] == any_host.arch and report["machine"] == any_host.arch
    assert report["supported"] and report["target"] == f"{any_host.arch}-linux-gnu"
    assert report["libc"] == "glibc" and report["os_id"] == "debian"
    assert report["ports"]["http"]["state"] == "free" and not report["installed"]
    # cached in the inventory: later tasks need no extra round trip
    facts = yaml.safe_load(tmp_inventory.read_text())["hosts"]["box"]["facts"]
    assert facts["arch"] == any_host.arch and facts["target"] == report["target"]
    human = cli("tiramisu", "host.check", "box")
    assert human.returncode == 0 and f"target {any_host.arch}-linux-gnu" in human.stdout


def test_three_front_ends_reach_the_same_code(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box")
    outputs = [
        cli("tiramisu", "host.check", "box", "--json"),
        cli("inv", "host.check", "box", "--json"),
        cli("fab", "-H", "box", "host.check", "box", "--json"),
        cli("tiramisu", "-H", "box", "host.check", "box", "--json"),
    ]
    for proc in outputs:
        assert proc.returncode == 0, proc.stderr
    archs = {host_result(p)["arch"] for p in outputs}
    assert archs == {"x86_64"}


def test_ssh_config_alias_works_for_every_front_end(x86_host, tmp_inventory, tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text(
        f"Host boxalias\n  HostName {x86_host.hostname}\n  User {x86_host.user}\n"
        f"  Port {x86_host.port}\n  IdentityFile {x86_host.key_path}\n"
    )
    (tmp_inventory.parent / "tiramisu_known_hosts").write_text(x86_host.host_key_line + "\n")
    env = {"HOME": str(home)}
    for args in (
        ["inv", "host.check", "boxalias", "--json"],
        ["tiramisu", "host.check", "boxalias", "--json"],
        ["fab", "-H", "boxalias", "host.check", "boxalias", "--json"],
    ):
        proc = cli(*args, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert host_result(proc)["arch"] == "x86_64"


def test_inventory_round_trip_through_all_front_ends(tmp_inventory):
    key = tmp_inventory.parent / "id_pi"  # host.add checks that the key file exists
    key.write_text("(a key file)\n")
    add = cli(
        "tiramisu",
        "host.add",
        "pi",
        "--hostname",
        "192.0.2.10",
        "--user",
        "pi",
        "--port",
        "2222",
        "--key",
        key,
        "--group",
        "lab",
        "--set",
        "http_port=8081",
    )
    assert add.returncode == 0, add.stderr
    add2 = cli("inv", "host.add", "box", "--hostname", "box.example", "--group", "lab")
    assert add2.returncode == 0, add2.stderr
    listed = json.loads(cli("fab", "host.list", "--json").stdout)
    assert sorted(h["name"] for h in listed["hosts"]) == ["box", "pi"]
    shown = json.loads(cli("inv", "host.show", "pi", "--json").stdout)
    assert (shown["hostname"], shown["user"], shown["port"], shown["key"], shown["groups"], shown["settings"]) == (
        "192.0.2.10",
        "pi",
        2222,
        str(key),
        ["lab"],
        {"http_port": 8081},
    )
    dup = cli("tiramisu", "host.add", "pi", "--hostname", "x")
    assert "already exists" in one_line_error(dup)
    assert cli("fab", "host.remove", "box").returncode == 0
    assert [h["name"] for h in json.loads(cli("tiramisu", "host.list", "--json").stdout)["hosts"]] == ["pi"]
    text = tmp_inventory.read_text()
    assert "password" not in text.lower()


def test_unknown_host_key_is_refused_then_accepted_for_every_front_end(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box", accept_key=False)
    refused = cli("tiramisu", "host.check", "box")
    line = one_line_error(refused)
    assert refused.returncode == 255
    assert "unknown host key" in line and "SHA256:" in line and "--accept-new" in line
    fingerprint = line.split("SHA256:")[1].split(";")[0].strip()
    accepted = cli("tiramisu", "host.check", "box", "--accept-new")
    assert accepted.returncode == 0, accepted.stderr
    assert fingerprint in accepted.stderr  # says what it trusted
    # recorded beside the inventory: the other front ends now trust it too
    assert cli("fab", "-H", "box", "host.check", "box").returncode == 0
    assert cli("inv", "host.check", "box").returncode == 0


def test_accept_new_by_environment_for_fab(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box", accept_key=False)
    proc = cli("fab", "-H", "box", "webserv.status", env={"TIRAMISU_ACCEPT_NEW_HOST_KEYS": "1"})
    assert "not installed" in proc.stdout.lower() or "NOT installed" in proc.stdout, proc.stderr
    assert "accepted new host key" in proc.stderr
    assert (tmp_inventory.parent / "tiramisu_known_hosts").read_text().count(x86_host.hostname) == 1


def test_changed_host_key_is_always_refused(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box", accept_key=False)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_inventory.parent / "k")], check=True)
    pub = (tmp_inventory.parent / "k.pub").read_text().split()
    (tmp_inventory.parent / "tiramisu_known_hosts").write_text(f"{x86_host.hostname} {pub[0]} {pub[1]}\n")
    for extra, env in (([], None), (["--accept-new"], None), ([], {"TIRAMISU_ACCEPT_NEW_HOST_KEYS": "1"})):
        proc = cli("tiramisu", "host.check", "box", *extra, env=env)
        assert proc.returncode == 255 and "CHANGED" in one_line_error(proc)


def test_unreachable_host_is_one_line_and_non_zero(tmp_inventory):
    port = free_port()
    cli("tiramisu", "host.add", "dead", "--hostname", "127.0.0.1", "--port", port)
    proc = cli("tiramisu", "host.check", "dead")
    assert proc.returncode == 255 and "cannot connect" in one_line_error(proc)


def test_unknown_host_name_is_one_line(tmp_inventory):
    proc = cli("inv", "host.check", "no-such-box.invalid")
    assert "unknown host 'no-such-box.invalid'" in one_line_error(proc) and proc.returncode == 2  # usage


def test_bad_key_is_an_authentication_failure(x86_host, tmp_inventory):
    x86_host.register(tmp_inventory, "box")
    wrong = tmp_inventory.parent / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    cli("tiramisu", "host.add", "box2", "--hostname", x86_host.hostname, "--user", x86_host.user, "--key", wrong)
    proc = cli("tiramisu", "host.check", "box2")
    assert proc.returncode == 255 and "authentication failed" in one_line_error(proc)


def test_parallel_hosts_with_summary_and_failure(x86_host, aarch64_host, tmp_inventory):
    x86_host.register(tmp_inventory, "a", groups=["lab"])
    aarch64_host.register(tmp_inventory, "b", groups=["lab"])
    proc = cli("tiramisu", "host.check", "lab", "--json")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["arch"] for r in host_results(proc)) == ["aarch64", "x86_64"]
    cli("tiramisu", "host.add", "dead", "--hostname", "127.0.0.1", "--port", free_port())
    mixed = cli("tiramisu", "host.check", "a,dead")
    assert mixed.returncode == 1
    assert "dead" in mixed.stderr and "FAILED" in mixed.stderr and "[a] arch" in mixed.stdout


def test_chained_shell_command_stops_at_the_failing_task(x86_host, tmp_inventory, tmp_path):
    x86_host.register(tmp_inventory, "box")
    marker = tmp_path / "reached"
    script = (
        f"set -e; cd {REPO}; {cli.__globals__['BIN']}/tiramisu host.check box >/dev/null; "
        f"{cli.__globals__['BIN']}/inv host.check nosuch.invalid; touch {marker}"
    )
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 2 and not marker.exists()  # a mistyped host is a usage error
    assert proc.stderr.strip().splitlines()[-1].startswith("tiramisu: unknown host 'nosuch.invalid'")


def test_sandbox_is_the_embedded_default_host(tmp_inventory):
    up = cli("tiramisu", "sandbox.up")
    try:
        assert up.returncode == 0, up.stderr
        proc = cli("tiramisu", "host.check", "sandbox", "--json")
        assert proc.returncode == 0, proc.stderr
        assert host_result(proc)["arch"] in ("x86_64", "aarch64")
    finally:
        cli("tiramisu", "sandbox.down")
