"""The inbox against hostile senders: forged, replayed, oversized, malformed and
mis-attributed activities, and floods.

Each refusal answers a 4xx and leaves the store (the inbox, followers, deliveries,
notifications and the comment files) unchanged; each accepted-but-hostile activity is
processed without effect.  The in-process daemon and its mock fediverse are the
``InboxHarness`` of ``conftest.py``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from bridge.federation.signatures import content_digest_header, digest_header, http_date
from bridge.site.comments import comment_id
from tests.security.conftest import (
    ALICE,
    CAROL,
    MALLORY,
    PUBLIC,
    InboxHarness,
    create,
    note,
)

pytestmark = [pytest.mark.anyio, pytest.mark.category("inbox")]


def follow(h: InboxHarness, actor: str = ALICE, n: int = 1) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/follows/{n}",
        "type": "Follow",
        "actor": actor,
        "object": h.actor_id,
    }


def reply(h: InboxHarness, actor: str = ALICE, n: int = 1, **extra: Any) -> dict[str, Any]:
    obj = note(f"{actor}/notes/{n}", author=actor, in_reply_to=h.post_url, **extra)
    return create(actor, obj, n)


async def refused(h: InboxHarness, response: httpx.Response, before: Any, *codes: int) -> None:
    """The answer is one of ``codes`` with a JSON reason, and nothing was stored or done."""
    assert response.status_code in codes, (response.status_code, response.text)
    assert "error" in response.json()
    assert await h.process() == 0
    assert h.store() == before
    assert h.sent == []


# ---- who signed ---------------------------------------------------------------------------


async def test_unsigned_post_is_refused(inbox: InboxHarness) -> None:
    before = inbox.store()
    r = await inbox.client.post(
        "/inbox",
        content=json.dumps(reply(inbox)),
        headers={"Content-Type": "application/activity+json"},
    )
    await refused(inbox, r, before, 401)


async def test_signature_by_another_key_than_named_is_refused(inbox: InboxHarness) -> None:
    before = inbox.store()
    # mallory's private key, alice's key id
    r = await inbox.post(reply(inbox), signer=MALLORY, key_id=ALICE + "#main-key")
    await refused(inbox, r, before, 401)


async def test_key_owner_other_than_the_actor_is_refused(inbox: InboxHarness) -> None:
    before = inbox.store()
    r = await inbox.post(follow(inbox, actor=ALICE), signer=MALLORY)
    await refused(inbox, r, before, 401)
    assert "actor" in r.json()["error"]


@pytest.mark.parametrize(
    "change",
    ["date", "host", "path", "content-type-only-signed"],
)
async def test_signature_over_other_headers_than_sent_is_refused(
    inbox: InboxHarness, change: str
) -> None:
    before = inbox.store()
    request = inbox.signed_request(follow(inbox))
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    path = "/inbox"
    if change == "date":  # a fresh Date the signature does not cover
        headers["date"] = http_date(dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30))
    elif change == "host":  # the same bytes replayed at another host
        headers["host"] = "elsewhere.example"
    elif change == "path":  # signed for /inbox, sent to the actor's inbox
        path = "/ap/inbox"
    else:  # a signature that names headers the request does not carry
        sig = headers["signature"].replace(
            'headers="(request-target) host date digest"',
            'headers="(request-target) host date digest x-extra"',
        )
        headers["signature"] = sig
    r = await inbox.client.post(path, content=request.content, headers=headers)
    await refused(inbox, r, before, 401)


def _cavage(
    h: InboxHarness, body: bytes, signed: list[str], extra: dict[str, str]
) -> dict[str, str]:
    """A hand-made cavage signature over exactly ``signed`` (to break the rules on purpose)."""
    headers = {
        "content-type": "application/activity+json",
        "host": httpx.URL(h.config.federation_url).netloc.decode(),
        "date": http_date(dt.datetime.now(dt.UTC)),
        "digest": digest_header(body),
        **extra,
    }
    lines = []
    for name in signed:
        value = "post /inbox" if name == "(request-target)" else headers[name]
        lines.append(f"{name}: {value}")
    signature = h.keys[ALICE].sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    headers["signature"] = (
        f'keyId="{ALICE}#main-key",algorithm="rsa-sha256",headers="{" ".join(signed)}",'
        f'signature="{base64.b64encode(signature).decode()}"'
    )
    return headers


@pytest.mark.parametrize(
    "signed",
    [["date"], ["(request-target)", "host", "date"], ["host", "digest"], ["content-type"]],
    ids=["date-only", "no-digest", "no-date", "content-type-only"],
)
async def test_signature_covering_too_little_is_refused(
    inbox: InboxHarness, signed: list[str]
) -> None:
    """A valid signature over too few headers would let the body or the moment be swapped."""
    before = inbox.store()
    body = json.dumps(follow(inbox)).encode()
    r = await inbox.client.post("/inbox", content=body, headers=_cavage(inbox, body, signed, {}))
    await refused(inbox, r, before, 400, 401)


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize("delta", [-2 * 3600, 3600], ids=["stale", "future"])
async def test_stale_or_future_signature_is_refused(
    inbox: InboxHarness, scheme: str, delta: int
) -> None:
    before = inbox.store()
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delta)
    r = await inbox.post(follow(inbox), now=moment, scheme=scheme)
    await refused(inbox, r, before, 401)


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize("recompute", [False, True], ids=["stale-digest", "recomputed-digest"])
async def test_tampered_body_is_refused(inbox: InboxHarness, scheme: str, recompute: bool) -> None:
    """Digest (cavage) and Content-Digest (RFC 9421): a changed body never passes, even
    with a digest header recomputed for it (the signature covers the digest)."""
    before = inbox.store()
    request = inbox.signed_request(follow(inbox), scheme=scheme)
    tampered = json.dumps({**follow(inbox), "object": "https://evil.example/"}).encode()
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    if recompute:
        if scheme == "cavage":
            headers["digest"] = digest_header(tampered)
        else:
            headers["content-digest"] = content_digest_header(tampered)
    r = await inbox.client.post("/inbox", content=tampered, headers=headers)
    await refused(inbox, r, before, 401)
    if not recompute:
        assert "digest" in r.json()["error"].lower()


# ---- who may say what about whom ----------------------------------------------------------


async def test_forwarded_create_is_only_believed_from_its_origin(inbox: InboxHarness) -> None:
    """Mallory relays a reply 'by alice' with words alice never wrote: the inbox keeps it
    flagged, the processor asks alice's server, and only what that server says is shown."""
    forged = reply(inbox, content="<p>alice says: send me your keys</p>")
    r = await inbox.post(forged, signer=MALLORY)
    assert r.status_code == 202
    assert [(row["forwarded"], row["error"]) for row in inbox.inbox_rows()] == [(1, "")]
    await inbox.process()  # alice's server does not know the object: 404
    assert inbox.comments() == {}
    # Redelivered once alice's server has the real note: its own words are used.
    real = note(ALICE + "/notes/1", in_reply_to=inbox.post_url, content="<p>the real words</p>")
    inbox.remote.serve(real["id"], real)
    again = {**forged, "id": forged["id"] + "-again"}
    assert (await inbox.post(again, signer=MALLORY)).status_code == 202
    await inbox.process()
    [comment] = inbox.comments().values()
    assert "real words" in comment.content and "keys" not in comment.content


