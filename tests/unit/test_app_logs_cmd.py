"""commands.app_log_files in a real sh: a plain app's log and each module log of a manifest app."""

import subprocess

from tiramisu_tasks import commands as cmd
from tiramisu_tasks.layout import RemoteLayout


def test_lists_the_apps_own_and_module_logs_only(tmp_path):
    layout = RemoteLayout(str(tmp_path))
    logs = tmp_path / "logs" / "apps"
    logs.mkdir(parents=True)
    for name in ("toast.fileserver.log", "toast.log", "toast.ui.log", "toaster.log", "toast-2.x.log"):
        (logs / name).write_text("x\n")
    out = subprocess.run(["sh", "-c", cmd.app_log_files(layout, "toast")], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(logs / n) for n in ("toast.log", "toast.fileserver.log", "toast.ui.log")]
    none = subprocess.run(["sh", "-c", cmd.app_log_files(layout, "absent")], capture_output=True, text=True)
    assert none.returncode == 0 and none.stdout == ""
    gone = subprocess.run(["sh", "-c", cmd.app_log_files(RemoteLayout(str(tmp_path / "nope")), "toast")],
                          capture_output=True, text=True)  # fmt: skip
    assert gone.returncode == 0 and gone.stdout == ""
