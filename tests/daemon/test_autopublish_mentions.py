"""auto_publish (``indiebridge watch``) resolves a new post's mentions, rebuilds so they
are linked, and delivers the Create to the mentioned account over loopback HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

from bridge import config as config_mod
from bridge.daemon.autopublish import cli_publisher
from bridge.site import build as site_mod
from tests.federation.test_mention_resolver import serve_account
from tests.webserver import WebServer, web_fixture  # noqa: F401 - the `web` fixture


def test_auto_publish_links_and_delivers_a_mention(
    make_site: Callable[..., Path], web: WebServer
) -> None:
    folder = make_site(
        {
            "allow_private_addresses": True,
            "auto_publish": True,
            "federate_since": dt.date(2026, 2, 1),
        }
    )
    handle = serve_account(web, "alice")
    web.route("/users/alice/inbox", status=202, body="", methods=["POST"])
    post = folder / "content" / "posts" / "hey.md"
    post.write_text(f"---\ntitle: Hey\ndate: 2026-03-01\n---\nHi {handle}!\n", "utf-8")
    config = config_mod.load(folder)
    result = site_mod.build(config)  # the watcher's build: the handle is not cached yet

    lines: list[str] = []
    cli_publisher(config, echo=lines.append)(result)

    assert any(line.startswith("auto_publish: ") and "1 new" in line for line in lines), lines
    [delivered] = [r for r in web.requests_to("/users/alice/inbox") if r.method == "POST"]
    activity = json.loads(delivered.body)
    assert activity["type"] == "Create"
    assert {"type": "Mention", "href": web.url("/users/alice"), "name": handle} in activity[
        "object"
    ]["tag"]
    assert "h-card mention" in activity["object"]["content"]
    assert "signature" in delivered.headers