@pytest.mark.parametrize(
    "case",
    ["object-on-other-host", "attributed-to-other-host", "both-on-other-host"],
)
async def test_actor_cannot_create_a_comment_for_another_host(
    inbox: InboxHarness, case: str
) -> None:
    """Alice (remote.example) sends a Create whose object claims other.example: no comment
    may appear attributed to other.example, whatever alice's own server serves."""
    before = inbox.store()
    if case == "object-on-other-host":
        obj = note("https://other.example/notes/forged", author=ALICE, in_reply_to=inbox.post_url)
    elif case == "attributed-to-other-host":
        obj = note(ALICE + "/notes/forged", author=MALLORY, in_reply_to=inbox.post_url)
        inbox.remote.serve(obj["id"], obj)  # alice's server repeats the lie when asked
    else:
        obj = note("https://other.example/notes/forged", author=MALLORY, in_reply_to=inbox.post_url)
    r = await inbox.post(create(ALICE, obj))
    assert r.status_code == 202
    await inbox.process()
    after = inbox.store()
    assert after["comment files"] == before["comment files"]
    assert after["notifications"] == before["notifications"]
    for comment in inbox.comments().values():
        assert "other.example" not in comment.author.url + comment.author.handle


async def test_actor_cannot_edit_or_delete_someone_elses_comment(inbox: InboxHarness) -> None:
    inbox.unlimited()
    mine = note(MALLORY + "/notes/1", author=MALLORY, in_reply_to=inbox.post_url)
    assert (await inbox.post(create(MALLORY, mine), signer=MALLORY)).status_code == 202
    await inbox.process()
    before = inbox.store()
    assert len(before["comment files"]) == 2  # the test site's own comment, and mallory's
    edited = {**mine, "attributedTo": ALICE, "content": "<p>defaced</p>"}
    attempts = [
        {"id": ALICE + "/u/1", "type": "Update", "actor": ALICE, "object": edited},
        {"id": ALICE + "/d/1", "type": "Delete", "actor": ALICE, "object": mine["id"]},
        {"id": ALICE + "/d/2", "type": "Delete", "actor": ALICE, "object": {"id": mine["id"]}},
        {"id": ALICE + "/d/3", "type": "Delete", "actor": ALICE, "object": MALLORY},
    ]
    for n, activity in enumerate(attempts):
        assert (await inbox.post(activity)).status_code == 202, n
    await inbox.process()
    assert inbox.store()["comment files"] == before["comment files"]


