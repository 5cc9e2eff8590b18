"""The daemon's HTTP surface in-process: inbox verification and rejections, WebFinger,
content negotiation, followers, Follow/Undo processing.

Each rejection answers the status interop rules call for and leaves the store unchanged.
Remote actors are pre-seeded in the actor/key cache, so no network is involved.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge import config as config_mod
from bridge import keys as keymod
from bridge.daemon import app as daemon_mod
from bridge.db import Database
from bridge.federation.actors import parse_actor
from bridge.federation.context import make_context
from bridge.federation.signatures import sign_request
from bridge.site import build as site_mod

pytestmark = pytest.mark.anyio

REMOTE = "https://remote.example/users/alice"
KEY_ID = REMOTE + "#main-key"
OTHER = "https://other.example/users/mallory"
OTHER_KEY_ID = OTHER + "#main-key"


def _pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def remote_keys() -> dict[str, rsa.RSAPrivateKey]:
    return {
        REMOTE: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        OTHER: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }


class Harness:
    def __init__(self, site: Path, keys: dict[str, rsa.RSAPrivateKey]) -> None:
        self.config = config_mod.load(site)
        site_mod.build(self.config)

        # No network at all: any fetch the code attempts fails loudly instead of leaving
        # the machine (remote actors are seeded in the cache below).
        def refuse(request: httpx.Request) -> httpx.Response:
            raise AssertionError(f"unexpected network access: {request.url}")

        db = Database(self.config.db_path)
        ctx = make_context(
            self.config,
            db,
            keymod.load(self.config.state_dir),
            transport=httpx.MockTransport(refuse),
        )
        self.daemon = daemon_mod.Daemon(self.config, ctx=ctx)
        self.sent: list[tuple[dict[str, Any], list[str]]] = []
        self.daemon.ctx.enqueue = lambda activity, inboxes: self.sent.append((activity, inboxes))
        self.keys = keys
        for actor, key in keys.items():
            doc = {
                "id": actor,
                "type": "Person",
                "preferredUsername": actor.rsplit("/", 1)[1],
                "inbox": actor + "/inbox",
                "endpoints": {"sharedInbox": actor.split("/users")[0] + "/inbox"},
                "publicKey": {"id": actor + "#main-key", "owner": actor, "publicKeyPem": _pem(key)},
            }
            self.daemon.ctx.actors.store(parse_actor(doc))
        app = daemon_mod.create_app(self.config, daemon=self.daemon)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=self.config.federation_url
        )

    async def signed_post(
        self,
        path: str,
        activity: Any,
        *,
        signer: str = REMOTE,
        key_id: str | None = None,
        now: dt.datetime | None = None,
        body: bytes | None = None,
        tamper: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        raw = body if body is not None else json.dumps(activity).encode()
        request = httpx.Request(
            "POST",
            self.config.federation_url + path,  # signed for our own host
            content=raw,
            headers={"Content-Type": "application/activity+json", **(headers or {})},
        )
        sign_request(
            request,
            self.keys[signer],
            key_id or signer + "#main-key",
            "cavage",
            now or dt.datetime.now(dt.UTC),
        )
        return await self.client.post(
            path, content=tamper if tamper is not None else raw, headers=dict(request.headers)
        )

    def store(self) -> dict[str, list[tuple[Any, ...]]]:
        con = sqlite3.connect(self.config.db_path)
        try:
            return {
                t: sorted(con.execute(f"SELECT * FROM {t}").fetchall())
                for t in ("inbox", "followers", "deliveries", "outgoing")
            }
        finally:
            con.close()

    async def process(self) -> int:
        return await self.daemon.processor.process_pending(wait=None)


@pytest.fixture
async def harness(site: Path, remote_keys: dict[str, rsa.RSAPrivateKey]) -> AsyncIterator[Harness]:
    h = Harness(site, remote_keys)
    yield h
    await h.client.aclose()
    await h.daemon.writer.close()
    await h.daemon.ctx.fetcher.aclose()
    h.daemon.db.close()


def follow(
    actor: str = REMOTE, n: int = 1, target: str | None = None, h: Harness | None = None
) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}#follows/{n}",
        "type": "Follow",
        "actor": actor,
        "object": target or (h.config.actor_id if h else ""),
    }


# ---- rejections: status and an unchanged store ------------------------------------------


async def test_unsigned_post_is_401_and_stores_nothing(harness: Harness) -> None:
    before = harness.store()
    r = await harness.client.post(
        "/inbox",
        content=json.dumps(follow(h=harness)),
        headers={"Content-Type": "application/activity+json"},
    )
    assert r.status_code == 401
    assert "error" in r.json()
    assert harness.store() == before


async def test_forged_signature_wrong_key_is_401(harness: Harness) -> None:
    before = harness.store()
    # Signed with mallory's private key but claiming alice's key id.
    r = await harness.signed_post("/inbox", follow(h=harness), signer=OTHER, key_id=KEY_ID)
    assert r.status_code == 401
    assert harness.store() == before


async def test_key_owner_is_not_the_actor_is_401(harness: Harness) -> None:
    before = harness.store()
    r = await harness.signed_post("/inbox", follow(actor=REMOTE, h=harness), signer=OTHER)
    assert r.status_code == 401
    assert "actor" in r.json()["error"]
    assert harness.store() == before


@pytest.mark.parametrize("delta", [dt.timedelta(hours=-2), dt.timedelta(hours=2)])
async def test_stale_or_future_date_is_401(harness: Harness, delta: dt.timedelta) -> None:
    before = harness.store()
    r = await harness.signed_post("/inbox", follow(h=harness), now=dt.datetime.now(dt.UTC) + delta)
    assert r.status_code == 401
    assert harness.store() == before


async def test_digest_mismatch_is_401(harness: Harness) -> None:
    before = harness.store()
    act = follow(h=harness)
    tampered = json.dumps({**act, "object": "https://evil.example/"}).encode()
    r = await harness.signed_post("/inbox", act, tamper=tampered)
    assert r.status_code == 401
    assert "digest" in r.json()["error"].lower()
    assert harness.store() == before


async def test_oversized_body_is_413(harness: Harness) -> None:
    before = harness.store()
    big = (
        b'{"type": "Create", "actor": "' + REMOTE.encode() + b'", "x": "' + b"a" * 1_100_000 + b'"}'
    )
    r = await harness.client.post(
        "/inbox", content=big, headers={"Content-Type": "application/activity+json"}
    )
    assert r.status_code == 413
    assert harness.store() == before


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"type": "Follow"}', b'"text"'])
async def test_malformed_json_is_400(harness: Harness, body: bytes) -> None:
    before = harness.store()
    r = await harness.client.post(
        "/inbox", content=body, headers={"Content-Type": "application/activity+json"}
    )
    assert r.status_code == 400
    assert harness.store() == before


async def test_deeply_nested_json_is_400(harness: Harness) -> None:
    nested: Any = "x"
    for _ in range(200):
        nested = {"a": nested}
    before = harness.store()
    r = await harness.signed_post("/inbox", {**follow(h=harness), "object": nested})
    assert r.status_code == 400
    assert harness.store() == before


async def test_wrong_content_type_is_415(harness: Harness) -> None:
    r = await harness.client.post(
        "/inbox", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 415


# ---- accepted activities ----------------------------------------------------------------


async def test_follow_is_accepted_with_embedded_follow_and_processed_once(harness: Harness) -> None:
    act = follow(h=harness)
    assert (await harness.signed_post("/ap/inbox", act)).status_code == 202
    assert (await harness.signed_post("/inbox", act)).status_code == 202  # redelivery: same id
    assert len(harness.store()["inbox"]) == 1
    assert await harness.process() == 1
    assert await harness.process() == 0
    rows = harness.store()["followers"]
    assert [r[0] for r in rows] == [REMOTE]
    ((accept, inboxes),) = harness.sent
    assert accept["type"] == "Accept"
    assert accept["actor"] == harness.config.actor_id
    # interop: the Accept embeds the original Follow with its original id, never our actor.
    assert accept["object"] == {
        "id": act["id"],
        "type": "Follow",
        "actor": REMOTE,
        "object": harness.config.actor_id,
    }
    assert inboxes == [REMOTE + "/inbox"]  # personal inbox, not the shared one


async def test_repeated_follow_gets_another_accept(harness: Harness) -> None:
    await harness.signed_post("/inbox", follow(h=harness, n=1))
    await harness.signed_post("/inbox", follow(h=harness, n=2))
    await harness.process()
    assert [a["type"] for a, _ in harness.sent] == ["Accept", "Accept"]
    assert len(harness.store()["followers"]) == 1


async def test_undo_follow_by_embedded_id_and_by_pair(harness: Harness) -> None:
    act = follow(h=harness)
    await harness.signed_post("/inbox", act)
    await harness.process()
    undo = {"id": REMOTE + "#undo/1", "type": "Undo", "actor": REMOTE, "object": act}
    assert (await harness.signed_post("/inbox", undo)).status_code == 202
    await harness.process()
    assert harness.store()["followers"] == []
    # Misskey-style Undo of a Follow whose id we never saw: matched by type + actor.
    await harness.signed_post("/inbox", follow(h=harness, n=3))
    await harness.process()
    undo2 = {
        "id": REMOTE + "#undo/2",
        "type": "Undo",
        "actor": REMOTE,
        "object": {"type": "Follow", "actor": REMOTE, "object": harness.config.actor_id},
    }
    await harness.signed_post("/inbox", undo2)
    await harness.process()
    assert harness.store()["followers"] == []


async def test_unknown_activity_type_is_202_and_ignored(harness: Harness) -> None:
    r = await harness.signed_post(
        "/inbox", {"id": REMOTE + "#x", "type": "EmojiDance", "actor": REMOTE}
    )
    assert r.status_code == 202
    await harness.process()
    assert harness.store()["followers"] == []


async def test_blocked_domain_gets_reject(harness: Harness) -> None:
    from bridge.federation import followers

    followers.block(harness.daemon.db, "remote.example")
    await harness.signed_post("/inbox", follow(h=harness))
    await harness.process()
    assert harness.store()["followers"] == []
    assert [a["type"] for a, _ in harness.sent] == ["Reject"]


async def test_manual_approval_holds_follow_pending(make_site: Any, remote_keys: Any) -> None:
    h = Harness(make_site({"manually_approves_followers": True}), remote_keys)
    try:
        await h.signed_post("/inbox", follow(h=h))
        await h.process()
        assert [r[5] for r in h.store()["followers"]] == ["pending"]
        assert h.sent == []
        from bridge.federation import inbox

        assert inbox.accept_pending(h.daemon.ctx, REMOTE)
        assert [a["type"] for a, _ in h.sent] == ["Accept"]
    finally:
        await h.client.aclose()
        await h.daemon.writer.close()
        await h.daemon.ctx.fetcher.aclose()
        h.daemon.db.close()


async def test_actor_delete_removes_follower(harness: Harness) -> None:
    await harness.signed_post("/inbox", follow(h=harness))
    await harness.process()
    delete = {"id": REMOTE + "#delete", "type": "Delete", "actor": REMOTE, "object": REMOTE}
    assert (await harness.signed_post("/inbox", delete)).status_code == 202
    await harness.process()
    assert harness.store()["followers"] == []


async def test_delete_of_unknown_gone_actor_is_dropped_with_202(harness: Harness) -> None:
    before = harness.store()
    gone = "https://gone.example/users/x"
    r = await harness.client.post(
        "/inbox",
        content=json.dumps(
            {"id": gone + "#delete", "type": "Delete", "actor": gone, "object": gone}
        ),
        headers={
            "Content-Type": "application/activity+json",
            "Signature": f'keyId="{gone}#main-key",headers="date",signature="AAAA"',
            "Date": "Thu, 01 Jan 2026 00:00:00 GMT",
        },
    )
    assert r.status_code == 202
    assert harness.store() == before


# ---- reading ------------------------------------------------------------------------------


async def test_webfinger_answers_only_our_actor(harness: Harness) -> None:
    c = harness.config
    r = await harness.client.get(
        "/.well-known/webfinger", params={"resource": f"acct:{c.username}@{c.host}"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/jrd+json")
    self_link = next(link for link in r.json()["links"] if link["rel"] == "self")
    assert self_link == {"rel": "self", "type": "application/activity+json", "href": c.actor_id}
    assert (
        await harness.client.get("/.well-known/webfinger", params={"resource": c.actor_id})
    ).status_code == 200
    upper = f"acct:{c.username.upper()}@{c.host.upper()}"
    assert (
        await harness.client.get("/.well-known/webfinger", params={"resource": upper})
    ).status_code == 200
    assert (
        await harness.client.get(
            "/.well-known/webfinger", params={"resource": "acct:bob@elsewhere"}
        )
    ).status_code == 404
    assert (await harness.client.get("/.well-known/webfinger")).status_code == 400


@pytest.mark.parametrize(
    "accept",
    [
        "application/activity+json",
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    ],
)
async def test_content_negotiation_returns_json_for_post_and_actor(
    harness: Harness, accept: str
) -> None:
    post = next(p for p in (harness.config.output_dir / "posts").iterdir() if p.is_dir())
    r = await harness.client.get(f"/posts/{post.name}/", headers={"Accept": accept})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/activity+json"
    assert r.json()["id"] == harness.config.post_ap_id(post.name)
    home = await harness.client.get("/", headers={"Accept": accept})
    assert home.json()["id"] == harness.config.actor_id
    html = await harness.client.get(f"/posts/{post.name}/", headers={"Accept": "text/html"})
    assert html.headers["content-type"].startswith("text/html")


async def test_activitypub_files_are_served_as_activity_json(harness: Harness) -> None:
    r = await harness.client.get("/ap/actor.json")
    assert r.headers["content-type"] == "application/activity+json"
    assert r.json()["id"] == harness.config.actor_id


async def test_followers_collection_is_a_live_count(harness: Harness) -> None:
    await harness.signed_post("/inbox", follow(h=harness))
    await harness.process()
    doc = (await harness.client.get("/ap/followers.json")).json()
    assert doc["type"] == "OrderedCollection"
    assert doc["totalItems"] == 1
    page = (await harness.client.get(doc["first"].removeprefix(harness.config.base_url))).json()
    assert page["type"] == "OrderedCollectionPage"
    assert page["partOf"] == harness.config.followers_url
    assert page["orderedItems"] == [REMOTE]
    assert "next" not in page
    bad = await harness.client.get("/ap/followers.json", params={"page": "x"})
    assert bad.status_code == 400


async def test_path_traversal_is_refused(harness: Harness) -> None:
    assert (await harness.client.get("/../site.toml")).status_code == 404
    assert (await harness.client.get("/%2e%2e/site.toml")).status_code == 404


# ---- FEP-8b32 proofs on incoming activities ------------------------------------------------


async def test_relayed_activity_with_the_actors_proof_is_accepted(harness: Harness) -> None:
    """A Like relayed by another server (HTTP-signed by the relay) is authenticated by the
    actor's own integrity proof; without the proof the same request is refused."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from bridge.keys import ed25519_multibase
    from bridge.site import proofs

    ed = ed25519.Ed25519PrivateKey.generate()
    cached = harness.daemon.ctx.actors.cached(REMOTE)
    assert cached is not None
    doc = dict(cached.doc)
    doc["assertionMethod"] = [
        {
            "id": REMOTE + "#ed25519-key",
            "type": "Multikey",
            "controller": REMOTE,
            "publicKeyMultibase": ed25519_multibase(ed.public_key()),
        }
    ]
    harness.daemon.ctx.actors.store(parse_actor(doc))
    like = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": REMOTE + "#likes/1",
        "type": "Like",
        "actor": REMOTE,
        "object": harness.config.post_ap_id("anything"),
    }
    before = harness.store()
    r = await harness.signed_post("/inbox", like, signer=OTHER)
    assert r.status_code == 401  # relayed, no proof: the signer is not the actor
    assert harness.store() == before

    signed = proofs.sign_object(like, ed, REMOTE + "#ed25519-key", dt.datetime.now(dt.UTC))
    r = await harness.signed_post("/inbox", signed, signer=OTHER)
    assert r.status_code == 202
    (row,) = harness.store()["inbox"]
    assert row[0] == like["id"]
    assert (row[7], row[8]) == ("", 0)  # authenticated by the proof, not flagged as forwarded

    tampered = {**signed, "id": REMOTE + "#likes/2", "object": "https://elsewhere.example/x"}
    r = await harness.signed_post("/inbox", tampered, signer=OTHER)
    assert r.status_code == 401  # a proof that does not verify authenticates nothing


async def test_a_locked_database_delays_the_inbox_but_not_the_site(harness: Harness) -> None:
    """A CLI command holding SQLite's write lock: pages keep being served at once, and the
    inbox write waits for the lock instead of failing (both succeed)."""
    import anyio

    con = sqlite3.connect(harness.config.db_path, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    con.execute("INSERT INTO meta(key, value) VALUES ('cli', 'holding the lock')")
    results: dict[str, float] = {}

    async def post() -> None:
        r = await harness.signed_post("/inbox", follow(h=harness))
        assert r.status_code == 202
        results["post"] = anyio.current_time()

    async def page() -> None:
        r = await harness.client.get("/")
        assert r.status_code == 200
        results["page"] = anyio.current_time()

    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(post)
        await anyio.sleep(0.2)
        tg.start_soon(page)
        await anyio.sleep(1.5)
        con.execute("COMMIT")  # the CLI command finishes
        con.close()
    assert results["page"] - start < 1.0  # served while the lock was held
    assert results["post"] - start >= 1.5  # stored once the lock was released
    assert len(harness.store()["inbox"]) == 1
