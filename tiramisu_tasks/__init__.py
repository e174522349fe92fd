"""Tiramisu: deploy WebAssembly applications to small Linux boxes over SSH.

The task namespace lives in :mod:`tiramisu_tasks.namespace`; ``tasks.py``,
``fabfile/`` and the ``tiramisu`` console script only expose it.
"""

__version__ = "0.1.0"


def __getattr__(name):
    # Lazy so that `import tiramisu_tasks.targets` in a test does not pull in
    # every task module (and fabric/paramiko) just to read a table.
    if name == "ns":
        from .namespace import ns

        return ns
    raise AttributeError(name)
