"""Invoke entry point: ``inv --list``. The namespace lives in tiramisu_tasks."""

import os
import sys

# `inv` from a checkout that was not pip-installed still finds the package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tiramisu_tasks.namespace import ns  # noqa: E402,F401
