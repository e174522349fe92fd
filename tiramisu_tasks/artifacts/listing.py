"""What the artifact cache holds (artifacts.list) and removing it (artifacts.clean).

Pure summaries of :func:`cache.list_entries` rows, plus one effectful
:func:`remove` that deletes only directories inside the cache root.
"""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..errors import UsageError
from ..paths import cache_dir
from . import cache

# Directories in the cache root that hold state, not entries (cleaned with
# everything, never listed as artifacts).
STATE_DIRS = ("apt", "wire")  # wire: compressed upload copies (transfer.wire_copy)

# Every kind of entry the project's builders store (the first argument of
# cache.get_or_build); ``--kind`` is checked against it so a typo is an error,
# not an empty listing or a clean that silently removes nothing.
KINDS = ("aot", "app-wasm", "debian-source", "libgcc_s", "nginx", "npm-tools", "server", "wasmtime")


def check_kind(kind):
    """Return ``kind`` if it names a known entry kind (or is None).

    Raises:
        UsageError: one line naming the known kinds (exit 2).
    """
    if kind is None or kind in KINDS:
        return kind
    raise UsageError(f"unknown artifact kind {kind!r}: use one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class Row:
    kind: str
    key: str
    path: Path
    summary: str  # the inputs that tell entries of a kind apart
    size: int  # bytes of the files in the manifest
    created: Optional[float]
    inputs: Optional[dict] = None  # every input of the cache key

    def as_dict(self):
        return {
            "kind": self.kind,
            "key": self.key,
            "path": str(self.path),
            "summary": self.summary,
            "size": self.size,
            "created": self.created,
            "inputs": self.inputs,
        }


# Inputs worth showing first, in this order; the rest follow sorted.
_SHOWN = ("provider", "target", "arch", "platform", "package", "version", "upstream", "toolchain")


def summarize_inputs(inputs):
    """Pure: a short ``key=value`` line of an entry's inputs (nested values elided)."""
    if not isinstance(inputs, dict):
        return ""
    parts = []
    for key in _SHOWN:
        value = inputs.get(key)
        if value not in (None, "", {}, []):
            parts.append(f"{key}={_short(value)}")
    return " ".join(parts)


def _short(value):
    if isinstance(value, dict):
        return "{" + ",".join(sorted(value)) + "}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def rows(root=None, kind=None) -> List[Row]:
    out = []
    for k, key, path, manifest in cache.list_entries(root):
        if kind and k != kind:
            continue
        size = 0
        for rel in manifest.get("files", {}):
            try:
                size += (path / rel).stat().st_size
            except OSError:
                pass
        inputs = manifest.get("inputs")
        out.append(Row(k, key, path, summarize_inputs(inputs), size, manifest.get("created"), inputs))
    return out


def human_size(n):
    """Pure: 1536 -> '1.5 KiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def plan_clean(root=None, kind=None):
    """Paths ``artifacts.clean`` would delete: entries (of kind), partial builds, state."""
    base = Path(root or cache_dir())
    targets = [r.path for r in rows(root, kind)]
    if base.is_dir():
        for kind_dir in sorted(p for p in base.iterdir() if p.is_dir()):
            if kind_dir.name in STATE_DIRS:
                if kind is None:
                    targets.append(kind_dir)
                continue
            if kind and kind_dir.name != kind:
                continue
            # interrupted builds (".<key>.*") and entries without a manifest
            for sub in sorted(p for p in kind_dir.iterdir() if p.is_dir()):
                if not (sub / cache.MANIFEST).is_file() and sub not in targets:
                    targets.append(sub)
    return targets


def remove(paths, root=None):
    """Delete the planned paths; refuse anything outside the cache root."""
    base = Path(root or cache_dir()).resolve()
    removed = []
    for p in paths:
        p = Path(p).resolve()
        if base not in p.parents:
            raise ValueError(f"refusing to delete {p}: not inside the cache {base}")
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    # drop kind directories left empty
    if base.is_dir():
        for kind_dir in base.iterdir():
            if kind_dir.is_dir() and not any(kind_dir.iterdir()):
                kind_dir.rmdir()
    return removed


def kinds(root=None):
    return sorted({r.kind for r in rows(root)})
