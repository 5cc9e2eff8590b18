"""Moderation from the command line reaches the pages a running daemon serves.

`indiebridge serve` runs as a subprocess on a loopback port; `comments approve|delete`,
`block` and `followers remove` run as separate processes, as a person runs them.  The
daemon notices the change counter they bump and rebuilds within a few seconds.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor
from tests.e2e.blog import Blog, blog  # noqa: F401 - the `blog` fixture

SOON = 8.0  # seconds: the daemon polls every second and builds in well under one


def comment(site: Blog, who: str, host: str, text: str, status: str) -> Comment:
    oid = f"https://{host}/users/{who}/statuses/1"
    c = Comment(
        id=comment_id("activitypub", oid),
        type="reply",
        protocol="activitypub",
        source=oid,
        target=f"{site.base_url}/posts/hello/",
        author=CommentAuthor(who.title(), f"https://{host}/@{who}", "", f"@{who}@{host}"),
        content=f"<p>{text}</p>",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        status=status,
        object_id=oid,
    )
    CommentStore(site.root / "content").write("hello", c)
    return c


def shows(site: Blog, text: str) -> bool:
    return text in site.html("/posts/hello/")


def test_moderation_commands_update_the_live_site(blog: Blog) -> None:  # noqa: F811
    blog.write_post("hello", "Hello, fediverse.")
    alice = comment(blog, "alice", "social.example", "Alice was here", "approved")
    bob = comment(blog, "bob", "spam.example", "Bob was here", "pending")
    blog.start()
    assert shows(blog, "Alice was here") and not shows(blog, "Bob was here")

    approved = blog.cli("comments", "approve", bob.id)
    assert approved.stdout.splitlines()[-1] == "The running daemon rebuilds the pages in a moment."
    started = time.monotonic()
    blog.wait_until(lambda: shows(blog, "Bob was here"), SOON, "the approved comment")
    assert time.monotonic() - started < SOON

    blog.cli("comments", "delete", alice.id)
    blog.wait_until(lambda: not shows(blog, "Alice was here"), SOON, "the deleted comment")

    # The old --build flag still rebuilds in the command itself, and waits for it.
    carol = comment(blog, "carol", "social.example", "Carol was here", "pending")
    built = blog.cli("comments", "approve", carol.id, "--build")
    assert built.stdout.splitlines()[-1].startswith("Built ")
    assert shows(blog, "Carol was here")

    blocked = blog.cli("block", "spam.example")
    assert "Deleted 1 comment(s) by blocked authors." in blocked.stdout
    blog.wait_until(lambda: not shows(blog, "Bob was here"), SOON, "the blocked comment")
    assert "rebuild:" in blog.log_text()


def test_without_a_daemon_the_command_rebuilds(blog: Blog) -> None:  # noqa: F811
    blog.write_post("hello", "Hello, fediverse.")
    bob = comment(blog, "bob", "social.example", "Bob was here", "pending")
    blog.cli("build")
    page = Path(blog.root / "public" / "posts" / "hello" / "index.html")
    assert "Bob was here" not in page.read_text(encoding="utf-8")
    approved = blog.cli("comments", "approve", bob.id)
    assert approved.stdout.splitlines()[-1].startswith("Built ")
    assert "Bob was here" in page.read_text(encoding="utf-8")


def test_serve_drafts_keeps_drafts_in_every_rebuild(blog: Blog) -> None:  # noqa: F811
    blog.write_post("hello", "Hello, fediverse.")
    blog.write_post("wip", "Not finished.", title="Work in progress", draft=True)
    bob = comment(blog, "bob", "social.example", "Bob was here", "pending")
    blog.cli("build", "--drafts")
    blog.start(build=False, extra=("--drafts",))
    # The command below must find the daemon as soon as the site answers: when the
    # background process took the lock after the HTTP workers answered, the command
    # sometimes rebuilt the site itself, without --drafts, and the draft's page was gone.
    # ``serve`` (the supervisor, this pid) takes it before it forks anything.
    lock = blog.root / ".indiebridge" / "daemon.lock"
    assert blog.proc is not None and lock.read_text() == str(blog.proc.pid)
    assert blog.get("/posts/wip/").status_code == 200
    blog.cli("comments", "approve", bob.id)
    blog.wait_until(lambda: shows(blog, "Bob was here"), SOON, "the rebuild")
    assert blog.get("/posts/wip/").status_code == 200  # the daemon's rebuild kept it
