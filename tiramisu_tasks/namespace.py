"""The one task namespace behind ``inv``, ``fab`` and ``tiramisu``.

One line per task module below, so branches touching different modules merge
cleanly.
"""

from invoke import Collection

from .config import DEFAULTS
from .tasks import apps_build, demo, deploy, host, lifecycle, sandbox, server
from .tasks import artifacts as artifacts_tasks
from .tasks import history as history_tasks
from .tasks import init as init_tasks
from .tasks import lock as lock_tasks
from .tasks import nginx as nginx_tasks
from .tasks import tls as tls_tasks
from .tasks import toolchain as toolchain_tasks

ns = Collection()
ns.add_task(demo.demo)
ns.add_task(lifecycle.setup)
ns.add_task(lifecycle.teardown)
ns.add_task(deploy.deploy)
ns.add_task(deploy.apps)
ns.add_task(deploy.rollback)
ns.add_task(deploy.remove)
ns.add_task(deploy.logs)
ns.add_task(deploy.env)
ns.add_collection(host.ns)
ns.add_collection(lifecycle.webserv)
ns.add_collection(sandbox.ns)
ns.add_collection(server.ns)
ns.add_collection(nginx_tasks.ns)
ns.add_collection(toolchain_tasks.ns)
ns.add_collection(artifacts_tasks.ns)
ns.add_collection(tls_tasks.ns)
ns.add_task(apps_build.build)
ns.add_task(apps_build.build_languages)
ns.add_collection(lock_tasks.ns)
ns.add_task(history_tasks.history)
ns.add_task(init_tasks.init)

# Built-in defaults; invoke/fabric config files, tiramisu.yaml and runtime
# flags override them in that order (see tiramisu_tasks/config.py).
ns.configure({"tiramisu": DEFAULTS})


def _name_tasks(coll, prefix=""):
    """Give each task the name a user types (``webserv.start``), for messages."""
    for name, t in coll.tasks.items():
        t.cli_name = prefix + name
    for name, sub in coll.collections.items():
        _name_tasks(sub, f"{prefix}{name}.")


_name_tasks(ns)
