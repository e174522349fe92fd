"""deploy's certificate renewal (tls.renew_if_due): only tls=acme with a kept
certificate that is due; the first certificate stays setup's job."""

from types import SimpleNamespace

from tiramisu_tasks import tls


def _box(mode):
    return SimpleNamespace(name="pi", settings={"tls": mode}, note=lambda *a: None)


def test_other_modes_do_nothing(monkeypatch):
    monkeypatch.setattr(tls, "plan", lambda box, now=None: (_ for _ in ()).throw(AssertionError("no plan")))
    for mode in ("off", "self-signed", "files"):
        assert tls.renew_if_due(_box(mode)) is None


def test_not_due_or_no_certificate_yet_does_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(tls, "issue", lambda *a, **k: calls.append(k))
    for placeholder, due in ((False, False), (True, True)):
        p = SimpleNamespace(placeholder=placeholder, acme_due=due, info={"days_left": 50})
        monkeypatch.setattr(tls, "plan", lambda box, now=None, p=p: p)
        assert tls.renew_if_due(_box("acme")) is None
    assert calls == []


def test_due_certificate_is_renewed(monkeypatch):
    calls = []
    monkeypatch.setattr(
        tls, "plan", lambda box, now=None: SimpleNamespace(placeholder=False, acme_due=True, info={"days_left": 12})
    )
    monkeypatch.setattr(tls, "issue", lambda box, force, now=None: calls.append(force) or {"renewed": True})
    assert tls.renew_if_due(_box("acme")) == {"renewed": True}
    assert calls == [False]
