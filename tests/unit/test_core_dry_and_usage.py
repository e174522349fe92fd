"""Invoke's core dry-run flag and parse errors, as the task layer and the console script treat them."""

import pytest

from tiramisu_tasks.cli import usage_message
from tiramisu_tasks.errors import UsageError
from tiramisu_tasks.taskkit import READ_ONLY_TASKS, apply_core_dry_run


def test_a_task_with_its_own_dry_run_gets_dry_true():
    args = {"host": "box", "dry": False}
    apply_core_dry_run("teardown", "tiramisu_tasks.tasks.lifecycle.teardown", args, has_dry=True)
    assert args["dry"] is True


def test_a_read_only_task_runs_as_usual():
    args = {"host": "box"}
    apply_core_dry_run("apps", "tiramisu_tasks.tasks.deploy.apps", args, has_dry=False)
    assert args == {"host": "box"}


def test_any_other_task_is_refused_with_a_usage_error():
    with pytest.raises(UsageError, match="webserv.start has no dry run"):
        apply_core_dry_run("webserv.start", "tiramisu_tasks.tasks.lifecycle.start", {}, has_dry=False)


def test_the_read_only_list_names_real_tasks():
    import importlib

    for qualname in READ_ONLY_TASKS:
        module, _, name = qualname.rpartition(".")
        assert hasattr(importlib.import_module(module), name), qualname


@pytest.mark.parametrize(
    "text, line",
    [
        ("No idea what 'setpu' is!", "tiramisu: no task or option 'setpu' (tiramisu --list shows the tasks)"),
        (
            "Flag 'host' needed value and was not given one!",
            "tiramisu: flag 'host' needed value and was not given one!",
        ),
    ],
)
def test_parse_errors_become_one_tiramisu_line(text, line):
    assert usage_message(text) == line
