"""The ``tiramisu`` console script: Fabric's program over our namespace.

Two things stock ``fab`` does not do:

* ``-H NAME`` where NAME is an inventory host or group: the executor expands
  groups, and tasks resolve inventory names themselves (so ``fab -H`` gets the
  same behaviour through the task-level resolver in :mod:`connect`).
* project config: a Program built with ``namespace=`` does not look for
  invoke.yaml/fabric.yaml beside the tasks, so ``update_config`` loads the
  current directory's project config before Fabric reads ``ssh_config_path``.
"""

import os
import re

from fabric import Config, Executor
from fabric.main import Fab
from invoke.exceptions import Exit, ParseError

from . import __version__
from .namespace import ns


class TiramisuExecutor(Executor):
    def normalize_hosts(self, hosts):
        from .inventory import Inventory

        expanded = []
        try:
            groups = Inventory.load().groups()
        except Exception:  # a broken inventory is reported by the task itself
            groups = {}
        for value in hosts or []:
            if isinstance(value, str) and value in groups:
                expanded.extend(groups[value])
            else:
                expanded.append(value)
        return super().normalize_hosts(expanded)


def usage_message(text):
    """Invoke's parse error as the one line `tiramisu:` users see (pure)."""
    m = re.match(r"No idea what '(.*)' is!$", text)
    if m:
        return f"tiramisu: no task or option '{m.group(1)}' (tiramisu --list shows the tasks)"
    return f"tiramisu: {text[:1].lower()}{text[1:]}"


def _as_usage_error(step):
    """Run one parse step; a parse error or a core option's bad value becomes exit 2."""
    try:
        return step()
    except ParseError as exc:
        raise Exit(usage_message(str(exc)), code=2) from None
    except ValueError as exc:  # e.g. -t abc: Invoke/Fabric call int() on core option values
        raise Exit(f"tiramisu: bad value for a core option: {exc}", code=2) from None


# Tasks whose first positional argument may be left out (Invoke's parser has no
# optional positional arguments): the empty string stands for "not given".
OPTIONAL_POSITIONAL = {"history"}


def fill_optional_positionals(tokens, task_names=OPTIONAL_POSITIONAL):
    """``history --host H`` -> ``history '' --host H`` (pure); a task name given as
    a flag's value (``--name history``) is left alone."""
    out = list(tokens)
    for i, token in enumerate(tokens):
        if token in task_names and (i == 0 or not tokens[i - 1].startswith("-")):
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following.startswith("-"):
                out.insert(i + 1 + (len(out) - len(tokens)), "")
    return out


class TiramisuProgram(Fab):
    """Fabric's program; usage errors exit 2 with one `tiramisu:` line (Invoke's exit 1)."""

    def parse_core(self, argv):
        return _as_usage_error(lambda: super(TiramisuProgram, self).parse_core(argv))

    def parse_collection(self):
        return _as_usage_error(super().parse_collection)

    def parse_tasks(self):
        self.core.unparsed = fill_optional_positionals(self.core.unparsed)
        return _as_usage_error(super().parse_tasks)

    def parse_cleanup(self):
        return _as_usage_error(super().parse_cleanup)

    def update_config(self):
        def update():
            self.config.set_project_location(os.getcwd())
            self.config.load_project(merge=False)
            super(TiramisuProgram, self).update_config()

        return _as_usage_error(update)


def make_program():
    return TiramisuProgram(
        name="Tiramisu",
        binary="tiramisu",
        binary_names=["tiramisu"],
        version=__version__,
        namespace=ns,
        executor_class=TiramisuExecutor,
        config_class=Config,
    )


def main():
    make_program().run()
