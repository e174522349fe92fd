"""A fleet's setup: local work done once per run, every host at once, cheaper ciphers, phase times."""

import hashlib
import os
import threading
import time
from types import SimpleNamespace

import paramiko

from tiramisu_tasks import hostrun, lifecycle
from tiramisu_tasks.connect import AEAD_FIRST, aead_first_transport, cipher_preference
from tiramisu_tasks.transfer import Upload, file_sha256


def test_upload_digest_is_hashed_once_while_the_file_is_unchanged(tmp_path, monkeypatch):
    from tiramisu_tasks.artifacts import cache

    f = tmp_path / "lib.so"
    f.write_bytes(b"a" * 1000)
    calls = []
    real = cache.sha256_file
    monkeypatch.setattr(cache, "sha256_file", lambda p: calls.append(p) or real(p))
    first = Upload.of(f, "/env/lib/lib.so")
    second = Upload.of(f, "/env/other/lib.so", "700")
    assert first.sha256 == second.sha256 == hashlib.sha256(b"a" * 1000).hexdigest()
    assert len(calls) == 1
    # a changed file (new size, new mtime) is hashed again
    f.write_bytes(b"b" * 1001)
    assert Upload.of(f, "/env/lib/lib.so").sha256 == hashlib.sha256(b"b" * 1001).hexdigest()
    assert len(calls) == 2


def test_same_size_rewrite_is_hashed_again(tmp_path):
    f = tmp_path / "conf"
    f.write_bytes(b"one")
    assert file_sha256(f) == hashlib.sha256(b"one").hexdigest()
    f.write_bytes(b"two")
    st = os.stat(f)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # even if mtime were coarse: ctime moves
    assert file_sha256(f) == hashlib.sha256(b"two").hexdigest()


def test_one_ship_builds_once_per_target_for_every_host(monkeypatch):
    from tiramisu_tasks import shipment

    builds = []
    gate = threading.Event()

    def build(target, toolchain, provider, note=None, toolchain_settings=None):
        builds.append((target.name, toolchain, provider))
        gate.wait(2)
        return SimpleNamespace(files={}, target=target.name)

    monkeypatch.setattr(shipment, "build_shipment", build)
    monkeypatch.setattr("tiramisu_tasks.toolchains.settings_from_config", lambda c: {})
    ship = lifecycle.local_shipment(object())
    x86, arm = SimpleNamespace(name="x86_64-linux-gnu"), SimpleNamespace(name="aarch64-linux-gnu")
    got = []
    threads = [
        threading.Thread(target=lambda t=t: got.append(ship(t, "auto", "wheel", None))) for t in [x86] * 8 + [arm] * 4
    ]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join()
    assert sorted(builds) == [("aarch64-linux-gnu", "auto", "wheel"), ("x86_64-linux-gnu", "auto", "wheel")]
    assert len(got) == 12 and len({id(s) for s in got}) == 2


def test_a_failed_build_is_retried_by_the_next_host(monkeypatch):
    from tiramisu_tasks import shipment

    calls = []

    def build(target, *a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("compiler crashed")
        return "ok"

    monkeypatch.setattr(shipment, "build_shipment", build)
    monkeypatch.setattr("tiramisu_tasks.toolchains.settings_from_config", lambda c: {})
    ship = lifecycle.local_shipment(object())
    target = SimpleNamespace(name="x86_64-linux-gnu")
    try:
        ship(target, "auto", "wheel", None)
    except RuntimeError:
        pass
    assert ship(target, "auto", "wheel", None) == "ok"


def test_every_host_of_a_20_host_group_runs_at_once(monkeypatch):
    """No queue behind a small pool: 20 hosts that each wait 0.3 s take ~0.3 s, not 0.6 s."""
    from tiramisu_tasks.connect import HostSpec

    specs = [HostSpec(name=f"h{i}", hostname=f"10.0.0.{i}") for i in range(20)]
    monkeypatch.setattr(hostrun, "resolve_specs", lambda c, host, inv: specs)
    monkeypatch.setattr(hostrun, "host_config", lambda c: None)
    monkeypatch.setattr(hostrun.Inventory, "load", classmethod(lambda cls, path=None: None))
    closed = []
    monkeypatch.setattr(
        hostrun, "connect", lambda *a, **kw: SimpleNamespace(close=lambda: closed.append(1), host="x", port=22)
    )
    running, peak, lock = [0], [0], threading.Lock()

    def fn(conn, spec, rep):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)
        with lock:
            running[0] -= 1
        return spec.name

    results = hostrun.run_on_hosts(None, "fleet", fn, quiet=True)
    assert [r.value for r in results] == [s.name for s in specs]
    assert peak[0] == 20 and len(closed) == 20


