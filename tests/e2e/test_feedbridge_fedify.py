"""Bridge mode end to end: a Fedify server follows the blog; the blog's bridged feed, served
on loopback, gains, edits and drops entries, and Fedify receives a verified Create, Update
and Delete for each, with the entry's own link as the Article's url.

The daemon runs in this process with the bridge's routes and polling task mounted as
``serve`` mounts them once wired (see bridge/feedbridge.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from starlette.applications import Starlette

from bridge import config as config_mod
from bridge.daemon import app as daemon
from bridge.daemon import feedbridge
from tests.daemon.test_feedbridge import Entry, FeedHost
from tests.daemon.test_watch import ServerThread
from tests.e2e.blog import Blog
from tests.interop.fedify import FedifyPeer
from tests.webserver import WebServer

pytestmark = pytest.mark.slow


@pytest.fixture
def feed_server() -> Iterator[WebServer]:
    with WebServer() as server:
        yield server


def bridged_daemon(blog: Blog) -> Starlette:
    config = config_mod.load(blog.root)
    d = daemon.Daemon(config, poll_interval=0.2)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await d.start()
        bridge = asyncio.create_task(feedbridge.run_feed_bridge(d.ctx, d.stop))
        try:
            yield
        finally:
            d.stop.set()
            await bridge
            await d.shutdown()

    return Starlette(routes=[*feedbridge.routes(d.ctx), *d.routes()], lifespan=lifespan)


def is_for(obj_id: str, kind: str) -> Any:
    def match(item: dict[str, Any]) -> bool:
        obj = item["raw"].get("object")
        target = obj.get("id") if isinstance(obj, dict) else obj
        return bool(item["raw"]["type"] == kind and target == obj_id)

    return match


def test_a_bridged_feed_federates_create_update_delete(
    blog: Blog, fedify_peer: FedifyPeer, feed_server: WebServer
) -> None:
    feed = FeedHost(feed_server)
    blog.write_site(f'\n[[bridge.feeds]]\nurl = "{feed.url}"\ninterval = 1\n')
    blog.cli("build")
    with ServerThread(bridged_daemon(blog), blog.port, lifespan="on"):
        fedify_peer.follow(blog.handle)
        assert fedify_peer.wait_for("Accept", timeout=20)["verified"]
        blog.wait_until(blog.followers, what="follower stored")

        feed.entries = [
            Entry("first", "First bridged", 1, "<p>Hello from elsewhere.</p>"),
            Entry("second", "Second bridged", 2, "<p>Another one.</p>"),
        ]
        first_id = f"{blog.base_url}/ap/bridge/first-bridged.json"
        second_id = f"{blog.base_url}/ap/bridge/second-bridged.json"
        create = fedify_peer.wait_for("Create", is_for(first_id, "Create"), timeout=30)
        assert create["verified"], create
        article = create["raw"]["object"]
        assert article["type"] == "Article" and article["name"] == "First bridged"
        assert article["url"] == feed_server.url("/blog/first/")
        assert fedify_peer.wait_for("Create", is_for(second_id, "Create"), timeout=30)["verified"]

        # Fedify dereferences the id on our domain and checks its proof.
        looked = fedify_peer.lookup(first_id)
        assert looked["ok"] and looked["type"] == "Article", looked
        assert looked.get("proof", {}).get("verified") is not False, looked

        feed.entries[0] = Entry("first", "First bridged", 1, "<p>Hello again, edited.</p>")
        update = fedify_peer.wait_for("Update", is_for(first_id, "Update"), timeout=30)
        assert update["verified"], update
        assert "Hello again, edited." in update["raw"]["object"]["content"]
        assert update["raw"]["id"] != create["raw"]["id"]

        del feed.entries[1]  # the newest entry is gone: deleted upstream
        delete = fedify_peer.wait_for("Delete", is_for(second_id, "Delete"), timeout=30)
        assert delete["verified"], delete
        assert blog.get("/ap/bridge/second-bridged.json").status_code == 410
        assert blog.get("/ap/bridge/first-bridged.json").status_code == 200
