"""The conversation commands through click's CliRunner, registered on a group the way the
main CLI registers them (``main.add_command`` for each of ``commands``)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bridge import config as config_mod
from bridge.cli.conversations import commands
from bridge.conversations import webmentions
from bridge.conversations.webmention_client import SendResult
from bridge.db import Database
from bridge.site.comments import CommentStore, comment_id
from bridge.site.posts import Comment, CommentAuthor
from tests.webserver import Exchange, WebServer, web_fixture  # noqa: F401 - the `web` fixture

POST = "https://blog.example/posts/first-article/"
EXISTING = "c0ffee0000000000a001"


@click.group()
def cli() -> None:
    """Stands in for bridge.cli.main."""


for command in commands:
    cli.add_command(command)


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def pending(site: Path) -> Comment:
    oid = "https://social.example/users/alice/statuses/5"
    c = Comment(
        id=comment_id("activitypub", oid),
        type="reply",
        protocol="activitypub",
        source=oid,
        target=POST,
        author=CommentAuthor("Alice", "https://social.example/@alice", "", "@alice@social.example"),
        content="<p>Please <em>approve</em> me</p>",
        published=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        status="pending",
        object_id=oid,
    )
    CommentStore(site / "content").write("first-article", c)
    return c


def test_command_names() -> None:
    assert [c.name for c in commands] == ["comments", "conversations", "webmentions", "webmention"]
    assert set(cli.commands["conversations"].commands) == {"backfill"}  # type: ignore[attr-defined]
    assert set(cli.commands["comments"].commands) == {"list", "approve", "reject", "delete"}  # type: ignore[attr-defined]
    assert set(cli.commands["webmentions"].commands) == {"sent", "discover", "send"}  # type: ignore[attr-defined]
    # The old name of the tools stays for one release, hidden from --help.
    assert set(cli.commands["webmention"].commands) == {"discover", "send"}  # type: ignore[attr-defined]
    assert cli.commands["webmention"].hidden


def test_comments_list_text_json_and_pending(site: Path) -> None:
    c = pending(site)
    out = run("comments", "list", "--site", str(site)).output
    lines = out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(EXISTING) and "approved" in lines[0] and "Nice picture!" in lines[0]
    assert lines[1].startswith(c.id) and "pending" in lines[1] and "Please approve me" in lines[1]
    data = json.loads(run("comments", "list", "--json", "--site", str(site)).output)
    assert [e["id"] for e in data] == [EXISTING, c.id]
    assert data[1]["content"] == "<p>Please <em>approve</em> me</p>"
    assert data[1]["author"]["handle"] == "@alice@social.example"
    only = json.loads(run("comments", "list", "--pending", "--json", "--site", str(site)).output)
    assert [e["id"] for e in only] == [c.id]


def test_approve_reject_delete(site: Path) -> None:
    c = pending(site)
    result = run("comments", "approve", c.id, "--site", str(site))
    assert result.exit_code == 0 and f"Approved reply {c.id}" in result.output
    # No daemon runs: the command rebuilds the pages itself.
    assert result.output.splitlines()[1].startswith("Built ")
    store = CommentStore(site / "content")
    assert store.get(c.id)[1].status == "approved"  # type: ignore[index]
    assert "Please" in (site / "public/posts/first-article/index.html").read_text("utf-8")
    result = run("comments", "approve", c.id, "--site", str(site), "--build")  # old flag
    assert result.exit_code == 0
    result = run("comments", "reject", c.id, "--site", str(site))
    assert result.exit_code == 0 and "Rejected" in result.output
    assert store.get(c.id) is None
    assert "Please" not in (site / "public/posts/first-article/index.html").read_text("utf-8")
    result = run("comments", "delete", EXISTING, "--site", str(site))
    assert result.exit_code == 0 and f"Deleted reply {EXISTING}" in result.output
    assert run("comments", "list", "--site", str(site)).output == "No comments yet.\n"


@pytest.mark.parametrize("action", ["approve", "reject", "delete"])
def test_unknown_comment_is_a_one_line_error(site: Path, action: str) -> None:
    result = CliRunner().invoke(cli, ["comments", action, "deadbeef", "--site", str(site)])
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: no comment with id deadbeef (see 'indiebridge comments list')"
    )


def test_missing_site_is_a_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["comments", "list", "--site", str(tmp_path)])
    assert result.exit_code == 1 and "site.toml" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_webmentions_lists_what_was_sent(site: Path) -> None:
    assert run("webmentions", "--site", str(site)).output == "No webmentions sent yet.\n"
    db = Database(config_mod.load(site).db_path)
    webmentions.record_sent(
        db, POST, SendResult("https://a.example/", "https://a.example/wm", 202, None, None)
    )
    webmentions.record_sent(
        db, POST, SendResult("https://b.example/", None, None, None, "no webmention endpoint")
    )
    db.close()
    out = run("webmentions", "sent", "--site", str(site)).output
    assert f"HTTP 202 {POST} -> https://a.example/" in out
    assert "(no webmention endpoint)" in out
    assert run("webmentions", "--site", str(site)).output == out  # the old spelling
    data = json.loads(run("webmentions", "sent", "--json", "--site", str(site)).output)
    assert data == json.loads(run("webmentions", "--json", "--site", str(site)).output)
    assert {(d["target"], d["ok"]) for d in data} == {
        ("https://a.example/", True),
        ("https://b.example/", False),
    }


def test_webmention_discover(web: WebServer, tmp_path: Path, make_site: object) -> None:
    site = make_site({"allow_private_addresses": True})  # type: ignore[operator]
    web.route("/p", headers={"Link": '</endpoint?x=1>; rel="webmention"'})
    web.route("/none", body="<p>nothing</p>")
    result = run("webmentions", "discover", web.url("/p"), "--site", str(site))
    assert result.output == web.url("/endpoint?x=1") + "\n"
    result = CliRunner().invoke(
        cli, ["webmentions", "discover", web.url("/none"), "--site", str(site)]
    )
    assert result.exit_code == 1 and "no Webmention endpoint" in result.output
    assert len(result.output.strip().splitlines()) == 1
    # Without a site the safe defaults apply: loopback is refused.
    result = CliRunner().invoke(
        cli, ["webmention", "discover", web.url("/p"), "--site", str(tmp_path)]
    )
    assert result.exit_code == 1 and "not a public address" in result.output


def test_webmention_send(web: WebServer, make_site: object) -> None:
    site = make_site({"allow_private_addresses": True})  # type: ignore[operator]
    web.route("/target", headers={"Link": "</wm>; rel=webmention"})

    def endpoint(ex: Exchange) -> None:
        ex.send(201, {"Location": "/status/7"})

    web.route("/wm", handler=endpoint, methods=["POST"])
    web.route("/bad", headers={"Link": "</wm-bad>; rel=webmention"})
    web.route("/wm-bad", status=400, body="nope", methods=["POST"])
    result = run("webmentions", "send", POST, web.url("/target"), "--site", str(site))
    assert result.output == (f"{web.url('/wm')}: HTTP 201 (status page: {web.url('/status/7')})\n")
    assert web.requests_to("/wm")[0].form == {"source": [POST], "target": [web.url("/target")]}
    result = CliRunner().invoke(
        cli, ["webmention", "send", POST, web.url("/bad"), "--site", str(site)]
    )
    assert result.exit_code == 1 and "answered HTTP 400" in result.output
    sent = json.loads(run("webmentions", "--json", "--site", str(site)).output)
    assert {d["target"] for d in sent} == {web.url("/target"), web.url("/bad")}
