"""Pure builders of the test hosts: tables, no machine state."""

import ipaddress
import shlex

import pytest

from testhosts import commands as cmd


@pytest.mark.parametrize(
    "index, network, outside, inside",
    [
        (0, "10.213.0.0/30", "10.213.0.1", "10.213.0.2"),
        (1, "10.213.0.4/30", "10.213.0.5", "10.213.0.6"),
        (64, "10.213.1.0/30", "10.213.1.1", "10.213.1.2"),
        (16383, "10.213.255.252/30", "10.213.255.253", "10.213.255.254"),
    ],
    ids=["first", "second", "next-octet", "last"],
)
def test_subnet_for(index, network, outside, inside):
    s = cmd.subnet_for(index)
    assert (str(s.network), s.outside, s.inside) == (network, outside, inside)


@pytest.mark.parametrize("index", [-1, 16384])
def test_subnet_for_out_of_pool(index):
    with pytest.raises(ValueError):
        cmd.subnet_for(index)


@pytest.mark.parametrize(
    "used, start, expected",
    [
        ([], 0, "10.213.0.0/30"),
        (["10.213.0.1/30"], 0, "10.213.0.4/30"),
        (["10.213.0.0/29"], 0, "10.213.0.8/30"),
        (["10.213.0.4/32"], 1, "10.213.0.8/30"),
        (["0.0.0.0/0", "192.0.2.0/24", "fd00::/64", "garbage"], 0, "10.213.0.0/30"),
        (["10.213.255.252/30"], 16383, "10.213.0.0/30"),
    ],
    ids=["empty", "taken-addr", "wider-route", "host-route", "ignores-default-v6-junk", "wraps"],
)
def test_pick_subnet_avoids_everything_in_use(used, start, expected):
    assert str(cmd.pick_subnet(used, start=start).network) == expected


def test_pick_subnet_never_overlaps_a_covering_route():
    with pytest.raises(RuntimeError):
        cmd.pick_subnet(["10.0.0.0/8"])


def test_parse_ip_addr_routes():
    addrs = (
        "1: lo    inet 127.0.0.1/8 scope host lo\\\n4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n"
    )
    routes = (
        "default via 192.0.2.1 dev eth0\n"
        "10.213.0.0/30 dev tmsuabcdefh proto kernel scope link src 10.213.0.1\n"
        "local 127.0.0.1 dev lo table local\n"
        "198.51.100.7 dev eth0\n"
    )
    got = cmd.parse_ip_addr_routes(addrs, routes)
    assert "127.0.0.1/8" in got and "192.0.2.2/24" in got and "10.213.0.0/30" in got
    assert "198.51.100.7/32" in got and not any(g.startswith("default") for g in got)


def test_names_fit_interface_limits():
    hid = cmd.host_id("a1B2c3")
    assert hid == "tmsu-a1b2c3" and cmd.HOST_ID_RE.match(hid)
    out, inside = cmd.link_names(hid)
    assert (out, inside) == ("tmsua1b2c3h", "tmsua1b2c3n")
    assert all(len(n) <= 15 and cmd.LINK_RE.match(n) for n in (out, inside))
    with pytest.raises(ValueError):
        cmd.host_id("zzzzzz")


def test_netns_commands_only_touch_the_hosts_subnet():
    s = cmd.subnet_for(3)
    up = cmd.netns_up_cmds("tmsu-000001", s)
    flat = [" ".join(a) for a in up]
    assert flat[0] == "ip netns add tmsu-000001"
    assert "ip addr add 10.213.0.13/30 dev tmsu000001h" in flat
    assert "ip -n tmsu-000001 addr add 10.213.0.14/30 dev tmsu000001n" in flat
    assert not any("route" in a or "default" in a or "forward" in a for a in flat)
    assert cmd.netns_down_cmds("tmsu-000001") == [
        ["ip", "link", "del", "tmsu000001h"],
        ["ip", "netns", "del", "tmsu-000001"],
    ]


def test_sshd_config_is_key_only():
    text = cmd.sshd_config(
        port=2222,
        listen="127.0.0.1",
        host_keys=["/k/host"],
        pid_file="/k/pid",
        authorized_keys="/k/auth",
        allow_users=["alice"],
        strict_modes=False,
        permit_root="prohibit-password",
    )
    lines = set(text.splitlines())
    for line in (
        "Port 2222",
        "ListenAddress 127.0.0.1",
        "HostKey /k/host",
        "PidFile /k/pid",
        "AuthorizedKeysFile /k/auth",
        "AllowUsers alice",
        "PasswordAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "Subsystem sftp internal-sftp",
        "PermitRootLogin prohibit-password",
    ):
        assert line in lines, line


