"""Remote actors and their public keys: fetched with signed GETs, cached in SQLite.

This is the ``KeyLookup`` the signature verifier uses.  Facts relied on:

* Servers in secure mode (Mastodon AUTHORIZED_FETCH, GoToSocial always) answer unsigned
  GETs with 401, so every fetch is signed with our actor key.
* A ``keyId`` with a ``#fragment`` names the actor document itself; a keyId without one
  may be a separate key document (GoToSocial's ``/main-key`` stub) whose ``owner`` names
  the actor, which must list the same key back.
* An actor's ``publicKey`` may be one object or a list; ``assertionMethod`` holds
  FEP-521a Multikeys (Ed25519) used for object integrity proofs.
* Only ``application/activity+json`` or ``application/ld+json`` answers are documents;
  ``id`` must equal the URL fetched (after redirects) so one host cannot speak for another.
* An actor's keys are cached only when their id is on the actor's own origin: a document
  listing another server's key id must not replace that server's cached key.
* Whatever a remote server sends (JSON nested past the parser's recursion limit, a PEM
  that does not load) is a ``FetchError``/``SignatureError``, never another exception:
  the inbox answers 401 and the processor retries or fails one row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bridge import keys as keymod
from bridge.db import Database, now
from bridge.errors import FetchError, SignatureError
from bridge.federation.fetch import SafeFetcher
from bridge.federation.signatures import PublicKeyInfo

AP_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
ACTOR_TTL = 24 * 3600
AP_TYPES = ("application/activity+json", "application/ld+json")


def first_id(value: Any) -> str | None:
    """The id of a reference that may be a string, an object or a list of either."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        v = value.get("id")
        return v if isinstance(v, str) else None
    if isinstance(value, list) and value:
        return first_id(value[0])
    return None


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def same_origin(a: str, b: str) -> bool:
    """Same scheme, host and port; False when either URL cannot be parsed."""
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme, pa.hostname, pa.port) == (pb.scheme, pb.hostname, pb.port)
    except ValueError:  # e.g. an out-of-range port or a broken IPv6 literal
        return False


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass(frozen=True)
class RemoteActor:
    id: str
    inbox: str
    shared_inbox: str | None
    name: str
    handle: str
    url: str
    icon: str
    doc: dict[str, Any]


def parse_actor(doc: dict[str, Any]) -> RemoteActor:
    """Read the fields we use from an actor document of any server (shapes vary)."""
    actor_id = doc.get("id")
    inbox = doc.get("inbox")
    if not isinstance(actor_id, str) or not isinstance(inbox, str):
        raise FetchError(f"{actor_id!r}: actor document lacks id or inbox")
    endpoints = doc.get("endpoints")
    shared = endpoints.get("sharedInbox") if isinstance(endpoints, dict) else None
    if not isinstance(shared, str):
        shared = doc.get("sharedInbox") if isinstance(doc.get("sharedInbox"), str) else None
    username = doc.get("preferredUsername")
    host = urlsplit(actor_id).netloc
    handle = f"@{username}@{host}" if isinstance(username, str) and username else ""
    name = doc.get("name")
    icon_obj = as_list(doc.get("icon"))
    icon = ""
    if icon_obj:
        first = icon_obj[0]
        icon_url = first.get("url") if isinstance(first, dict) else first
        icon = first_id(icon_url) or "" if not isinstance(icon_url, str) else icon_url
    url = doc.get("url")
    url_s = first_id(url) if not isinstance(url, str) else url
    if isinstance(url, dict) and isinstance(url.get("href"), str):
        url_s = url["href"]
    return RemoteActor(
        id=actor_id,
        inbox=inbox,
        shared_inbox=shared,
        name=name if isinstance(name, str) and name.strip() else (username or actor_id),
        handle=handle,
        url=url_s or actor_id,
        icon=icon if icon.startswith(("https://", "http://")) else "",
        doc=doc,
    )


