"""Typed task options: one place that says what each numeric option accepts.

Invoke parses a flag whose default is an ``int`` with ``int(value)`` inside its
parser, so ``--lines x`` ended in a traceback, and flags that default to
``None`` (``--http-port``) reached the task as strings and failed only after
connecting. Here every numeric option is declared once (by option name in
:data:`OPTION_TYPES`, or per task with ``@task(types=...)``); the task
decorator shows Invoke a string option and checks the value with
:func:`parse_option` before the task body runs, so a bad value is one line,
exit 2, and nothing was touched.

Everything in this module is pure.
"""

import re
from dataclasses import dataclass
from typing import Optional

from .errors import UsageError

_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class IntOption:
    """An integer in ``[low, high]`` (``high`` None: no upper bound)."""

    low: int
    high: Optional[int] = None
    unit: str = ""  # e.g. "seconds", shown in help

    def accepts(self):
        """What the option accepts, for errors and help: ``an integer 1-65535``."""
        span = f"{self.low}-{self.high}" if self.high is not None else f">= {self.low}"
        return f"an integer {span}" + (f" ({self.unit})" if self.unit else "")

    def convert(self, value):
        """The int for ``value`` (str or int), or None if it is not acceptable."""
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            number = int(value.strip())
        else:
            return None
        if number < self.low or (self.high is not None and number > self.high):
            return None
        return number


PORT = IntOption(1, 65535)
RELEASES = IntOption(1, 1000)
LINES = IntOption(0, 1_000_000)
SECONDS = IntOption(0, 86400, unit="seconds")
WORKERS = IntOption(1, 256)

# Option name (Python parameter name) -> type, for every task that has it.
OPTION_TYPES = {
    "http_port": PORT,
    "server_port": PORT,
    "port": PORT,
    "keep": RELEASES,
    "lines": LINES,
    "timeout": SECONDS,
}

# Numeric per-host settings (host.add --set KEY=VALUE, inventory settings).
SETTING_TYPES = {
    "http_port": PORT,
    "server_port": PORT,
    "keep_releases": RELEASES,
    "workers": WORKERS,
    "max_response_header": IntOption(1024, 1024 * 1024, unit="bytes"),
}


def flag_name(param):
    """``http_port`` -> ``--http-port`` (Invoke's spelling of the flag)."""
    return "--" + param.strip("_").replace("_", "-")


def parse_option(label, value, kind):
    """``value`` converted by ``kind``; a UsageError (exit 2) naming ``label`` if it is not acceptable.

    ``None`` (option not given) stays None.
    """
    if value is None:
        return None
    number = kind.convert(value)
    if number is None:
        raise UsageError(f"{label}: expected {kind.accepts()}, got {str(value)!r}")
    return number


def parse_setting(key, value):
    """A ``--set KEY=VALUE`` value: numeric settings checked, others kept as text."""
    kind = SETTING_TYPES.get(key)
    if kind is None:
        return value
    return parse_option(f"--set {key}", value, kind)


def typed_params(param_names, defaults, explicit=None):
    """{param: IntOption} for a task's parameters (pure).

    ``explicit`` (``@task(types=...)``) wins over :data:`OPTION_TYPES`; an
    ``explicit`` value of None opts a parameter out. A parameter whose default
    is an int but has no type is a programming error (Invoke would parse it
    with a bare ``int()``), so it raises TypeError at import time.
    """
    explicit = explicit or {}
    unknown = set(explicit) - set(param_names)
    if unknown:
        raise TypeError(f"types= names unknown parameters: {sorted(unknown)}")
    typed = {}
    for name in param_names:
        kind = explicit[name] if name in explicit else OPTION_TYPES.get(name)
        default = defaults.get(name)
        if kind is None:
            if isinstance(default, int) and not isinstance(default, bool):
                raise TypeError(f"parameter {name!r} has an int default but no option type: "
                                f"declare it in OPTION_TYPES or with @task(types=...)")
            continue
        typed[name] = kind
    return typed


def help_suffix(kind):
    """`` [an integer 1-65535]``: appended to a typed option's help text."""
    return f" [{kind.accepts()}]"
