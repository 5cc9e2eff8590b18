"""A Fedify server and the blog, over HTTPS through the web servers of docs/deploy.md.

Fedify (``peer.test``) looks up ``@tester@blog.test``, follows, receives a published post,
and replies; the reply becomes a comment on the page that the web server serves.  Setups:
nginx and Caddy serving the files with the daemon behind them; the split domains (blog on
``blog.test``, daemon on ``ap.blog.test`` with ``federation_url``, WebFinger on the blog's
host); and a static host that sets no headers (GitHub Pages style) behind an nginx that
sends the JSON to the daemon.  The site's own ``public/`` folder is served, which the daemon
rebuilds in place.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge import config
from tests.deploy.peer import PEER_HOST, PEER_PORT, NamespacedPeer
from tests.deploy.stack import (
    BLOG,
    DAEMON_HOSTS,
    SETUPS,
    Deployment,
    Namespace,
    make_certificates,
    served,
)
from tests.deploy.test_webservers import URL, make_site, pytestmark  # noqa: F401

HOSTS = (*DAEMON_HOSTS, PEER_HOST)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 45) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(params=["nginx", "caddy", "nginx-split", "nginx-static-host"])
def stack(
    request: pytest.FixtureRequest, tmp_path: Path, key_files: Path
) -> Iterator[tuple[Deployment, NamespacedPeer]]:
    certs = make_certificates(tmp_path, HOSTS)
    ns = Namespace(tmp_path / "ns", HOSTS, certs["ca"])
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).replace(microsecond=0)
    site = make_site(tmp_path, key_files, federate_since=since, **SETUPS[request.param])
    deployment = Deployment(ns, site, tmp_path / "run")
    peer = NamespacedPeer(ns)
    try:
        deployment.start_daemon()
        # public/ is served in place: the daemon's rebuilds must show through the server.
        deployment.start_setup(request.param, certs, site / "public")
        peer.start(port=PEER_PORT)
        yield deployment, peer
    finally:
        peer.stop()
        deployment.stop()
        ns.close()


def test_fedify_follows_reads_and_replies_over_https(
    stack: tuple[Deployment, NamespacedPeer],
) -> None:
    deployment, peer = stack
    ns, site = deployment.ns, deployment.site_dir

    follow = peer.follow(f"@tester@{BLOG}")
    assert follow["actor"] == f"{URL}/ap/actor.json"
    federation_url = config.load(site).federation_url  # ap.blog.test in the split setup
    assert follow["inbox"] == f"{federation_url}/ap/inbox"
    assert peer.wait_for("Accept", timeout=30)["verified"]

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    (site / "content/posts/through-the-proxy.md").write_text(
        f"---\ntitle: Through the proxy\ndate: {now.isoformat()}\nslug: through-the-proxy\n---\n"
        "Served over TLS by the web server.\n",
        encoding="utf-8",
    )
    published = ns.run([sys.executable, "-m", "bridge", "publish", "--site", str(site)])
    assert published.returncode == 0, published.stdout + published.stderr
    post_id = f"{URL}/ap/posts/through-the-proxy.json"
    create = peer.wait_for("Create", lambda r: r["object"] == post_id, timeout=45)
    assert create["verified"]

    reply = peer.reply(post_id, "<p>Read it through the proxy.</p>")
    page = f"{URL}/posts/through-the-proxy/"
    wait_until(lambda: "Read it through the proxy." in served(ns, page)[1], "the reply on the page")
    comments = list((site / "content/comments/through-the-proxy").glob("*.json"))
    assert [json.loads(c.read_text())["source"] for c in comments] == [reply["noteId"]]
