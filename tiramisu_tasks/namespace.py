"""The one task namespace behind ``inv``, ``fab`` and ``tiramisu``."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import deploy, host, lifecycle

ns = Collection()
ns.add_collection(host.ns)
ns.add_task(lifecycle.setup)
ns.add_task(lifecycle.teardown)
ns.add_collection(lifecycle.webserv)
for _t in (deploy.deploy, deploy.apps, deploy.rollback, deploy.remove, deploy.logs):
    ns.add_task(_t)

# Built-in defaults; invoke/fabric config files, tiramisu.yaml and runtime
# flags override them in that order (see tiramisu_tasks/config.py).
ns.configure({"tiramisu": DEFAULTS})
