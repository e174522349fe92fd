"""Every task's short flags are letters or digits (Invoke alone can pick the
``-`` of a long name such as ``health-timeout``, printed as ``--``)."""

from tiramisu_tasks.namespace import ns


def test_short_flags_are_letters_or_digits():
    bad = []
    for name in ns.task_names:
        for arg in ns[name].get_arguments():
            bad += [(name, flag) for flag in arg.names if len(flag) == 1 and not flag.isalnum()]
    assert bad == []


def test_short_flags_unique_per_task():
    for name in ns.task_names:
        flags = [flag for arg in ns[name].get_arguments() for flag in arg.names if len(flag) == 1]
        assert len(flags) == len(set(flags)), name
