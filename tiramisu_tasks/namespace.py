"""The one task namespace behind ``inv``, ``fab`` and ``tiramisu``."""

from invoke import Collection

from .config import DEFAULTS
from .tasks import apps_build, host

ns = Collection()
ns.add_collection(host.ns)
ns.add_task(apps_build.build)
ns.add_task(apps_build.build_languages)

# Built-in defaults; invoke/fabric config files, tiramisu.yaml and runtime
# flags override them in that order (see tiramisu_tasks/config.py).
ns.configure({"tiramisu": DEFAULTS})
