"""Build hook: the server's C sources and the example apps go into the package.

In a checkout they live at the top level (cserver/, wasm_examples/) and the code
finds them there (tiramisu_tasks/paths.py). A wheel has no top level, so build_py
copies them into tiramisu_tasks/_data/ in the build tree; the sdist carries the
top-level directories (MANIFEST.in) and a wheel built from it copies them the same
way. Editable installs skip the copy: they run from the checkout.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# directory -> glob patterns to ship (keep in step with paths.DATA_DIRS)
SHIPPED = {
    "cserver": ("ts_*.c", "ts_*.h"),
    "wasm_examples": ("**/*",),
}
# build leftovers that may sit in a developer's examples
SKIP_PARTS = {"node_modules", "target", "zig-out", ".zig-cache", "zig-cache", "build", "__pycache__"}
SKIP_SUFFIXES = {".wasm", ".o", ".pyc"}


def shipped_files(name):
    base = HERE / name
    seen = set()
    for pattern in SHIPPED[name]:
        for path in sorted(base.glob(pattern)):
            rel = path.relative_to(base)
            if not path.is_file() or rel in seen or SKIP_PARTS.intersection(rel.parts) or path.suffix in SKIP_SUFFIXES:
                continue
            seen.add(rel)
            yield path, rel


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            files = list(shipped_files(name))
            if not files:
                raise SystemExit(f"setup.py: nothing to ship from {HERE / name}")
            dest = Path(self.build_lib) / "tiramisu_tasks" / "_data" / name
            if dest.exists():
                shutil.rmtree(dest)
            for src, rel in files:
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)


setup(cmdclass={"build_py": BuildPyWithData})