@pytest.mark.parametrize(
    "host, port, expected",
    [
        ("10.213.0.2", 22, "10.213.0.2 ssh-ed25519 AAAAkey"),
        ("127.0.0.1", 2222, "[127.0.0.1]:2222 ssh-ed25519 AAAAkey"),
    ],
)
def test_known_hosts_line(host, port, expected):
    assert cmd.known_hosts_line(host, port, "ssh-ed25519 AAAAkey comment@x\n") == expected


def test_merge_known_hosts_replaces_same_host_and_type_only():
    old = "[127.0.0.1]:2222 ssh-ed25519 OLD\n[127.0.0.1]:2222 ssh-rsa RSA\n[127.0.0.1]:2223 ssh-ed25519 OTHER\n"
    new = cmd.merge_known_hosts(old, "[127.0.0.1]:2222 ssh-ed25519 NEW")
    assert new.splitlines() == [
        "[127.0.0.1]:2222 ssh-rsa RSA",
        "[127.0.0.1]:2223 ssh-ed25519 OTHER",
        "[127.0.0.1]:2222 ssh-ed25519 NEW",
    ]
    assert cmd.merge_known_hosts("", "h k v") == "h k v\n"


def test_ssh_argv_is_hermetic_and_quotes_lists():
    argv = cmd.ssh_argv(
        hostname="10.213.0.2", port=22, user="u", key_path="/k", known_hosts="/kh", command=["echo", "a b", "$HOME"]
    )
    assert argv[:3] == ["ssh", "-F", "none"]
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/kh" in argv
    assert argv[-3:] == ["10.213.0.2", "--", shlex.join(["echo", "a b", "$HOME"])]
    assert (
        cmd.ssh_argv(hostname="h", port=1, user="u", key_path="/k", known_hosts="/kh", command="uname -m")[-1]
        == "uname -m"
    )


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.mark.parametrize(
    "deb822, listed, expected",
    [
        (DEB822, "", "http://deb.debian.org/debian"),
        (
            "",
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main\n",
            "http://mirror.example/debian",
        ),
        ("", "# deb http://no/ bookworm main\ndeb http://sec/ bookworm-security main\n", cmd.DEFAULT_MIRROR),
        ("Types: deb-src\nURIs: http://src/\nSuites: bookworm\n", "", cmd.DEFAULT_MIRROR),
    ],
    ids=["deb822", "sources-list-with-options", "comments-and-other-suites", "deb-src-only"],
)
def test_parse_debian_mirror(deb822, listed, expected):
    assert cmd.parse_debian_mirror(deb822, listed) == expected


def test_rootfs_key_follows_its_inputs():
    from tiramisu_tasks.artifacts.cache import cache_key

    a = cache_key(cmd.rootfs_inputs("http://a/debian"))
    assert a == cache_key(cmd.rootfs_inputs("http://a/debian"))
    assert a != cache_key(cmd.rootfs_inputs("http://b/debian"))
    argv = cmd.debootstrap_argv("/r", "http://a/debian")
    assert argv == [
        "debootstrap",
        "--arch=arm64",
        "--variant=minbase",
        "--include=openssh-server,procps,iproute2",
        "bookworm",
        "/r",
        "http://a/debian",
    ]


def test_aarch64_start_script_order():
    script = cmd.aarch64_start_script("/h/root dir", "arm-1", "/etc/ssh/c")
    lines = script.splitlines()
    assert lines[1] == "mount --make-rprivate /"
    assert "mount -t proc proc '/h/root dir'/proc" in lines
    assert any("devpts" in ln and "newinstance" in ln for ln in lines)
    assert "hostname arm-1" in lines
    assert lines[-1] == "exec chroot '/h/root dir' /usr/sbin/sshd -D -e -f /etc/ssh/c"
    assert cmd.aarch64_start_argv("tmsu-000001", "/s.sh")[:4] == ["ip", "netns", "exec", "tmsu-000001"]


def test_pool_is_private():
    assert cmd.POOL.is_private and cmd.POOL.subnet_of(ipaddress.ip_network("10.0.0.0/8"))


def test_sshd_config_quotes_paths_with_spaces():
    text = cmd.sshd_config(
        port=1,
        listen="127.0.0.1",
        host_keys=["/a b/k"],
        pid_file="/a b/p",
        authorized_keys="/a b/ak",
        allow_users=["u"],
    )
    assert 'HostKey "/a b/k"' in text and 'PidFile "/a b/p"' in text and 'AuthorizedKeysFile "/a b/ak"' in text
    with pytest.raises(ValueError):
        cmd.sshd_config(port=1, listen="l", host_keys=['/x"y'], pid_file="p", authorized_keys="a", allow_users=["u"])
