"""When test hosts cannot be made: one clear reason (skip), or a failure when CI requires them."""

import pytest

import testhosts
from testhosts import hosts
from tests.fixtures import hosts as plugin


def test_non_root_gets_a_clear_reason(monkeypatch):
    monkeypatch.setattr(hosts.os, "geteuid", lambda: 1000)
    for arch in ("x86_64", "aarch64"):
        reason = testhosts.missing_requirements(arch)
        assert reason and "need root" in reason


def test_unknown_arch():
    assert "unknown test host architecture" in testhosts.missing_requirements("riscv64")


@pytest.mark.parametrize(
    "text, expected",
    [
        (None, "not registered"),
        ("disabled\ninterpreter /q\nflags: F\n", "disabled"),
        ("enabled\ninterpreter /q\nflags: P\n", "lacks the F flag"),
        ("enabled\ninterpreter /q\nflags: PF\n", None),
    ],
    ids=["missing", "disabled", "no-F", "ok"],
)
def test_binfmt_problem(tmp_path, text, expected):
    path = tmp_path / "qemu-aarch64"
    if text is not None:
        path.write_text(text)
    got = testhosts.binfmt_problem(str(path))
    assert (got is None) if expected is None else (expected in got)


def test_skip_or_fail(monkeypatch):
    monkeypatch.setattr(plugin.testhosts, "missing_requirements", lambda arch: "no qemu here")
    monkeypatch.delenv("TIRAMISU_REQUIRE_TESTHOSTS", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no qemu here"):
        plugin.require_testhost("aarch64")
    monkeypatch.setenv("TIRAMISU_REQUIRE_TESTHOSTS", "1")
    with pytest.raises(pytest.fail.Exception, match="cannot run: no qemu here"):
        plugin.require_testhost("aarch64")
