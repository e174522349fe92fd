"""The artifact cache: an entry is built once and then hit; a tampered file
makes it rebuild; a failed build leaves no entry or leftover directory; two
concurrent builds of the same inputs both succeed with one valid entry."""

import threading

from tiramisu_tasks.artifacts import cache


def test_hit_after_build_and_rebuild_after_tamper(tmp_path):
    calls = []

    def build(out):
        calls.append(1)
        (out / "a.bin").write_bytes(b"payload")

    first = cache.get_or_build("k", {"v": 1}, build, root=tmp_path)
    again = cache.get_or_build("k", {"v": 1}, build, root=tmp_path)
    assert not first.hit and again.hit and len(calls) == 1
    (again.path / "a.bin").write_bytes(b"tampered")
    third = cache.get_or_build("k", {"v": 1}, build, root=tmp_path)
    assert not third.hit and (third.path / "a.bin").read_bytes() == b"payload" and len(calls) == 2


def test_failed_build_leaves_nothing(tmp_path):
    def build(out):
        (out / "half").write_bytes(b"x")
        raise RuntimeError("compiler died")

    try:
        cache.get_or_build("k", {"v": 2}, build, root=tmp_path)
    except RuntimeError:
        pass
    assert cache.lookup("k", {"v": 2}, root=tmp_path) is None
    assert list((tmp_path / "k").iterdir()) == []


def test_concurrent_builds_of_the_same_inputs_both_succeed(tmp_path):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def build(out):
        (out / "a.bin").write_bytes(b"same")
        barrier.wait(5)  # both finish building before either renames

    def worker():
        try:
            results.append(cache.get_or_build("k", {"v": 3}, build, root=tmp_path))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 2
    assert {r.path for r in results} == {cache.entry_path("k", cache.cache_key({"v": 3}), tmp_path)}
