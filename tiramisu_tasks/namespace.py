"""The one task namespace behind ``inv``, ``fab`` and ``tiramisu``."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import host
from .tasks import server

ns = Collection()
ns.add_collection(host.ns)
ns.add_collection(server.ns)

# Built-in defaults; invoke/fabric config files, tiramisu.yaml and runtime
# flags override them in that order (see tiramisu_tasks/config.py).
ns.configure({"tiramisu": DEFAULTS})
