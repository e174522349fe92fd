"""toolchain.*: which compiler backends work on this machine (doctor)."""

from invoke import Collection

from .. import toolchains as tc
from ..targets import ALL_TARGETS, parse_target_name
from ..taskkit import emit_json, out, table, task


def diagnose(settings=None, targets=ALL_TARGETS):
    """Per backend: for each target, None (works) or what is missing; plus notes."""
    report = []
    for name in tc.BACKENDS:
        entry = {"backend": name, "targets": {}, "notes": []}
        try:
            backend = tc.get_toolchain(name, settings)
        except Exception as exc:  # noqa: BLE001 - an optional backend that cannot load
            for t in targets:
                entry["targets"][t.name] = str(exc)
            report.append(entry)
            continue
        for t in targets:
            try:
                entry["targets"][t.name] = backend.problem(t)
            except Exception as exc:  # noqa: BLE001 - doctor must never crash
                entry["targets"][t.name] = f"check failed: {exc}"
        notes = getattr(backend, "notes", None)
        if notes:
            entry["notes"] = notes()
        report.append(entry)
    return report


def summary_rows(report):
    """Pure: one table row per backend: works-for list and the first fix hint."""
    rows = []
    for entry in report:
        ok = [t for t, why in entry["targets"].items() if why is None]
        problems = sorted({why for why in entry["targets"].values() if why})
        rows.append([entry["backend"], "yes" if ok else "no", ", ".join(ok) or "-", problems[0] if problems else ""])
    return rows


@task(
    help={
        "arch": "check only this target (x86_64, aarch64, *-linux-musl ...)",
        "json": "print JSON: every backend x target with the problem (null when it works)",
    }
)
def doctor(c, arch=None, json=False):
    """List each toolchain backend (zig, gcc, docker), whether it works here, and what to install if not."""
    targets = (parse_target_name(arch),) if arch else ALL_TARGETS
    report = diagnose(tc.settings_from_config(c), targets)
    if json:
        emit_json({"backends": report})
        return
    out(table(summary_rows(report), ["BACKEND", "WORKS", "TARGETS", "FIX"]))
    for entry in report:
        for line in entry["notes"]:
            out(f"{entry['backend']}: {line}")
        problems = {t: why for t, why in entry["targets"].items() if why}
        if len(set(problems.values())) > 1:
            for t, why in problems.items():
                out(f"{entry['backend']}: {t}: {why}")


ns = Collection("toolchain", doctor)