async def test_undo_of_someone_elses_like_changes_nothing(inbox: InboxHarness) -> None:
    like = {"id": MALLORY + "/likes/1", "type": "Like", "actor": MALLORY, "object": inbox.post_url}
    assert (await inbox.post(like, signer=MALLORY)).status_code == 202
    await inbox.process()
    before = inbox.store()
    undos = [
        {"id": ALICE + "/undo/1", "type": "Undo", "actor": ALICE, "object": like},
        {"id": ALICE + "/undo/2", "type": "Undo", "actor": ALICE, "object": like["id"]},
        {
            "id": ALICE + "/undo/3",
            "type": "Undo",
            "actor": ALICE,
            "object": {**like, "actor": ALICE, "id": ALICE + "/likes/1"},
        },
    ]
    for activity in undos:
        assert (await inbox.post(activity)).status_code == 202
    await inbox.process()
    assert inbox.store()["comment files"] == before["comment files"]


@pytest.mark.parametrize(
    "target",
    [
        "https://blog.example/posts/no-such-post/",
        "https://blog.example/ap/posts/no-such-post.json",
        "https://blog.example/posts/../site.toml",
        "https://other.example/posts/first-article/",
        "https://blog.example/ap/actor.json",
    ],
)
async def test_like_of_a_post_that_does_not_exist_does_nothing(
    inbox: InboxHarness, target: str
) -> None:
    before = inbox.store()
    like = {"id": ALICE + "/likes/x", "type": "Like", "actor": ALICE, "object": target}
    assert (await inbox.post(like)).status_code == 202
    await inbox.process()
    after = inbox.store()
    assert after["comment files"] == before["comment files"]
    assert [row["status"] for row in inbox.inbox_rows()] == ["done"]


@pytest.mark.parametrize("kind", ["EmojiDance", "Add", "Block", "Flag", "Move", "Reject", "Read"])
async def test_unknown_or_unhandled_types_are_accepted_and_ignored(
    inbox: InboxHarness, kind: str
) -> None:
    before = inbox.store()
    activity = {"id": ALICE + "/x/" + kind, "type": kind, "actor": ALICE, "object": inbox.actor_id}
    assert (await inbox.post(activity)).status_code == 202
    await inbox.process()
    assert inbox.inbox_rows() == []  # nothing acts on it: not even stored
    assert inbox.store() == before
    assert inbox.sent == []


@pytest.mark.parametrize("kind", ["Accept", "Reject"])
async def test_an_answer_to_an_unknown_quote_request_of_ours_changes_nothing(
    inbox: InboxHarness, kind: str
) -> None:
    # An Accept or Reject is stored only when it names one of our QuoteRequests (quote_of).
    before = inbox.store()
    activity = {
        "id": ALICE + "/x/" + kind,
        "type": kind,
        "actor": ALICE,
        "object": inbox.actor_id + "#quote-requests/0000",
        "result": ALICE + "/stamps/1",
    }
    assert (await inbox.post(activity)).status_code == 202
    await inbox.process()
    assert [row["status"] for row in inbox.inbox_rows()] == ["done"]
    after = inbox.store()
    assert {k: v for k, v in after.items() if k != "inbox"} == {
        k: v for k, v in before.items() if k != "inbox"
    }
    assert inbox.sent == []


# ---- replays ------------------------------------------------------------------------------


async def test_replayed_request_is_stored_and_applied_once(inbox: InboxHarness) -> None:
    request = inbox.signed_request(follow(inbox))
    for _ in range(3):
        assert (await inbox.send(request)).status_code == 202
    assert len(inbox.inbox_rows()) == 1
    await inbox.process()
    assert len(inbox.store()["followers"]) == 1
    assert [a["type"] for a, _ in inbox.sent] == ["Accept"]


