"""Server setting ``keep-resident``: bytes of a pooled memory reset by copying
instead of madvise (bench/guests_bench.py --keep-resident measures it)."""

import json
import subprocess


def _settings(binary, *flags):
    return subprocess.run([binary, *flags, "--pooling", "on", "--engine-settings"], capture_output=True, text=True)


def test_keep_resident_default_value_and_bad_values(server_build):
    binary = str(server_build / "bin" / "custom_server")
    assert "--keep-resident" in subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    p = _settings(binary)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["runtime"]["linear_memory_keep_resident"] == 64 << 10
    p = _settings(binary, "--keep-resident", "4m")
    assert json.loads(p.stdout)["runtime"]["linear_memory_keep_resident"] == 4 << 20
    # a runtime setting, no part of compiled code: the settings hash does not move
    assert json.loads(p.stdout)["settings_hash"] == json.loads(_settings(binary).stdout)["settings_hash"]
    for value in ("2g", "-1", "4x", ""):
        p = _settings(binary, "--keep-resident", value)
        assert p.returncode != 0 and "keep-resident" in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_keep_resident_serves(run_server, wat_module, tmp_path):
    from tests.cserver.test_guestpool import start

    srv = start(run_server, wat_module, tmp_path, keep_resident="4m")
    for _ in range(20):
        assert srv.get("/hello/")[0] == 200


def test_setting_renders_a_value_the_server_takes(server_build):
    from tiramisu_tasks.config import DEFAULTS
    from tiramisu_tasks.render import server_conf_lines

    lines = dict(server_conf_lines(dict(DEFAULTS)))
    assert lines["keep-resident"] == 64 * 1024
    lines = dict(server_conf_lines(dict(DEFAULTS, keep_resident=4 << 20)))
    binary = str(server_build / "bin" / "custom_server")
    p = _settings(binary, "--keep-resident", str(lines["keep-resident"]))
    assert json.loads(p.stdout)["runtime"]["linear_memory_keep_resident"] == 4 << 20
