"""A content-verified artifact cache.

Each entry lives in ``<cache dir>/<kind>/<key>/`` where ``key`` hashes every
input that can change the result (versions, target, toolchain, source hash).
An entry is complete only when its ``manifest.json`` exists; the manifest lists
each file's sha256, and :func:`lookup` re-verifies them, so a truncated or
tampered file is rebuilt rather than shipped.

Builds happen in a temporary sibling directory that is renamed into place, so
an interrupted build never leaves a half entry that looks complete.
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

from ..errors import LocalError
from ..paths import cache_dir

MANIFEST = "manifest.json"


def sha256_file(path, bufsize=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(bufsize)
            if not chunk:
                break
            h.update(chunk)
    return h.hexdigest()


def sha256_tree(root, patterns=("*",)):
    """Hash of every file's relative path and content under root (for source keys)."""
    root = Path(root)
    h = hashlib.sha256()
    files = sorted({p for pat in patterns for p in root.rglob(pat) if p.is_file()})
    for p in files:
        rel = p.relative_to(root).as_posix()
        if "/build/" in f"/{rel}" or "__pycache__" in rel:
            continue
        h.update(rel.encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def cache_key(inputs: Dict[str, object]) -> str:
    """Stable short hash of a dict of inputs."""
    blob = json.dumps(inputs, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


@dataclass
class Entry:
    kind: str
    key: str
    path: Path
    manifest: dict
    hit: bool  # True when no work was done

    def file(self, rel):
        return self.path / rel

    @property
    def files(self):
        return self.manifest.get("files", {})


def entry_path(kind, key, root=None):
    return Path(root or cache_dir()) / kind / key


def _verify(path):
    mpath = path / MANIFEST
    if not mpath.is_file():
        return None
    try:
        manifest = json.loads(mpath.read_text())
    except ValueError:
        return None
    for rel, digest in manifest.get("files", {}).items():
        f = path / rel
        if not f.is_file() or sha256_file(f) != digest:
            return None
    return manifest


def lookup(kind, inputs, root=None):
    """The verified entry for these inputs, or None."""
    key = cache_key(inputs)
    path = entry_path(kind, key, root)
    manifest = _verify(path)
    if manifest is None:
        return None
    return Entry(kind, key, path, manifest, hit=True)


def get_or_build(kind, inputs, build: Callable[[Path], None], root=None) -> Entry:
    """Return the cached entry for ``inputs``, building it with ``build(tmpdir)`` if needed.

    ``build`` writes its outputs into the directory it is given; every regular
    file there ends up in the manifest.
    """
    found = lookup(kind, inputs, root)
    if found:
        return found
    key = cache_key(inputs)
    final = entry_path(kind, key, root)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=str(final.parent)))
    except OSError as exc:
        raise LocalError.from_os_error(exc, "cannot write cache", final.parent) from exc
    try:
        build(tmp)
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and p.name != MANIFEST:
                files[p.relative_to(tmp).as_posix()] = sha256_file(p)
        manifest = {"kind": kind, "key": key, "inputs": inputs, "files": files, "created": time.time()}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
        if final.exists() and _verify(final) is None:
            shutil.rmtree(final, ignore_errors=True)  # a stale, unverifiable entry
        try:
            os.replace(tmp, final)
        except OSError:
            # Another process built the same inputs at the same time and won
            # the rename: its entry is as good as ours if it verifies.
            theirs = _verify(final)
            if theirs is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return Entry(kind, key, final, theirs, hit=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Entry(kind, key, final, manifest, hit=False)


def list_entries(root=None):
    """Every complete entry: (kind, key, path, manifest)."""
    base = Path(root or cache_dir())
    out = []
    if not base.is_dir():
        return out
    for kind_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for entry in sorted(p for p in kind_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            mpath = entry / MANIFEST
            if mpath.is_file():
                try:
                    out.append((kind_dir.name, entry.name, entry, json.loads(mpath.read_text())))
                except ValueError:
                    continue
    return out