async def test_same_id_with_other_content_is_not_applied_again(inbox: InboxHarness) -> None:
    first = reply(inbox, content="<p>first words</p>")
    assert (await inbox.post(first)).status_code == 202
    await inbox.process()
    before = inbox.store()
    second = reply(inbox, content="<p>swapped words</p>")  # same activity id
    assert (await inbox.post(second)).status_code == 202
    await inbox.process()
    assert inbox.store() == before
    [comment] = inbox.comments().values()
    assert "first words" in comment.content


async def test_activity_without_id_is_deduplicated_by_its_bytes(inbox: InboxHarness) -> None:
    activity = {k: v for k, v in follow(inbox).items() if k != "id"}
    request = inbox.signed_request(activity)
    assert (await inbox.send(request)).status_code == 202
    assert (await inbox.send(request)).status_code == 202
    assert len(inbox.inbox_rows()) == 1


# ---- size and shape -----------------------------------------------------------------------


async def test_ten_megabyte_body_with_length_is_refused_unread(inbox: InboxHarness) -> None:
    before = inbox.store()
    big = b'{"type": "Create", "actor": "' + ALICE.encode() + b'", "x": "'
    big += b"a" * (10 * 1024 * 1024) + b'"}'
    r = await inbox.client.post(
        "/inbox", content=big, headers={"Content-Type": "application/activity+json"}
    )
    await refused(inbox, r, before, 413)


async def test_ten_megabyte_streamed_body_is_cut_off_early(inbox: InboxHarness) -> None:
    """No Content-Length (chunked): reading stops just past the 1 MB limit."""
    before = inbox.store()
    chunk = b"a" * 65536
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"type": "Create", "actor": "' + ALICE.encode() + b'", "x": "'
        for _ in range(160):  # 10 MB
            sent += len(chunk)
            yield chunk
        yield b'"}'

    r = await inbox.client.post(
        "/inbox", content=stream(), headers={"Content-Type": "application/activity+json"}
    )
    await refused(inbox, r, before, 413)


@pytest.mark.parametrize("depth", [200, 100_000])
@pytest.mark.parametrize("shape", ["objects", "arrays"])
async def test_deeply_nested_json_is_refused(inbox: InboxHarness, depth: int, shape: str) -> None:
    before = inbox.store()
    opening, closing = ('{"a":', "}") if shape == "objects" else ("[", "]")
    nested = opening * depth + "1" + closing * depth
    body = (
        '{"id": "'
        + ALICE
        + '/n", "type": "Create", "actor": "'
        + ALICE
        + '", "object": '
        + nested
        + "}"
    ).encode()
    r = await inbox.send(inbox.signed_request(None, body=body))
    await refused(inbox, r, before, 400)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00{",
        b'{"type": "Follow", "actor": "javascript:alert(1)"}',
        b'{"type": "Follow", "actor": "file:///etc/passwd"}',
        b'{"type": ["Follow"], "actor": "https://remote.example/users/alice"}',
        b'{"type": "Follow", "actor": {"id": ["x"]}}',
        b'{"type": "Follow", "actor": "https://remote.example/users/alice", "__proto__": {}}',
        b"NaN",
        b'{"type": "Follow", "actor": "https://remote.example/users/alice", "n": 1e999999}',
    ],
)
async def test_malformed_bodies_are_4xx(inbox: InboxHarness, body: bytes) -> None:
    before = inbox.store()
    r = await inbox.client.post(
        "/inbox", content=body, headers={"Content-Type": "application/activity+json"}
    )
    await refused(inbox, r, before, 400, 401)


@pytest.mark.parametrize(
    "actor",
    ["http://[", "https://[::1", "http://a:b:c/", "https://remote.example:99999/users/alice"],
)
async def test_unparseable_actor_url_is_4xx_not_500(inbox: InboxHarness, actor: str) -> None:
    before = inbox.store()
    body = json.dumps({"id": "x", "type": "Follow", "actor": actor, "object": "y"}).encode()
    r = await inbox.client.post(
        "/inbox", content=body, headers={"Content-Type": "application/activity+json"}
    )
    await refused(inbox, r, before, 400, 401)


@pytest.mark.parametrize("host", [b"[", b"a b", b"testserver:x", b"\xe9.example", b"a/b?c#d"])
async def test_hostile_host_header_is_4xx_not_500(inbox: InboxHarness, host: bytes) -> None:
    before = inbox.store()
    request = inbox.signed_request(follow(inbox))
    headers: dict[str, Any] = {
        k: v for k, v in request.headers.items() if k.lower() not in ("content-length", "host")
    }
    headers["host"] = host
    r = await inbox.client.post("/inbox", content=request.content, headers=headers)
    await refused(inbox, r, before, 400, 401)


