"""Settings: built-in defaults and how a value is chosen.

Precedence, highest first (a test pins this):

1. the task's runtime flag (``--http-port 8090``);
2. the host's own settings in the inventory (``hosts.pi.settings.http_port``);
3. ``defaults:`` in the inventory file (tiramisu.yaml);
4. ``tiramisu:`` in Invoke/Fabric config files (``invoke.yaml``, ``fabric.yaml``,
   ``INVOKE_TIRAMISU_HTTP_PORT`` ...);
5. the built-in :data:`DEFAULTS`.
"""

from .options import SETTINGS

# Built-in defaults and the per-host names, both from the one settings table
# (options.SETTINGS: name, type and range, default, where it goes).
DEFAULTS = {row.name: row.default for row in SETTINGS}

# Per-host settings an inventory entry may carry (host.add flags and YAML);
# inventory ``defaults:`` and config files take these and the global ones.
HOST_SETTINGS = tuple(row.name for row in SETTINGS if row.per_host)
# What the inventory's ``defaults:`` may carry.
INVENTORY_SETTINGS = tuple(row.name for row in SETTINGS if row.scope in ("host", "global"))


def _config_section(c):
    try:
        section = c.config.get("tiramisu") or {}
    except AttributeError:
        section = {}
    return section


def resolve_setting(name, flag=None, host_settings=None, inventory_defaults=None, config_section=None):
    """Pure: pick a setting by the precedence above. ``None`` means "not given"."""
    if flag is not None:
        return flag
    for layer in (host_settings, inventory_defaults, config_section):
        if layer and layer.get(name) is not None:
            return layer[name]
    return DEFAULTS.get(name)


_LOAD = object()


def _inventory_defaults(inventory):
    """The inventory's ``defaults:``; ``_LOAD``: read the task's inventory file now."""
    if inventory is _LOAD:
        from .inventory import Inventory  # late: inventory imports this module

        inventory = Inventory.load()
    return getattr(inventory, "defaults", None)


def setting(c, name, flag=None, host=None, inventory=_LOAD):
    """Resolve a setting for a task run (``host``: an inventory HostEntry or None).

    ``inventory``: the loaded inventory whose ``defaults:`` apply; when not
    given, the task's inventory file is read (so every caller honours
    ``defaults:``); None means no inventory layer.
    """
    return resolve_setting(
        name,
        flag=flag,
        host_settings=getattr(host, "settings", None),
        inventory_defaults=_inventory_defaults(inventory),
        config_section=_config_section(c),
    )


def resolve_settings(c, host=None, flags=None, inventory=_LOAD, names=None):
    """Every setting (or ``names``) for one host, the inventory read once: {name: value}."""
    defaults = _inventory_defaults(inventory)
    section = _config_section(c)
    flags = flags or {}
    host_settings = getattr(host, "settings", None)
    return {
        name: resolve_setting(
            name, flag=flags.get(name), host_settings=host_settings, inventory_defaults=defaults, config_section=section
        )
        for name in (names or DEFAULTS)
    }