def _load_public_key(pem: str) -> rsa.RSAPublicKey | ed25519.Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.strip().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"unreadable public key PEM ({exc})") from None
    if not isinstance(key, (rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
        raise SignatureError("unsupported public key type")
    return key


class Actors:
    """Fetch and cache remote actors and keys for one site."""

    def __init__(self, db: Database, fetcher: SafeFetcher, auth: httpx.Auth | None) -> None:
        self.db = db
        self.fetcher = fetcher
        self.auth = auth

    async def fetch_document(self, url: str) -> dict[str, Any]:
        """Signed GET of an ActivityStreams document; the id must match the final URL."""
        page = await self.fetcher.get(url, accept=AP_ACCEPT, auth=self.auth)
        if page.status == 410:
            raise FetchError(f"{url}: gone (410)", status=410)
        if not 200 <= page.status < 300:
            raise FetchError(f"{url}: HTTP {page.status}", status=page.status)
        if page.content_type not in AP_TYPES:
            raise FetchError(
                f"{url}: served as {page.content_type or 'no type'}, "
                "expected application/activity+json"
            )
        try:
            doc = json.loads(page.body)
        except (ValueError, RecursionError):
            raise FetchError(f"{url}: not valid JSON (or nested too deeply)") from None
        if not isinstance(doc, dict):
            raise FetchError(f"{url}: not a JSON object")
        doc_id = doc.get("id")
        if not isinstance(doc_id, str):
            raise FetchError(f"{url}: document has no id")
        base = url.split("#", 1)[0]
        if doc_id.split("#", 1)[0] not in (base, page.url) and not same_origin(doc_id, page.url):
            raise FetchError(f"{url}: document id {doc_id} is on another origin")
        return doc

    async def get(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        if not refresh:
            row = self.db.one("SELECT doc, fetched FROM actors WHERE id = ?", (actor_id,))
            if row and now() - row["fetched"] < ACTOR_TTL:
                return parse_actor(json.loads(row["doc"]))
        doc = await self.fetch_document(actor_id)
        actor = parse_actor(doc)
        if actor.id.split("#")[0] != actor_id.split("#")[0]:
            raise FetchError(f"{actor_id}: actor document has id {actor.id}")
        self.store(actor)
        return actor

    def cached(self, actor_id: str) -> RemoteActor | None:
        row = self.db.one("SELECT doc FROM actors WHERE id = ?", (actor_id,))
        return parse_actor(json.loads(row["doc"])) if row else None

    def store(self, actor: RemoteActor) -> None:
        with self.db.tx() as con:
            con.execute(
                "INSERT INTO actors(id, doc, fetched) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, fetched = excluded.fetched",
                (actor.id, json.dumps(actor.doc), now()),
            )
            for key_id, pem in _keys_of(actor.doc):
                con.execute(
                    "INSERT INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key_id) DO UPDATE SET owner = excluded.owner, "
                    "pem = excluded.pem, fetched = excluded.fetched",
                    (key_id, actor.id, pem, now()),
                )

    async def lookup_key(self, key_id: str, refresh: bool) -> PublicKeyInfo:
        """``KeyLookup`` for ``signatures.verify_request``."""
        if not key_id.startswith(("http://", "https://")):
            raise SignatureError(f"keyId {key_id!r} is not an http(s) URL")
        if not refresh:
            row = self.db.one("SELECT owner, pem FROM keys WHERE key_id = ?", (key_id,))
            if row:
                return PublicKeyInfo(key_id, row["owner"], _load_public_key(row["pem"]))
        try:
            doc = await self.fetch_document(key_id.split("#", 1)[0])
        except FetchError as exc:
            raise SignatureError(f"cannot fetch key {key_id}: {exc}") from None
        owner_doc = doc
        if "inbox" not in doc:
            # A separate key document (GoToSocial): its owner must list the key back.
            owner = doc.get("owner") or first_id(doc.get("publicKey", {}))
            if isinstance(doc.get("publicKey"), dict):
                owner = doc["publicKey"].get("owner", owner)
            if not isinstance(owner, str):
                raise SignatureError(f"key {key_id}: no owner")
            try:
                owner_doc = await self.fetch_document(owner)
            except FetchError as exc:
                raise SignatureError(f"cannot fetch owner of key {key_id}: {exc}") from None
        actor = parse_actor(owner_doc)
        self.store(actor)
        for kid, pem in _keys_of(owner_doc):
            if kid == key_id:
                try:
                    return PublicKeyInfo(key_id, actor.id, _load_public_key(pem))
                except SignatureError as exc:
                    raise SignatureError(f"key {key_id}: {exc}") from None
        raise SignatureError(f"actor {actor.id} does not list key {key_id}")

    async def ed25519_key(self, method_id: str) -> ed25519.Ed25519PublicKey:
        """Resolve a FEP-521a verification method (``assertionMethod`` Multikey)."""
        actor_id = method_id.split("#", 1)[0]
        actor = self.cached(actor_id) or await self.get(actor_id)
        for method in as_list(actor.doc.get("assertionMethod")):
            if isinstance(method, dict) and method.get("id") == method_id:
                value = method.get("publicKeyMultibase")
                if isinstance(value, str):
                    try:
                        return keymod.ed25519_from_multibase(value)
                    except ValueError as exc:
                        raise SignatureError(f"{method_id}: {exc}") from None
        raise SignatureError(f"{actor_id} lists no assertionMethod {method_id}")


def _keys_of(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(key id, PEM) of the keys an actor document lists on its own origin."""
    actor_id = doc.get("id")
    out = []
    for key in as_list(doc.get("publicKey")):
        if isinstance(key, dict):
            kid, pem = key.get("id"), key.get("publicKeyPem")
            if (
                isinstance(kid, str)
                and isinstance(pem, str)
                and isinstance(actor_id, str)
                and same_origin(kid, actor_id)
            ):
                out.append((kid, pem))
    return out