# ---- poison activities ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "odd_id", [{"a": 1}, ["x"], 1.5, True], ids=["object", "list", "float", "bool"]
)
async def test_follow_with_an_odd_id_does_not_block_the_queue(
    inbox: InboxHarness, odd_id: Any
) -> None:
    """A signed Follow whose id is not a string must not wedge the processor: the rows
    received after it are still processed."""
    poison = {**follow(inbox), "id": odd_id}
    assert (await inbox.post(poison)).status_code == 202
    good = follow(inbox, actor=CAROL)
    assert (await inbox.post(good, signer=CAROL)).status_code == 202
    await inbox.process()  # must not raise
    statuses = [row["status"] for row in inbox.inbox_rows()]
    assert "new" not in statuses, statuses
    assert CAROL in [row[0] for row in inbox.store()["followers"]]


# ---- floods -------------------------------------------------------------------------------


async def test_follow_flood_from_one_host_is_429_and_others_are_served(
    inbox: InboxHarness,
) -> None:
    statuses = []
    for n in range(70):
        statuses.append((await inbox.post(follow(inbox, n=n))).status_code)
    assert statuses[:60] == [202] * 60
    assert set(statuses[60:]) == {429}
    limited = await inbox.post(follow(inbox, n=999))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) > 0
    # Another host is served, and so is a reply from the noisy host (other bucket).
    assert (await inbox.post(follow(inbox, actor=CAROL), signer=CAROL)).status_code == 202
    assert (await inbox.post(reply(inbox))).status_code == 202


async def test_unsigned_flood_naming_a_host_does_not_lock_that_host_out(
    inbox: InboxHarness,
) -> None:
    """Anyone can claim ``"actor": "https://remote.example/..."``; a flood of unsigned or
    forged requests naming alice's server must not spend that server's rate limit."""
    forged = json.dumps(follow(inbox)).encode()
    for _ in range(700):
        r = await inbox.client.post(
            "/inbox", content=forged, headers={"Content-Type": "application/activity+json"}
        )
        assert r.status_code in (401, 429)
    assert (await inbox.post(follow(inbox, n=2))).status_code == 202
    assert (await inbox.post(reply(inbox))).status_code == 202


async def test_rate_limit_never_stores_what_it_refuses(inbox: InboxHarness) -> None:
    inbox.daemon.limiter.limits["all"] = 3
    for n in range(6):
        await inbox.post(
            {"id": f"{ALICE}/likes/{n}", "type": "Like", "actor": ALICE, "object": PUBLIC}
        )
    assert len(inbox.inbox_rows()) == 3


# ---- the key cache ------------------------------------------------------------------------


async def test_actor_document_cannot_claim_another_hosts_key(inbox: InboxHarness) -> None:
    """Mallory's actor document lists a key whose id is on alice's server.  Storing it
    must not replace alice's cached key: otherwise alice's requests stop verifying with
    the cached key (a refetch is then needed, and impossible once alice's account is gone,
    so her account Delete would be refused)."""
    from bridge.federation.actors import parse_actor
    from tests.security.conftest import actor_doc, pem_of

    doc = actor_doc(MALLORY, inbox.keys[MALLORY])
    doc["publicKey"] = [
        doc["publicKey"],
        {"id": ALICE + "#main-key", "owner": MALLORY, "publicKeyPem": pem_of(inbox.keys[MALLORY])},
    ]
    inbox.ctx.actors.store(parse_actor(doc))
    row = inbox.db.one("SELECT owner, pem FROM keys WHERE key_id = ?", (ALICE + "#main-key",))
    assert row is not None and row["owner"] == ALICE
    # Alice's server is gone (410): her Delete still verifies with the cached key.
    inbox.remote.serve(ALICE, {"type": "Tombstone"}, status=410)
    like = {"id": CAROL + "/likes/1", "type": "Like", "actor": CAROL, "object": inbox.post_url}
    await inbox.post(like, signer=CAROL)
    delete = {"id": ALICE + "#delete", "type": "Delete", "actor": ALICE, "object": ALICE}
    assert (await inbox.post(delete)).status_code == 202
    assert any(r["id"] == ALICE + "#delete" for r in inbox.inbox_rows())


async def test_comment_id_is_stable_so_hostile_redelivery_cannot_multiply_comments(
    inbox: InboxHarness,
) -> None:
    """Thirty Creates of one object under different activity ids: one comment file."""
    inbox.unlimited()
    obj = note(ALICE + "/notes/7", in_reply_to=inbox.post_url)
    for n in range(30):
        await inbox.post({**create(ALICE, obj), "id": f"{ALICE}/activities/{n}"})
    await inbox.process()
    ids = list(inbox.comments())
    assert ids == [comment_id("activitypub", obj["id"])]
