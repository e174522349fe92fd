"""TOML files read for their contents and for where each key was written (pure).

``tomllib`` (``tomli`` before Python 3.11) parses; its syntax errors already
carry ``(at line L, column C)``. Semantic errors (a wrong type, an unknown key,
a route that escapes) need the line too, and a TOML parser does not keep
positions, so :func:`key_lines` scans the text for the places where keys are
defined: ``[table]`` and ``[[array]]`` headers, and ``key =`` lines under them.
It is deliberately simple (no multi-line strings or arrays are tracked beyond
skipping their continuation lines' contents), which is enough to point a user
at the right line; when a key cannot be found the message names the table.
"""

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.9/3.10 only
    import tomli as tomllib

from ..errors import UsageError

# (table path, index of the [[array]] element or 0, key) -> 1-based line
Place = Tuple[Tuple[str, ...], int, str]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|=)""")


def _unquote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "\"'":
        return name[1:-1]
    return name


def _split_dotted(path: str) -> Tuple[str, ...]:
    parts, cur, quote = [], "", None
    for ch in path:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur += ch
        elif ch == ".":
            parts.append(_unquote(cur))
            cur = ""
        else:
            cur += ch
    parts.append(_unquote(cur))
    return tuple(p for p in parts)


@dataclass
class TomlSource:
    """A parsed TOML file: ``data`` (dicts/lists) and the lines keys were written on."""

    path: Path
    data: dict
    lines: Dict[Place, int] = field(default_factory=dict)
    tables: Dict[Tuple[Tuple[str, ...], int], int] = field(default_factory=dict)

    def line_of(self, table: Tuple[str, ...], key: Optional[str] = None, index: int = 0) -> Optional[int]:
        """The line of ``key`` in ``table`` (element ``index`` of an array of tables).

        Without ``key``, or when the key is not found, the table's header line.
        A key under a sub-table (``[[module]]`` then ``environment.X = ...``) is
        found by its first segment. None when nothing matches (a root key that
        was never written, for example).
        """
        table = tuple(table)
        if key is not None and (table, index, key) in self.lines:
            return self.lines[(table, index, key)]
        if key is not None and (table + (key,), 0) in self.tables:  # a key written as a [table] header
            return self.tables[(table + (key,), 0)]
        return self.tables.get((table, index))

    def where(self, table: Tuple[str, ...], key: Optional[str] = None, index: int = 0) -> str:
        """``file:line`` (or just ``file``) for an error message."""
        line = self.line_of(table, key, index)
        return f"{self.path}:{line}" if line else str(self.path)

    def error(self, table, key, message, index=0) -> UsageError:
        """A UsageError ``FILE:LINE: [table.]key: message`` (exit 2)."""
        dotted = ".".join(list(table) + ([key] if key else []))
        named = f"{dotted}: " if dotted else ""
        return UsageError(f"{self.where(table, key, index)}: {named}{message}")


def key_lines(text: str):
    """Scan TOML ``text`` for key and header lines (pure).

    Returns ``(lines, tables)``: ``lines`` maps ``(table, index, first key
    segment)`` to the 1-based line; ``tables`` maps ``(table, index)`` to the
    header line. ``index`` counts the ``[[array]]`` headers seen for that path
    (0 for plain tables and the root).
    """
    lines: Dict[Place, int] = {}
    tables: Dict[Tuple[Tuple[str, ...], int], int] = {}
    counts: Dict[Tuple[str, ...], int] = {}
    table: Tuple[str, ...] = ()
    index = 0
    depth = 0  # open brackets of a multi-line array or inline table
    in_multiline = None
    for n, raw in enumerate(text.splitlines(), 1):
        if in_multiline:
            if in_multiline in raw:
                in_multiline = None
            continue
        line = raw.strip()
        if depth > 0:
            depth += line.count("[") + line.count("{") - line.count("]") - line.count("}")
            continue
        if not line or line.startswith("#"):
            continue
        m = _HEADER.match(line)
        if m and not _KEY.match(line):
            path = _split_dotted(m.group(2))
            if m.group(1) == "[[":
                index = counts.get(path, -1) + 1
                counts[path] = index
            else:
                index = 0
            table = path
            tables.setdefault((table, index), n)
            continue
        k = _KEY.match(line)
        if k:
            key = _unquote(k.group(1))
            lines.setdefault((table, index, key), n)
            value = line.split("=", 1)[1] if "=" in line else ""
            for q in ('"""', "'''"):
                if value.count(q) == 1:
                    in_multiline = q
            if in_multiline is None:
                stripped = re.sub(r"\"(?:[^\"\\]|\\.)*\"|'[^']*'", "", value)
                depth = stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}")
                depth = max(depth, 0)
    return lines, tables


def load_toml(path) -> TomlSource:
    """Read and parse ``path``; UsageError ``FILE:LINE: ...`` on bad TOML or a read error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text") from None
    return parse_toml_text(text, path)


def parse_toml_text(text: str, path) -> TomlSource:
    """Parse ``text`` as if read from ``path`` (pure); UsageError with the line on bad TOML."""
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        if m:
            reason = msg[: m.start()].strip()
            raise UsageError(f"{path}:{m.group(1)}: invalid TOML: {reason} (column {m.group(2)})") from None
        m = re.search(r"\(at end of document\)", msg)
        if m:
            last = len(text.splitlines()) or 1
            raise UsageError(f"{path}:{last}: invalid TOML: {msg[: m.start()].strip()}") from None
        raise UsageError(f"{path}: invalid TOML: {msg}") from None
    lines, tables = key_lines(text)
    return TomlSource(path, data, lines, tables)
