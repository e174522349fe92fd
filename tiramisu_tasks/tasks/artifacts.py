"""artifacts.*: what the local build cache holds, and removing it."""

import datetime

from invoke import Collection

from ..artifacts import listing
from ..errors import UsageError
from ..paths import cache_dir
from ..taskkit import emit_json, note, out, table, task


def _when(ts):
    if not ts:
        return ""
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


@task(
    help={
        "kind": "only entries of this kind: " + ", ".join(listing.KINDS),
        "json": "print JSON",
    }
)
def list_(c, kind=None, json=False):
    """Show the cached artifacts (kind, key, what they were built from, size)."""
    rows = listing.rows(kind=listing.check_kind(kind))
    if json:
        emit_json({"cache": str(cache_dir()), "entries": [r.as_dict() for r in rows]})
        return
    if not rows:
        out(f"no artifacts cached in {cache_dir()}")
        return
    out(
        table(
            [[r.kind, r.key, listing.human_size(r.size), _when(r.created), r.summary] for r in rows],
            ["KIND", "KEY", "SIZE", "CREATED", "INPUTS"],
        )
    )
    total = sum(r.size for r in rows)
    out(f"({len(rows)} entries, {listing.human_size(total)}, in {cache_dir()})")


@task(
    help={
        "yes": "really delete (without it: show what would be deleted and exit 2)",
        "kind": "only entries of this kind",
    }
)
def clean(c, yes=False, kind=None):
    """Remove cached artifacts (everything, or one kind); they are rebuilt on demand."""
    paths = listing.plan_clean(kind=listing.check_kind(kind))
    if not paths:
        out(f"nothing to remove in {cache_dir()}" + (f" (kind {kind})" if kind else ""))
        return
    if not yes:
        for p in paths:
            out(f"would remove {p}")
        raise UsageError(f"{len(paths)} cache paths not removed: pass --yes to delete them")
    for p in listing.remove(paths):
        note(f"removed {p}")
    out(f"removed {len(paths)} cache paths from {cache_dir()}")


ns = Collection("artifacts", clean)
ns.add_task(list_, name="list")