def test_gcm_first_keeps_every_other_cipher_behind_it():
    ciphers = paramiko.Transport._preferred_ciphers
    ordered = cipher_preference(ciphers)
    assert ordered[: len(AEAD_FIRST)] == AEAD_FIRST
    assert sorted(ordered) == sorted(ciphers)
    assert cipher_preference(("aes128-ctr",)) == ("aes128-ctr",)  # a build without GCM: unchanged


def test_our_transports_offer_gcm_first():
    import socket

    a, b = socket.socketpair()
    try:
        transport = aead_first_transport(a)
        assert transport.get_security_options().ciphers[0] == "aes128-gcm@openssh.com"
    finally:
        a.close()
        b.close()


def test_phase_timer_adds_up_marks():
    timer = lifecycle.PhaseTimer()
    time.sleep(0.01)
    timer.mark("a")
    timer.mark("b")
    time.sleep(0.01)
    timer.mark("a")
    assert set(timer.seconds) == {"a", "b"}
    assert timer.seconds["a"] >= 0.02 and timer.seconds["b"] < 0.01


def test_connection_facts_of_a_fake_box_are_empty():
    assert lifecycle.connection_facts(SimpleNamespace(effects=object())) == {}


class _RecordingChannel:
    """The upload channel's side of upload_batch: records each write's size."""

    def __init__(self):
        self.writes = []

    def settimeout(self, t):
        pass

    def exec_command(self, command):
        self.command = command

    def sendall(self, data):
        self.writes.append(len(data))

    def shutdown_write(self):
        pass

    def recv_exit_status(self):
        return 0

    def recv_stderr_ready(self):
        return False

    def close(self):
        pass


def test_upload_stream_goes_in_large_writes(tmp_path, monkeypatch):
    """Full SSH packets, not one small packet per 10 KiB tar record (BENCHMARKS.md "Fleet")."""
    from tiramisu_tasks import remote, transfer

    big = tmp_path / "lib.so"
    big.write_bytes(os.urandom(2 * 1024 * 1024))
    chan = _RecordingChannel()
    transport = SimpleNamespace(is_active=lambda: True, open_session=lambda timeout=None: chan)
    monkeypatch.setattr(remote, "ensure_open", lambda conn: transport)
    sent = transfer.upload_batch(SimpleNamespace(host="box"), "/env", [Upload.of(big, "/env/lib/lib.so")])
    assert sent == sum(chan.writes) >= 2 * 1024 * 1024
    assert max(chan.writes) == transfer.STREAM_CHUNK
    assert len(chan.writes) <= sent // transfer.STREAM_CHUNK + 2


def test_a_receiver_killed_by_a_signal_is_named_as_such():
    from tiramisu_tasks.errors import RemoteError
    from tiramisu_tasks.transfer import receiver_error

    err = receiver_error("box", -1, "", 10)
    assert isinstance(err, RemoteError) and err.code == 1
    assert "without an exit status" in err.message and "nothing was replaced" in err.message
    assert "exit 72" in receiver_error("box", 72, "x", 10).message  # an ordinary failure keeps its status
