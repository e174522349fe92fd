"""A thousand apps (issue 16): deploy and remove ask the server for one app's
record (/_tiramisu/apps/<app>, ~1 KB) instead of the whole list (~400 KB at a
thousand apps); a server older than that endpoint answers 404 and the whole
list is read as before."""

from tests.fakebox import http_response
from tiramisu_tasks import deploy as dp

REC = {"name": "hello", "sha256": "a" * 64, "state": "active"}


def test_one_app_is_asked_for_by_name(fake, open_fake):
    fake.on_http("/_tiramisu/apps/hello", port=9000, body={"apps": [REC], "previews": []})
    box = open_fake()
    assert dp.server_apps(box, "hello") == {"hello": REC}
    assert dp.server_previews(box, "hello") == {}
    assert [r[1:] for r in fake.requests] == [(9000, "/_tiramisu/apps/hello")] * 2


def test_an_older_server_without_the_endpoint_gets_the_whole_list(fake, open_fake):
    fake.on_http("/_tiramisu/apps", port=9000, body={"apps": [REC, {**REC, "name": "other"}]})
    fake.on_http("/_tiramisu/apps/hello", port=9000, reply=http_response(404, "unknown admin endpoint\n"))
    box = open_fake()
    assert set(dp.server_apps(box, "hello")) == {"hello", "other"}
    assert [r[2] for r in fake.requests] == ["/_tiramisu/apps/hello", "/_tiramisu/apps"]


def test_the_listing_still_reads_every_app_once(fake, open_fake):
    fake.on_http("/_tiramisu/apps", port=9000, body={"apps": [REC]})
    fake.on(r"grep '' /dev/null \*/CURRENT", "hello 20260101T000000Z-aaaaaaaaaa\n")
    fake.on(r"^cat .*routes.conf", "# PREFIX APP\n/h hello\n")
    out = dp.apps(open_fake())
    assert out["apps"][0]["release"] == "20260101T000000Z-aaaaaaaaaa" and out["apps"][0]["routes"] == ["/hello", "/h"]
    assert [r[2] for r in fake.requests] == ["/_tiramisu/apps"]
