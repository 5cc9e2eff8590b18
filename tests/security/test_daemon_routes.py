"""The daemon's plain GET routes against odd requests: nothing a stranger asks for may cost a
500 or send a reader off the site."""

from __future__ import annotations

import pytest

from tests.security.conftest import InboxHarness

pytestmark = [pytest.mark.anyio, pytest.mark.category("routes")]


@pytest.mark.parametrize("page", ["99999999999999999999", "0", "9" * 5000, "2"])
async def test_followers_pages_out_of_range_are_404_not_500(inbox: InboxHarness, page: str) -> None:
    answer = await inbox.client.get("/ap/followers.json", params={"page": page})
    assert answer.status_code == 404
    assert "page must be a number from 1 to 1" in answer.json()["error"]


@pytest.mark.parametrize("page", ["-1", "²", "1e3", "x"])
async def test_malformed_followers_pages_are_400(inbox: InboxHarness, page: str) -> None:
    answer = await inbox.client.get("/ap/followers.json", params={"page": page})
    assert answer.status_code == 400


async def test_the_first_followers_page_answers(inbox: InboxHarness) -> None:
    answer = await inbox.client.get("/ap/followers.json", params={"page": "1"})
    assert answer.status_code == 200 and answer.json()["type"] == "OrderedCollectionPage"


@pytest.mark.parametrize(
    "path",
    ["/" + "a" * 5000, "/posts/" + "é" * 200 + "/", "/" + "x/" * 1100, "/static/" + "b" * 256],
)
async def test_paths_no_file_can_have_are_404_not_500(inbox: InboxHarness, path: str) -> None:
    assert (await inbox.client.get(path)).status_code == 404


@pytest.mark.parametrize("path", ["//posts", "///posts", "//tags"])
async def test_a_doubled_slash_redirects_on_the_site(inbox: InboxHarness, path: str) -> None:
    # A whole URL: a bare "//posts" is a network-path reference to a host named "posts".
    answer = await inbox.client.get(inbox.config.federation_url + path)
    assert answer.status_code == 301
    assert answer.headers["location"] == "/" + path.strip("/") + "/"


async def test_a_missing_page_is_the_themes_404_page(inbox: InboxHarness) -> None:
    answer = await inbox.client.get("/no/such/page/")
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.text == (inbox.config.output_dir / "404.html").read_text(encoding="utf-8")
