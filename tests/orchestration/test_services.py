"""webserv.start/stop/restart/reload, status and teardown over a FakeBox."""

import pytest

from tests.fakebox import observed
from tests.orchestration.conftest import NGINX_PID, ROOT, SERVER_PID, script_running_services, script_starts
from tiramisu_tasks import lifecycle as lc
from tiramisu_tasks.errors import RemoteError, UsageError


def test_start_reaps_orphans_beside_nginx_and_starts_only_the_stopped_server(fake, open_fake):
    fake.on(r"^echo state server", observed(nginx=NGINX_PID, orphans=[(4300, 1, "nginx")]))
    script_starts(fake)
    fake.on(r"^envprocs\(\).*\[ \"\$p\" != 4200 \]", "reaped 4300\n")  # spare the pid-file nginx
    result = lc.start(open_fake())
    assert result == {"reaped": {"nginx": [4300]}, "done": {"server": "start"}}
    assert fake.ran("nohup setsid .*custom_server") and not fake.ran("nohup setsid .*bin/nginx")


def test_a_service_that_dies_at_start_reports_its_last_words(fake, open_fake):
    script_running_services(fake, server=None)
    script_starts(fake)
    fake.on(r"^kill -0 ", "no\n")
    fake.on(r"^tail -n 8 .*server.out", "bind: Address already in use (port 9000)\nother\n")
    with pytest.raises(RemoteError, match=r"custom_server exited right after start: bind: Address already in use"):
        lc.start(open_fake())


def test_stop_stops_nginx_then_the_server(fake, open_fake):
    fake.on(r"^\( p=\$\(cat .*nginx\.pid", "stopped\nreaped\n")
    fake.on(r"^\( p=\$\(cat .*server\.pid", "killed\nreaped 77\n")
    assert lc.stop(open_fake(), timeout=3) == {"nginx": "stopped", "server": "killed (+1 orphaned)"}
    assert "-lt 30" in fake.commands[1]  # the timeout, in tenths


def test_restart_stops_both_and_starts_both(fake, open_fake):
    fake.on(r"^\( p=\$\(cat ", "stopped\nreaped\n")
    script_starts(fake)
    result = lc.restart(open_fake())
    assert result["done"] == {"server": "start", "nginx": "start"} and result["health"].status == 200


def test_reload_needs_nginx_running(fake, open_fake):
    fake.on(r"^echo state server", observed(server=SERVER_PID))
    with pytest.raises(UsageError, match="nginx is not running on fake: use webserv.start"):
        lc.reload(open_fake())


def test_reload_tests_the_config_reloads_and_rescans(fake, open_fake):
    script_running_services(fake)
    fake.on(r"bin/nginx -t -q")
    fake.on(r"bin/nginx -s reload")
    fake.on(rf"^kill -HUP {SERVER_PID}$")
    assert lc.reload(open_fake()) is True


def test_reload_with_a_broken_config_reloads_nothing(fake, open_fake):
    script_running_services(fake)
    fake.on(r"bin/nginx -t -q", 'nginx: [emerg] unknown directive "x"\n', exited=1)
    with pytest.raises(RemoteError, match="nginx -t failed, config not reloaded"):
        lc.reload(open_fake())
    assert not fake.ran("-s reload")


def test_status_counts_orphans_as_unhealthy(fake, open_fake):
    fake.on(r"^echo state server", observed(server=SERVER_PID, nginx=NGINX_PID, orphans=[(4300, 1, "nginx")]))
    fake.on_http("/_tiramisu/health", 200, "ok", port=9000)
    fake.on_http("/.well-known/tiramisu/health", 200, "ok", port=8080)
    report = lc.status(open_fake())
    assert report["services"]["nginx"]["orphans"] == [4300] and report["healthy"] is False


def test_teardown_stops_both_drops_the_boot_line_and_deletes_the_env(fake, open_fake):
    fake.on(r"^\( p=\$\(cat ", "stopped\nreaped\n")
    fake.on(r"^if crontab -l")
    fake.on(rf"^rm -rf -- {ROOT}$")
    result = lc.teardown(open_fake(need_supported=False))
    assert result["removed"] and list(result["stopped"]) == ["nginx", "server"]
    assert fake.commands[-1] == f"rm -rf -- {ROOT}"


def test_teardown_dry_and_teardown_of_nothing_change_nothing(fake, open_fake):
    assert lc.teardown(open_fake(need_supported=False), dry=True)["plan"]["stop"] == ["nginx", "server"]
    assert len(fake.commands) == 1  # the probe only
    assert lc.teardown(open_fake(installed=False, running=False))["removed"] is False


def test_teardown_refuses_the_home_dir_before_stopping_anything(fake, settings):
    from tests.orchestration.conftest import open_on

    box = open_on(fake, dict(settings, env_dir="~"), home=ROOT)
    with pytest.raises(UsageError, match=f"refusing to delete {ROOT}"):
        lc.teardown(box)
    assert len(fake.commands) == 1
