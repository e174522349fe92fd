"""``tiramisu init``: a commented starter app that ``build`` and ``deploy`` take as it is.

The starters live in ``tiramisu_tasks/starters/<language>/`` (package data, so
an installed wheel has them) with ``@NAME@``-style placeholders; every starter
also gets ``tiramisu.toml``, the app manifest stub, of which build and deploy
read only ``name`` (:func:`manifest_name`).
"""

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List

from ..appnames import is_app_name, sanitize_app_name
from ..errors import LocalError, UsageError

MANIFEST = "tiramisu.toml"
STARTER_LANGUAGES = ("c", "zig", "wat", "rust")
DEFAULT_LANGUAGE = "c"


def starters_dir():
    return Path(__file__).resolve().parent.parent / "starters"


@dataclass
class StarterPlan:
    """What ``init`` writes: {relative path: text}, for ``name`` in ``language``."""

    directory: Path
    name: str
    language: str
    files: dict

    def paths(self) -> List[str]:
        return sorted(self.files)


def _wat_response(name):
    """The WAT data string (escaped) and its length in bytes for the starter's response."""
    text = f"Content-Type: text/plain; charset=utf-8\n\nHello from {name}!\n"
    return text.replace("\n", "\\n"), len(text.encode())


def render(template, name, language):
    """Fill a starter's placeholders (pure)."""
    escaped, length = _wat_response(name)
    return (
        template.replace("@NAME@", name)
        .replace("@LANG@", language)
        .replace("@RESPONSE@", escaped)
        .replace("@LENGTH@", str(length))
    )


def plan_starter(directory, language=None, name=None, root=None):
    """The files of a starter (pure but for reading the templates).

    Raises UsageError for an unknown language or a name that is not an app
    name (README "Apps": lowercase letters, digits, ``-``, ``_``).
    """
    language = (language or DEFAULT_LANGUAGE).strip().lower()
    if language not in STARTER_LANGUAGES:
        raise UsageError(f"--lang {language}: no starter for it (starters: {', '.join(STARTER_LANGUAGES)})")
    directory = Path(directory).expanduser()
    if name is None:
        name = sanitize_app_name(directory.resolve().name)
        if not name:
            raise UsageError(f"cannot make an app name from {directory.resolve().name!r}: give one with --name")
    elif not is_app_name(name):
        raise UsageError(
            f"--name {name!r}: use lowercase letters, digits, '-' and '_' (starting with a letter or digit, at most 63)"
        )
    root = Path(root or starters_dir())
    base = root / language
    files = {}
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        files[path.relative_to(base).as_posix()] = render(path.read_text(), name, language)
    files[MANIFEST] = render((root / MANIFEST).read_text(), name, language)
    return StarterPlan(directory, name, language, files)


def write_starter(plan, force=False, dry=False):
    """Write the plan's files; a non-empty directory is refused unless ``force`` (then
    same-named files are replaced, others left alone). Each file is written to a
    temporary name beside it and renamed into place. Returns the written paths
    (``dry``: the paths it would write, after the same checks; nothing is written)."""
    directory = plan.directory
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory}: exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty (use --force to write the starter files into it anyway)")
    if dry:
        return [directory / rel for rel in sorted(plan.files)]
    written = []
    for rel, text in sorted(plan.files.items()):
        dest = directory / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=str(dest.parent))
            try:
                with os.fdopen(fd, "w") as fh:
                    fh.write(text)
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise LocalError.from_os_error(exc, "cannot write the starter", dest) from exc
        written.append(dest)
    return written


def manifest_name(root):
    """``name`` from ``<root>/tiramisu.toml``, or None when the file is absent or has none.

    A malformed file or a name that is not an app name is a UsageError (exit 2)
    naming the file. Every other key is ignored (the stub's ``language`` and
    comments are notes for the user).
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    name = data.get("name")
    if name is None:
        return None
    if not isinstance(name, str) or not is_app_name(name):
        raise UsageError(
            f"{path}: name {name!r} is not an app name (lowercase letters, digits, '-' and '_', at most 63)"
        )
    return name
