"""Settings: built-in defaults and how a value is chosen.

Precedence, highest first (a test pins this):

1. the task's runtime flag (``--http-port 8090``);
2. the host's own settings in the inventory (``hosts.pi.settings.http_port``);
3. ``defaults:`` in the inventory file (tiramisu.yaml);
4. ``tiramisu:`` in Invoke/Fabric config files (``invoke.yaml``, ``fabric.yaml``,
   ``INVOKE_TIRAMISU_HTTP_PORT`` ...);
5. the built-in :data:`DEFAULTS`.
"""

DEFAULTS = {
    "env_dir": "~/tiramisu-env",  # on the box
    "http_port": 8080,  # nginx, public
    "server_port": 9000,  # custom_server, 127.0.0.1 only
    "toolchain": "auto",  # zig | gcc | docker | auto
    "nginx_provider": "wheel",  # wheel | source
    "keep_releases": 5,
    "connect_timeout": 10,
    "workers": 2,  # custom_server worker threads
    "request_timeout_ms": 10000,
    "memory_limit_mb": 128,
    "max_response_header": 16384,  # bytes of response header a guest may send (server and nginx agree)
    "server_name": None,  # None: the address the box is reached at (host's hostname)
    "accept_new_host_keys": False,
    "docker_base_image": None,  # toolchain docker: base of its build image (default debian:bookworm)
}

# Per-host settings an inventory entry may carry (host.add flags and YAML).
HOST_SETTINGS = ("env_dir", "http_port", "server_port", "toolchain", "nginx_provider", "keep_releases", "workers",
                 "max_response_header", "server_name")


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


def setting(c, name, flag=None, host=None, inventory=None):
    """Resolve a setting for a task run (``host``: an inventory HostEntry or None)."""
    return resolve_setting(
        name,
        flag=flag,
        host_settings=getattr(host, "settings", None),
        inventory_defaults=getattr(inventory, "defaults", None),
        config_section=_config_section(c),
    )
