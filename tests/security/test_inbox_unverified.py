"""What an unverified request can make the daemon fetch and keep, and identity through redirects.

Rules (SECURITY.md, "The inbox against a determined stranger"):

* a failed verification leaves no lasting trace: what a key fetch found stays in a bounded,
  expiring memory (``PendingKeys``: 256 entries, 10 minutes) until a signature verifies;
* stored actor documents keep only the fields used, 32 KiB at most;
* key fetches are limited to 30 a minute per origin, those triggered by unverified requests
  included, and a key is refreshed at most once a minute;
* cached keys (RSA and Ed25519) expire after 24 hours;
* a document fetched through redirects must have its ``id`` on the final URL's origin.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bridge import keys as keymod
from bridge.errors import FetchError, SignatureError
from bridge.federation.actors import MAX_STORED_ACTOR, parse_actor, slim_actor
from bridge.federation.key_fetch import KEY_FETCHES_PER_MINUTE, FetchBudget, PendingKeys
from bridge.site import proofs
from tests.security.conftest import ALICE, InboxHarness, actor_doc

pytestmark = [pytest.mark.anyio]

unverified = pytest.mark.category("unverified")
redirect_id = pytest.mark.category("redirect-id")

EVE = "https://evil.example/users/eve"


def follow(h: InboxHarness, actor: str, n: int = 1) -> dict[str, Any]:
    return {"id": f"{actor}#follows/{n}", "type": "Follow", "actor": actor, "object": h.actor_id}


def big_actor(actor: str, key: rsa.RSAPrivateKey | None, size: int = 900_000) -> dict[str, Any]:
    """An actor document padded to about ``size`` bytes with fields nobody reads."""
    filler = os.urandom(size // 2).hex()
    return actor_doc(
        actor, key, summary=filler[: size // 2], attachment=[{"x": filler[: size // 2]}]
    )


def state_rows(h: InboxHarness) -> tuple[int, int]:
    actors = h.db.one("SELECT count(*) AS n FROM actors")
    keys = h.db.one("SELECT count(*) AS n FROM keys")
    assert actors is not None and keys is not None
    return int(actors["n"]), int(keys["n"])


@unverified
async def test_bogus_signatures_with_big_key_documents_leave_nothing_stored(
    inbox: InboxHarness,
) -> None:
    """The attack from the review: keyIds pointing at 900 KB documents, bogus signatures."""
    inbox.unlimited()
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.keys[EVE] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rows_before = state_rows(inbox)
    size_before = inbox.config.db_path.stat().st_size
    statuses = []
    for n in range(40):
        actor = f"{EVE}{n}"
        inbox.remote.serve(actor, big_actor(actor, stranger))  # lists another key than signs
        inbox.keys[actor] = inbox.keys[EVE]
        r = await inbox.post(follow(inbox, actor, n), signer=actor)
        statuses.append(r.status_code)
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= KEY_FETCHES_PER_MINUTE
    assert state_rows(inbox) == rows_before  # no actor, no key kept
    fetched = [u for u in inbox.remote.requests if u.startswith("https://evil.example/")]
    assert len(fetched) <= KEY_FETCHES_PER_MINUTE
    assert len(inbox.ctx.actors.pending) <= inbox.ctx.actors.pending.max_entries
    assert inbox.config.db_path.stat().st_size - size_before < 64 * 1024
    assert await inbox.process() == 0


@unverified
async def test_a_verified_sender_with_a_big_document_is_kept_slim(inbox: InboxHarness) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.keys[EVE] = key
    inbox.remote.serve(EVE, big_actor(EVE, key))
    r = await inbox.post(follow(inbox, EVE), signer=EVE)
    assert r.status_code == 202, r.text
    row = inbox.db.one("SELECT doc FROM actors WHERE id = ?", (EVE,))
    assert row is not None
    assert len(row["doc"]) <= MAX_STORED_ACTOR
    kept = json.loads(row["doc"])
    assert "summary" not in kept and "attachment" not in kept
    assert kept["publicKey"][0]["id"] == EVE + "#main-key"


@unverified
def test_slim_actor_reads_the_same_actor_and_refuses_what_cannot_be_trimmed() -> None:
    doc = actor_doc(ALICE, None, icon={"type": "Image", "url": "https://remote.example/a.png"})
    assert dataclasses.replace(parse_actor(slim_actor(doc)), doc={}) == dataclasses.replace(
        parse_actor(doc), doc={}
    )
    huge_keys = [
        {"id": f"{ALICE}#k{i}", "owner": ALICE, "publicKeyPem": "x" * 5000} for i in range(10)
    ]
    assert len(slim_actor({**doc, "publicKey": huge_keys})["publicKey"]) == 4
    with pytest.raises(FetchError, match="bytes even trimmed"):
        slim_actor(
            {
                **doc,
                "publicKey": huge_keys,
                "name": "n" * 9000,
                "preferredUsername": "u" * 9000,
                "url": "https://remote.example/" + "p" * 30_000,
            }
        )


@unverified
async def test_key_fetches_per_origin_are_limited_and_answered_429(inbox: InboxHarness) -> None:
    inbox.unlimited()
    inbox.ctx.actors.budget = FetchBudget(per_minute=3)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answers = []
    for n in range(6):
        actor = f"{EVE}{n}"  # nothing served: each lookup is a fetch that fails
        inbox.keys[actor] = key
        r = await inbox.post(follow(inbox, actor, n), signer=actor)
        answers.append((r.status_code, r.headers.get("retry-after")))
    assert answers[:3] == [(401, None)] * 3
    assert answers[3:] == [(429, "60")] * 3
    assert len([u for u in inbox.remote.requests if "evil.example" in u]) == 3


@unverified
async def test_bogus_signatures_naming_a_cached_key_refresh_it_once_a_minute(
    inbox: InboxHarness,
) -> None:
    inbox.unlimited()
    mallory_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.keys["forger"] = mallory_key
    for n in range(10):  # alice's key id, someone else's private key
        r = await inbox.post(follow(inbox, ALICE, n), signer="forger", key_id=ALICE + "#main-key")
        assert r.status_code == 401
    assert inbox.remote.requests.count(ALICE) == 1


@unverified
async def test_an_expired_cached_key_is_fetched_again_before_it_is_trusted(
    inbox: InboxHarness,
) -> None:
    """Alice rotated her key a day ago; the old one (cached) no longer speaks for her."""
    old_key = inbox.keys[ALICE]
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.remote.serve(ALICE, actor_doc(ALICE, new_key))
    with inbox.db.tx() as con:
        con.execute("UPDATE keys SET fetched = fetched - 25 * 3600")
        con.execute("UPDATE actors SET fetched = fetched - 25 * 3600")
    inbox.ctx.actors.budget = FetchBudget(refresh_interval=3600)  # no second chance
    inbox.keys["old"] = old_key
    r = await inbox.post(follow(inbox, ALICE), signer="old", key_id=ALICE + "#main-key")
    assert r.status_code == 401
    assert ALICE in inbox.remote.requests


@unverified
async def test_an_expired_ed25519_key_is_fetched_again(inbox: InboxHarness) -> None:
    old = Ed25519PrivateKey.generate()
    new = Ed25519PrivateKey.generate()
    method = ALICE + "#ed25519-key"

    def with_method(key: Ed25519PrivateKey) -> dict[str, Any]:
        return actor_doc(
            ALICE,
            inbox.keys[ALICE],
            assertionMethod=[
                {
                    "id": method,
                    "type": "Multikey",
                    "controller": ALICE,
                    "publicKeyMultibase": keymod.ed25519_multibase(key.public_key()),
                }
            ],
        )

    inbox.ctx.actors.store(parse_actor(with_method(old)))
    inbox.remote.serve(ALICE, with_method(new))
    note = {"id": ALICE + "/notes/9", "type": "Note", "attributedTo": ALICE, "content": "hi"}
    signed_old = proofs.sign_object(note, old, method, dt.datetime.now(dt.UTC))
    assert await proofs.verify_object_with(signed_old, inbox.ctx.actors.ed25519_key) == method
    with inbox.db.tx() as con:
        con.execute("UPDATE actors SET fetched = fetched - 25 * 3600")
    with pytest.raises(SignatureError):
        await proofs.verify_object_with(signed_old, inbox.ctx.actors.ed25519_key)
    signed_new = proofs.sign_object(note, new, method, dt.datetime.now(dt.UTC))
    assert await proofs.verify_object_with(signed_new, inbox.ctx.actors.ed25519_key) == method


@unverified
def test_pending_keys_are_bounded_and_expire() -> None:
    moment = [0.0]
    pending = PendingKeys(max_entries=3, ttl=10, clock=lambda: moment[0])
    for n in range(10):
        pending.put(f"k{n}", {"id": str(n)})
    assert len(pending) == 3
    assert pending.get("k0") is None and pending.get("k9") == {"id": "9"}
    moment[0] = 11
    assert pending.get("k9") is None


# ---- identity through redirects -------------------------------------------------------------


@redirect_id
async def test_a_key_behind_an_open_redirect_to_another_origin_is_refused(
    inbox: InboxHarness,
) -> None:
    """The victim's keyId URL redirects to the attacker, whose document claims the victim's id."""
    inbox.unlimited()
    victim = "https://victim.example/users/bob"
    attacker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inbox.keys[victim] = attacker_key
    inbox.remote.redirect(victim, "https://evil.example/bob")
    inbox.remote.serve("https://evil.example/bob", actor_doc(victim, attacker_key))
    before = inbox.store()
    r = await inbox.post(follow(inbox, victim), signer=victim)
    assert r.status_code == 401
    assert "another origin" in r.json()["error"]
    assert inbox.store() == before


@redirect_id
@pytest.mark.parametrize("claimed", ["original", "final"])
async def test_an_object_behind_a_cross_origin_redirect_is_refused(
    inbox: InboxHarness, claimed: str
) -> None:
    inbox.remote.redirect(ALICE + "/notes/1", "https://evil.example/n/1")
    doc_id = ALICE + "/notes/1" if claimed == "original" else "https://remote.example/n/9"
    inbox.remote.serve("https://evil.example/n/1", {"id": doc_id, "type": "Note"})
    with pytest.raises(FetchError, match="another origin"):
        await inbox.ctx.actors.fetch_document(ALICE + "/notes/1")


@redirect_id
@pytest.mark.parametrize("claimed", ["original", "final"])
async def test_a_same_origin_redirect_is_followed(inbox: InboxHarness, claimed: str) -> None:
    inbox.remote.redirect(ALICE + "/notes/1", ALICE + "/statuses/1")
    doc_id = ALICE + "/notes/1" if claimed == "original" else ALICE + "/statuses/1"
    inbox.remote.serve(ALICE + "/statuses/1", {"id": doc_id, "type": "Note"})
    assert (await inbox.ctx.actors.fetch_document(ALICE + "/notes/1"))["id"] == doc_id


@redirect_id
async def test_the_verified_actor_id_is_what_the_signature_proves(inbox: InboxHarness) -> None:
    """``Verified.owner`` (and so the stored activity's actor) is the key's actor document id."""
    r = await inbox.post(follow(inbox, ALICE))
    assert r.status_code == 202
    (row,) = inbox.inbox_rows()
    assert (row["actor"], row["signer"]) == (ALICE, ALICE)
