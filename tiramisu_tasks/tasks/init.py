"""init: a commented starter app in a new directory.

tiramisu init myapp                 # C (builds here with zig cc or clang)
tiramisu init myapp --lang rust     # c, zig, wat or rust
tiramisu deploy myapp --host pi     # builds and deploys it as it is
"""

from ..apps.starter import STARTER_LANGUAGES, plan_starter, write_starter
from ..taskkit import emit_json, note, out, task


@task(
    help={
        "dir": "directory to create the app in ('.' for the current one); must be empty unless --force",
        "lang": f"language of the starter: {', '.join(STARTER_LANGUAGES)} (default c)",
        "name": "app name (default: the directory's name, sanitized to [a-z0-9][a-z0-9_-]*)",
        "force": "write into a non-empty directory (same-named files are replaced, others kept)",
        "json": "print what was written as JSON",
        "dry": "print the files it would write; write nothing",
    },
    positional=["dir"],
)
def init(c, dir, lang=None, name=None, force=False, json=False, dry=False):
    """Write a starter app (source + tiramisu.toml manifest stub) that build and deploy take as it is."""
    plan = plan_starter(dir, language=lang, name=name)
    written = write_starter(plan, force=force, dry=dry)
    if json:
        emit_json(
            {
                "directory": str(plan.directory),
                "name": plan.name,
                "language": plan.language,
                "files": [str(p) for p in written],
                "dry": bool(dry),
            }
        )
        return
    for path in written:
        note(f"{'would write' if dry else 'wrote'} {path}")
    if dry:
        out(f"{plan.name}: {plan.language} starter for {plan.directory} (dry run: nothing written)")
        return
    out(f"{plan.name}: {plan.language} starter in {plan.directory}; next: tiramisu deploy {dir} --host HOST")
