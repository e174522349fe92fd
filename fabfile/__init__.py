"""Fabric entry point: ``fab -H box TASK``. The namespace lives in tiramisu_tasks.

fab puts only this folder on sys.path, so add the repo root for checkouts that
were not pip-installed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# `fab -H a,b TASK` means `fab TASK --host a,b` (one parallel run, groups and
# inventory names), as under `tiramisu`. fab picks its executor class before it
# loads any task configuration, so it is set on the running program here.
import fabric.main  # noqa: E402

from tiramisu_tasks.cli import TiramisuExecutor  # noqa: E402
from tiramisu_tasks.namespace import ns  # noqa: E402,F401

fabric.main.program.executor_class = TiramisuExecutor
