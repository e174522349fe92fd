"""The one task namespace behind ``inv``, ``fab`` and ``tiramisu``."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import host
from .tasks import server
from .tasks import nginx as nginx_tasks
from .tasks import toolchain as toolchain_tasks
from .tasks import artifacts as artifacts_tasks

ns = Collection()
ns.add_collection(host.ns)
ns.add_collection(server.ns)
ns.add_collection(nginx_tasks.ns)
ns.add_collection(toolchain_tasks.ns)
ns.add_collection(artifacts_tasks.ns)

# Built-in defaults; invoke/fabric config files, tiramisu.yaml and runtime
# flags override them in that order (see tiramisu_tasks/config.py).
ns.configure({"tiramisu": DEFAULTS})
