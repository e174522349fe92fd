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

from fabric import Config, Executor
from fabric.main import Fab

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


class TiramisuProgram(Fab):
    def update_config(self):
        self.config.set_project_location(os.getcwd())
        self.config.load_project(merge=False)
        super().update_config()


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
