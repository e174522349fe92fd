"""build_app(): a source path in, a validated WASI command module out.

    detect language → pick the first builder whose toolchain works here →
    artifact cache lookup (language, toolchain identity, source hash) →
    on a miss: copy the sources into a per-project scratch dir, build there,
    validate, store → optionally copy to --out as <name>.wasm

The user's source tree is never written to (no Cargo.lock, zig-cache or
node_modules appear in it): builds run in a copy under the cache dir, and the
copy's location is stable per project so cargo/zig incremental state survives
between builds. An flock on that dir serialises concurrent builds of one project.
"""

import hashlib
import json
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

from ..appnames import is_app_name, sanitize_app_name
from ..artifacts import cache
from ..errors import BuildError, LocalError, ToolMissing, UsageError
from ..fileops import copy_atomic
from ..paths import cache_dir
from . import builders as B
from .builders import component as component_builder
from .detect import LANGUAGES, Detection, detect, list_source_files
from .starter import manifest_name
from .toolrun import BuildFailed, locked, run_step
from .validate import validate_file

# Bump when build flags change in a way the toolchain identity does not show.
RECIPE_VERSION = 1
CACHE_KIND = "app-wasm"
HEADER_SUFFIXES = (".h", ".hh", ".hpp", ".hxx", ".inc")


@dataclass
class BuildResult:
    wasm_path: Path
    language: str
    name: str
    sha256: str
    size: int
    seconds: float
    toolchain: str = ""
    identity: str = ""
    cached: bool = False
    source: str = ""
    reasons: List[str] = field(default_factory=list)

    def as_dict(self):
        d = asdict(self)
        d["wasm_path"] = str(self.wasm_path)
        d["seconds"] = round(self.seconds, 3)
        return d


# ------------------------------------------------------------------ pure ---


def check_name(name):
    if not is_app_name(name):
        raise UsageError(
            f"app name {name!r} is not valid: use lowercase letters, digits, '-' and '_' "
            f"(starting with a letter or digit, at most 63 characters)"
        )
    return name


def default_name(det: Detection):
    raw = Path(det.entry).stem if det.single_file else det.root.name
    name = sanitize_app_name(raw)
    if not name:
        raise UsageError(f"cannot make an app name from {raw!r}: give one with --name")
    return name


def source_files(det: Detection, listing=None):
    """The files that define the app, relative to det.root (pure given ``listing``).

    A single file brings the headers beside it (``#include "x.h"``), nothing else.
    """
    listing = list_source_files(det.root) if listing is None else listing
    if det.single_file:
        siblings = [f for f in listing if "/" not in f and f.lower().endswith(HEADER_SUFFIXES)]
        return sorted(set([det.entry] + siblings))
    return sorted(listing)


def cache_inputs(det: Detection, builder, identity, digest):
    return {
        "recipe": RECIPE_VERSION,
        "language": det.language,
        "toolchain": builder.toolchain,
        "identity": identity,
        "source": digest,
        "entry": det.entry,
        "single_file": det.single_file,
    }


# --------------------------------------------------------------- effects ---


def source_digest(det: Detection, files):
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + cache.sha256_file(det.root / rel).encode() + b"\n")
    return h.hexdigest()


def choose_builder(language, toolchain=None):
    """The first builder for ``language`` that works here; ToolMissing names what to install."""
    candidates = B.builders_for(language)
    if toolchain:
        candidates = [b for b in candidates if b.toolchain == toolchain]
        if not candidates:
            known = ", ".join(b.toolchain for b in B.builders_for(language)) or "none"
            raise UsageError(f"--toolchain {toolchain}: not a toolchain for {language} (known: {known})")
    problems = []
    for builder in candidates:
        problem = builder.problem()
        if problem is None:
            return builder
        problems.append(problem)
    title = B.LANGUAGE_TITLES.get(language, language)
    raise ToolMissing(f"{title}: no working toolchain here: " + "; ".join(problems))


def scratch_dir(root, base=None):
    key = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    return Path(base or cache_dir()) / "app-scratch" / f"{sanitize_app_name(root.name) or 'app'}-{key}"


def copy_sources(root, files, dest):
    if dest.exists():
        shutil.rmtree(dest)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def user_path_display(root, cwd=None):
    """How the user's project dir is shown in compiler messages (pure given ``cwd``):
    relative to the current directory when inside it (``app``, ``.``), else absolute."""
    root = Path(root)
    cwd = Path(cwd or Path.cwd())
    try:
        rel = root.resolve().relative_to(cwd.resolve())
    except ValueError:
        return str(root.resolve())
    return str(rel) if str(rel) != "." else "."


# A diagnostic that names a file relative to the compiler's working directory (the
# copy): ``main.zig:4:5: error`` (zig), ``  --> src/main.rs:2:5`` (cargo).
_RELATIVE_LOCATION = re.compile(r"^(\s*(?:--> )?)([^\s:/][^\s:]*):(?=\d)")


