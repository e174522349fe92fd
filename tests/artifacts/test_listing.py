"""artifacts.list / artifacts.clean over a real cache."""

import json
import os
import subprocess
import sys

import pytest

from tiramisu_tasks.artifacts import cache, listing


def tiramisu(cache_root, *args):
    env = {**os.environ, "TIRAMISU_CACHE": str(cache_root)}
    return subprocess.run(
        [sys.executable, "-m", "tiramisu_tasks", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.fixture
def populated(fresh_cache):
    def writer(content):
        def build(out):
            (out / "bin").mkdir()
            (out / "bin" / "tool").write_bytes(content)

        return build

    cache.get_or_build("nginx", {"provider": "wheel", "arch": "aarch64"}, writer(b"a" * 2048))
    cache.get_or_build("nginx", {"provider": "source", "arch": "x86_64", "sources": {"x": 1}}, writer(b"b"))
    cache.get_or_build("server", {"target": "aarch64-linux-gnu", "toolchain": {"toolchain": "zig"}}, writer(b"c"))
    (fresh_cache / "nginx" / ".deadbeef.partial").mkdir()  # an interrupted build
    (fresh_cache / "apt" / "lists").mkdir(parents=True)  # private apt state
    return fresh_cache


SUMMARIES = [
    ({"provider": "wheel", "arch": "aarch64", "version": "1.31.3"}, "provider=wheel arch=aarch64 version=1.31.3"),
    (
        {"target": "x86_64-linux-gnu", "toolchain": {"toolchain": "zig", "zig": "0.17"}},
        "target=x86_64-linux-gnu toolchain={toolchain,zig}",
    ),
    ({"sources": "x" * 100}, ""),
    (None, ""),
]


@pytest.mark.parametrize("inputs,summary", SUMMARIES)
def test_summarize_inputs(inputs, summary):
    assert listing.summarize_inputs(inputs) == summary


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 << 20, "3.0 MiB")])
def test_human_size(n, text):
    assert listing.human_size(n) == text


def test_list_shows_every_entry(populated):
    proc = tiramisu(populated, "artifacts.list", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["cache"] == str(populated)
    assert sorted(e["kind"] for e in data["entries"]) == ["nginx", "nginx", "server"]
    assert {e["size"] for e in data["entries"] if e["kind"] == "nginx"} == {2048, 1}
    assert {"target": "aarch64-linux-gnu", "toolchain": {"toolchain": "zig"}} in [e["inputs"] for e in data["entries"]]
    table = tiramisu(populated, "artifacts.list").stdout
    assert "provider=wheel arch=aarch64" in table and "(3 entries" in table
    only = json.loads(tiramisu(populated, "artifacts.list", "--kind", "server", "--json").stdout)
    assert [e["kind"] for e in only["entries"]] == ["server"]


def test_clean_without_yes_deletes_nothing(populated):
    proc = tiramisu(populated, "artifacts.clean")
    assert proc.returncode == 2
    assert "pass --yes" in proc.stderr
    assert "would remove" in proc.stdout
    assert len(listing.rows(populated)) == 3


def test_clean_one_kind(populated):
    proc = tiramisu(populated, "artifacts.clean", "--kind", "nginx", "--yes")
    assert proc.returncode == 0, proc.stderr
    assert [r.kind for r in listing.rows(populated)] == ["server"]
    assert not (populated / "nginx").exists()  # partial build gone, empty kind dir dropped
    assert (populated / "apt").is_dir()  # state survives a per-kind clean


def test_clean_everything_then_nothing_to_do(populated):
    assert tiramisu(populated, "artifacts.clean", "--yes").returncode == 0
    assert listing.rows(populated) == []
    assert not (populated / "apt").exists()
    proc = tiramisu(populated, "artifacts.clean")
    assert proc.returncode == 0 and "nothing to remove" in proc.stdout
    assert "no artifacts cached" in tiramisu(populated, "artifacts.list").stdout


def test_remove_refuses_paths_outside_the_cache(populated, tmp_path):
    outside = tmp_path / "precious"
    outside.mkdir()
    with pytest.raises(ValueError, match="not inside the cache"):
        listing.remove([outside], root=populated)
    assert outside.is_dir()
