"""Parallel host runs never share one mutable Invoke/Fabric config.

20 hosts in a group, ``setup --host group``: once in six runs, some hosts failed
with Invoke's "No attribute or config key found". Building a fabric Connection
writes into its config when it merges key files (``resolve_connect_kwargs``),
and a write makes Invoke re-merge the whole config from an empty dict, so
another thread reading the same config at that moment finds nothing.

The stress test drives the real path - ``hostrun.run_on_hosts`` over an
inventory group, ``connect.connect`` building the Connections in worker
threads - with a per-host function that reads both the task's context and the
host's Connection config the way tasks do. No box is contacted.
"""

import threading
import time

import fabric
import invoke
import pytest

from tiramisu_tasks import hostrun
from tiramisu_tasks.config import DEFAULTS, setting
from tiramisu_tasks.inventory import HostEntry, Inventory

HOSTS = 20


@pytest.fixture
def busy_switching():
    """Switch threads every microsecond (default 5 ms) so a race shows up in a few runs."""
    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """An inventory with 20 hosts in group 'fleet', no per-host key (like fresh boxes)."""
    path = tmp_path / "tiramisu.yaml"
    monkeypatch.setenv("TIRAMISU_INVENTORY", str(path))
    monkeypatch.setenv("TIRAMISU_HOME", str(tmp_path))
    inv = Inventory.load()
    for i in range(HOSTS):
        inv.hosts[f"h{i:02d}"] = HostEntry(
            name=f"h{i:02d}",
            hostname="127.0.0.1",
            port=2200 + i,
            user="pi",
            groups=["fleet"],
            settings={"http_port": 8100 + i},
        )
    inv.save()
    key = tmp_path / "id_test"
    key.write_text("not a real key: never opened\n")
    return str(key)


def fab_context(key):
    """The Context the ``tiramisu``/``fab`` front ends give a task: a Fabric config,
    here with ``-i KEY`` (connect_kwargs.key_filename) as the runtime config has it."""
    cfg = fabric.Config(overrides={"connect_kwargs": {"key_filename": [key]}, "tiramisu": dict(DEFAULTS, workers=3)})
    return invoke.Context(config=cfg)


def inv_context(key):
    """The Context ``inv`` gives a task: a plain Invoke config."""
    cfg = invoke.Config(overrides={"tiramisu": dict(DEFAULTS, workers=3)})
    return invoke.Context(config=cfg)


class StartTogether:
    """Lines up the pool's first wave of workers so they really overlap."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties)
        self.lock = threading.Lock()
        self.arrived = 0

    def wait(self):
        with self.lock:
            self.arrived += 1
            first_wave = self.arrived <= self.barrier.parties
        if first_wave:
            try:
                self.barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass


def per_host(c, seen, start):
    def one(conn, spec, rep):
        start.wait()
        for _ in range(10):
            # What setup does per host: settings from the task's context, and the
            # Connection's own config (run options, timeouts, key files).
            assert setting(c, "workers", host=spec.entry) == 3
            assert setting(c, "http_port", host=spec.entry) == spec.entry.settings["http_port"]
            assert conn.config.timeouts.connect is not None or True
            assert conn.config.run.warn is False
            assert isinstance(conn.connect_kwargs.get("key_filename", []), list)
            fabric.Connection("127.0.0.1", port=spec.port, config=conn.config)  # nested use, as sshhttp does
            time.sleep(0)
        seen.append((spec.name, id(conn.config)))
        return spec.name

    return one


@pytest.mark.parametrize("make_context", [fab_context, inv_context], ids=["fab-config", "inv-config"])
def test_group_run_stress_never_shares_a_config(fleet, make_context, busy_switching):
    for attempt in range(12):
        c = make_context(fleet)
        seen = []
        start = StartTogether(min(HOSTS, 16))  # the pool runs at most 16 at once
        results = hostrun.run_on_hosts(c, "fleet", per_host(c, seen, start), quiet=True)
        failed = [(r.name, r.error) for r in results if not r.ok]
        assert not failed, f"attempt {attempt}: {failed}"
        assert sorted(r.value for r in results) == [f"h{i:02d}" for i in range(HOSTS)]
        configs = {cid for _, cid in seen}
        assert len(configs) == HOSTS, "every host must get its own config object"
        assert id(c.config) not in configs


def test_each_host_connection_has_its_own_config_copy(fleet):
    c = fab_context(fleet)
    conns = []
    hostrun.run_on_hosts(c, "fleet", lambda conn, spec, rep: conns.append(conn), quiet=True)
    assert len({id(conn.config) for conn in conns}) == HOSTS
    # Writes into one host's config stay there.
    conns[0].config.connect_kwargs["allow_agent"] = False
    assert "allow_agent" not in conns[1].config.connect_kwargs
    assert "allow_agent" not in c.config.connect_kwargs