def path_fixer(work, shown, root=None):
    """``fix(text)``: the scratch copy's paths in compiler output replaced by the user's (pure).

    ``work``: the scratch copy the compiler saw (absolute and resolved spellings
    are both replaced); ``shown``: the user's dir as :func:`user_path_display`
    gives it; ``root``: the user's dir, to decide whether a location relative to
    the copy (``main.zig:4:5``, cargo's ``--> src/main.rs:2:5``) names one of its files.
    """
    prefixes = sorted({str(work).rstrip("/") + "/", str(Path(work).resolve()).rstrip("/") + "/"}, key=len, reverse=True)
    lead = "" if shown == "." else shown.rstrip("/") + "/"

    def fix(text):
        for prefix in prefixes:
            text = text.replace(prefix, lead)
            text = text.replace(prefix.rstrip("/"), shown)
        if lead and root is not None:
            lines = []
            for line in text.split("\n"):
                m = _RELATIVE_LOCATION.match(line)
                if m and (Path(root) / m.group(2)).is_file():
                    line = m.group(1) + lead + line[m.end(1) :]
                lines.append(line)
            text = "\n".join(lines)
        return text

    return fix


def build_app(
    source,
    out_dir=None,
    name=None,
    language=None,
    toolchain=None,
    progress: Optional[Callable[[str], None]] = None,
    cache_root=None,
) -> BuildResult:
    """Build ``source`` (file or project dir) into a validated WASI command module."""
    started = time.monotonic()
    progress = progress or (lambda msg: None)
    det = detect(source, language)
    if not name and not det.single_file:
        name = manifest_name(det.root)  # tiramisu.toml's `name`, the one key read from it today
    name = check_name(name) if name else default_name(det)
    builder = choose_builder(det.language, toolchain)
    identity = builder.identity()
    # component.toml: the module is then wrapped as a WASI 0.2 command component.
    adapter = None if det.single_file else component_builder.manifest_adapter(det.root)
    if adapter:
        why = component_builder.problem()
        if why:
            raise ToolMissing(why)
        identity = f"{identity}; component {component_builder.identity()}"
    files = source_files(det)
    digest = source_digest(det, files)
    inputs = cache_inputs(det, builder, identity, digest)
    progress(
        f"{name}: {B.LANGUAGE_TITLES.get(det.language, det.language)} ({det.why}), "
        f"toolchain {builder.toolchain}: {identity}"
    )

    scratch = scratch_dir(det.root, cache_root)

    def build_into(entry_dir):
        """Runs under the scratch lock taken below."""
        work = scratch / "src"
        copy_sources(det.root, files, work)
        out = scratch / "out.wasm"
        if out.exists():
            out.unlink()
        ctx = B.BuildContext(
            src=work,
            entry=det.entry,
            single_file=det.single_file,
            out=out,
            scratch=scratch,
            run=lambda step: run_step(step, progress=progress),
            progress=progress,
            cache_root=cache_root,
        )
        try:
            builder.build(ctx)
        except BuildFailed as exc:
            # The compiler saw the scratch copy; the user edits the original.
            raise exc.rewrite(path_fixer(work, user_path_display(det.root), det.root)) from None
        if not out.is_file():
            raise BuildError(f"{builder.title}: the build produced no module")
        if adapter:
            component_builder.componentize(ctx, adapter)
        info = validate_file(out)
        shutil.copyfile(out, entry_dir / "app.wasm")
        (entry_dir / "build.json").write_text(
            json.dumps(
                {
                    "language": det.language,
                    "toolchain": builder.toolchain,
                    "identity": identity,
                    "reasons": list(det.reasons),
                    "kind": getattr(info, "kind", "module"),
                    "imports": [i if isinstance(i, str) else f"{i.module}.{i.name}" for i in info.imports],
                    "exports": [e if isinstance(e, str) else e.name for e in info.exports],
                },
                indent=2,
            )
        )

    # The lock spans lookup, build and the cache entry's rename: a second build of
    # the same project waits, then finds the entry instead of racing to rename it.
    with locked(scratch):
        entry = cache.get_or_build(CACHE_KIND, inputs, build_into, root=cache_root)
    wasm = entry.file("app.wasm")
    if entry.hit:
        progress(f"{name}: unchanged since the last build (cache {entry.key})")
    if out_dir is not None:
        dest = Path(out_dir).expanduser() / f"{name}.wasm"
        try:
            copy_atomic(wasm, dest)
        except OSError as exc:
            raise LocalError.from_os_error(exc, "cannot write --out", dest) from exc
        wasm = dest
    return BuildResult(
        wasm_path=wasm,
        language=det.language,
        name=name,
        sha256=entry.files["app.wasm"],
        size=wasm.stat().st_size,
        seconds=time.monotonic() - started,
        toolchain=builder.toolchain,
        identity=identity,
        cached=entry.hit,
        source=str(source),
        reasons=list(det.reasons),
    )


def languages_report():
    """Per language and toolchain: does it work here, and if not, what to install."""
    rows = []
    for language in LANGUAGES:
        for builder in B.builders_for(language):
            problem = builder.problem()
            rows.append(
                {
                    "language": language,
                    "toolchain": builder.toolchain,
                    "ok": problem is None,
                    "identity": builder.identity() if problem is None else "",
                    "problem": problem or "",
                }
            )
    return rows
