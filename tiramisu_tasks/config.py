"""Settings: built-in defaults and how a value is chosen.

Precedence, highest first (tests pin this, README "Settings"):

1. the task's runtime flag (``--http-port 8090``);
2. the host's own settings in the inventory (``hosts.pi.settings.http_port``);
3. ``defaults:`` in the inventory file (tiramisu.yaml);
4. the environment: ``TIRAMISU_<SETTING>`` (``TIRAMISU_HTTP_PORT=8081``), read
   here for all three front ends; ``INVOKE_TIRAMISU_<SETTING>`` and
   ``FABRIC_TIRAMISU_<SETTING>`` are read as older spellings of the same
   variable (``TIRAMISU_`` wins when both are set);
5. ``tiramisu:`` in Invoke/Fabric config files (``invoke.yaml``, ``fabric.yaml``);
6. the built-in :data:`DEFAULTS`.

The environment sits where Invoke puts its own variables, just above config
files: a variable changes a session's default, but what the inventory says
about a host (or about every host, ``defaults:``) still holds.
"""

import os

from .errors import UsageError
from .options import SETTINGS, SETTINGS_BY_NAME, parse_setting

# Built-in defaults and the per-host names, both from the one settings table
# (options.SETTINGS: name, type and range, default, where it goes).
DEFAULTS = {row.name: row.default for row in SETTINGS}

# Per-host settings an inventory entry may carry (host.add flags and YAML);
# inventory ``defaults:`` and config files take these and the global ones.
HOST_SETTINGS = tuple(row.name for row in SETTINGS if row.per_host)
# What the inventory's ``defaults:`` may carry.
INVENTORY_SETTINGS = tuple(row.name for row in SETTINGS if row.scope in ("host", "global"))


# The one prefix (first) and the older front-end spellings, in the order they count.
ENV_PREFIXES = ("TIRAMISU_", "INVOKE_TIRAMISU_", "FABRIC_TIRAMISU_")

# Layer names, highest first, as host.show reports where a value came from.
LAYERS = ("flag", "host", "defaults", "env", "config", "built-in")


def env_variable(name):
    """``http_port`` -> ``TIRAMISU_HTTP_PORT`` (pure)."""
    return ENV_PREFIXES[0] + name.upper()


def env_settings(environ=None):
    """{setting: value} from the environment, each value checked by its type (pure given ``environ``).

    For each setting of the table the first of ``TIRAMISU_X``,
    ``INVOKE_TIRAMISU_X``, ``FABRIC_TIRAMISU_X`` that is set (and not empty)
    counts. A bad value is a UsageError naming the variable (exit 2).
    """
    environ = os.environ if environ is None else environ
    found = {}
    for name in SETTINGS_BY_NAME:
        for prefix in ENV_PREFIXES:
            variable = prefix + name.upper()
            value = environ.get(variable)
            if value is not None and value.strip() != "":
                found[name] = parse_setting(name, value, label=variable)
                break
    return found


def _config_section(c):
    try:
        section = c.config.get("tiramisu") or {}
    except AttributeError:
        section = {}
    if not hasattr(section, "items"):
        raise UsageError("config files: 'tiramisu:' must be a mapping of setting: value")
    return section


def resolve_setting_source(name, flag=None, host_settings=None, inventory_defaults=None, env=None, config_section=None):
    """Pure: ``(value, layer)`` for a setting by the precedence above (layer: one of :data:`LAYERS`).

    ``None`` in any layer means "not given".
    """
    if flag is not None:
        return flag, "flag"
    for layer, values in (
        ("host", host_settings),
        ("defaults", inventory_defaults),
        ("env", env),
        ("config", config_section),
    ):
        if values and values.get(name) is not None:
            if layer == "config" and values[name] == DEFAULTS.get(name):
                break  # the namespace puts the built-ins into Invoke's config (namespace.py)
            return values[name], layer
    return DEFAULTS.get(name), "built-in"


def resolve_setting(name, flag=None, host_settings=None, inventory_defaults=None, config_section=None, env=None):
    """Pure: pick a setting by the precedence above. ``None`` means "not given"."""
    return resolve_setting_source(
        name,
        flag=flag,
        host_settings=host_settings,
        inventory_defaults=inventory_defaults,
        env=env,
        config_section=config_section,
    )[0]


_LOAD = object()


def _inventory_defaults(inventory):
    """The inventory's ``defaults:``; ``_LOAD``: read the task's inventory file now."""
    if inventory is _LOAD:
        from .inventory import Inventory  # late: inventory imports this module

        inventory = Inventory.load()
    if inventory is None:
        return None
    checked = getattr(inventory, "checked_defaults", None)
    return checked() if checked else getattr(inventory, "defaults", None)


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
        env=env_settings(),
        config_section=_config_section(c),
    )


def resolve_settings(c, host=None, flags=None, inventory=_LOAD, names=None):
    """Every setting (or ``names``) for one host, the inventory read once: {name: value}."""
    return {name: value for name, (value, _) in resolve_settings_sources(c, host, flags, inventory, names).items()}


def resolve_settings_sources(c, host=None, flags=None, inventory=_LOAD, names=None):
    """Like :func:`resolve_settings`, with where each value came from: {name: (value, layer)}.

    Raises InventoryError for a ``defaults:`` that failed its check and
    UsageError for a bad environment value.
    """
    defaults = _inventory_defaults(inventory)
    env = env_settings()
    section = _config_section(c)
    flags = flags or {}
    host_settings = getattr(host, "settings", None)
    return {
        name: resolve_setting_source(
            name,
            flag=flags.get(name),
            host_settings=host_settings,
            inventory_defaults=defaults,
            env=env,
            config_section=section,
        )
        for name in (names or DEFAULTS)
    }
