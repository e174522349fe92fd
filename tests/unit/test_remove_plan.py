"""remove's plan (pure): --purge-data shows what it deletes, under --dry too."""

from tiramisu_tasks import commands as cmd
from tiramisu_tasks.layout import RemoteLayout
from tiramisu_tasks.plans import plan_remove


def test_purge_data_lists_the_data_folder_and_secrets_file():
    layout = RemoteLayout("/home/u/tiramisu-env")
    plan = plan_remove("box", "sec", "", layout.app_releases("sec"), cmd.app_data_paths(layout, "sec"))
    assert plan.text() == (
        "plan for box: stop serving sec, delete /home/u/tiramisu-env/releases/sec, "
        "delete /home/u/tiramisu-env/data/sec, delete /home/u/tiramisu-env/secrets/sec, "
        "delete /home/u/tiramisu-env/secrets/sec.env"
    )
    assert plan.as_dict()["purge"] == [
        "/home/u/tiramisu-env/data/sec",
        "/home/u/tiramisu-env/secrets/sec",
        "/home/u/tiramisu-env/secrets/sec.env",
    ]
    assert "data/sec" not in plan_remove("box", "sec", "", layout.app_releases("sec")).text()
