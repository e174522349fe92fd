"""Fabric entry point: ``fab -H box TASK``. The namespace lives in tiramisu_tasks.

fab puts only this folder on sys.path, so add the repo root for checkouts that
were not pip-installed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tiramisu_tasks.namespace import ns  # noqa: E402,F401
