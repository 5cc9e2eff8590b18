"""Remote actors and their public keys: fetched with signed GETs, cached in SQLite.

This is the ``KeyLookup`` the signature verifier uses.  Facts relied on:

* Servers in secure mode (Mastodon AUTHORIZED_FETCH, GoToSocial always) answer unsigned
  GETs with 401, so every fetch is signed with our actor key.
* A ``keyId`` with a ``#fragment`` names the actor document itself; a keyId without one
  may be a separate key document (GoToSocial's ``/main-key`` stub) whose ``owner`` names
  the actor, which must list the same key back.
* An actor's ``publicKey`` may be one object or a list; ``assertionMethod`` holds
  FEP-521a Multikeys (Ed25519) used for object integrity proofs.
* Only ``application/activity+json`` or ``application/ld+json`` answers are documents.
* Identity through redirects: the document's ``id`` must be on the origin of the URL it was
  finally served from (after redirects), so an open redirect on one server cannot make a
  document from another speak for it (tests in tests/security/test_inbox_unverified.py).
* Storage before verification: a key fetched to check a signature is kept in memory
  (``PendingKeys``, bounded and expiring) and written to the ``actors``/``keys`` tables only
  by ``confirm`` once a signature made with it verified.  Key fetches are rate-limited per
  origin (``FetchBudget``).  What is stored is ``slim_actor(doc)``: only the fields used,
  each string capped, at most ``MAX_STORED_ACTOR`` bytes in all.
* Cached actors and keys (RSA and the Ed25519 keys used for proofs) expire after
  ``ACTOR_TTL``; an expired key is fetched again before it is trusted.
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
from bridge.federation.key_fetch import FetchBudget, ParsedKeys, PendingKeys
from bridge.federation.signatures import PublicKeyInfo

AP_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
ACTOR_TTL = 24 * 3600
MAX_STORED_ACTOR = 32_768
"""Bytes of JSON an actor row may hold after ``slim_actor``; a larger one is not kept."""
MAX_FIELD_CHARS = 2048
MAX_PEM_CHARS = 4096
MAX_KEYS = 4
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


def _capped(value: Any, limit: int = MAX_FIELD_CHARS) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def slim_actor(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of an actor document we use, each string capped (what the cache keeps).

    ``parse_actor(slim_actor(doc))`` reads the same actor as ``parse_actor(doc)``.  Raises
    ``FetchError`` when even that is over ``MAX_STORED_ACTOR`` bytes.
    """
    actor = parse_actor(doc)
    slim: dict[str, Any] = {
        "id": actor.id,
        "type": _capped(doc.get("type")) or "",
        "inbox": actor.inbox,
        "preferredUsername": _capped(doc.get("preferredUsername")) or "",
        "name": _capped(doc.get("name")) or "",
        "url": actor.url,
        "icon": actor.icon,
    }
    if actor.shared_inbox:
        slim["endpoints"] = {"sharedInbox": actor.shared_inbox}
    keys = [
        {"id": kid, "owner": actor.id, "publicKeyPem": pem[:MAX_PEM_CHARS]}
        for kid, pem in _keys_of(doc)[:MAX_KEYS]
    ]
    if keys:
        slim["publicKey"] = keys
    methods = [
        {"id": m["id"], "type": "Multikey", "publicKeyMultibase": m["publicKeyMultibase"][:200]}
        for m in as_list(doc.get("assertionMethod"))
        if isinstance(m, dict)
        and isinstance(m.get("id"), str)
        and isinstance(m.get("publicKeyMultibase"), str)
        and same_origin(m["id"], actor.id)
    ][:MAX_KEYS]
    if methods:
        slim["assertionMethod"] = methods
    size = len(json.dumps(slim))
    if size > MAX_STORED_ACTOR:
        raise FetchError(
            f"{actor.id}: actor document is {size} bytes even trimmed "
            f"(at most {MAX_STORED_ACTOR} are kept)"
        )
    return slim


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

    def __init__(
        self,
        db: Database,
        fetcher: SafeFetcher,
        auth: httpx.Auth | None,
        *,
        budget: FetchBudget | None = None,
        pending: PendingKeys | None = None,
    ) -> None:
        self.db = db
        self.fetcher = fetcher
        self.auth = auth
        self.budget = budget or FetchBudget()
        self.pending = pending or PendingKeys()
        self.parsed = ParsedKeys()

    async def fetch_document(self, url: str) -> dict[str, Any]:
        """Signed GET of an ActivityStreams document, on the origin it was served from."""
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
        if not same_origin(doc_id, page.url):
            where = f"{url} (redirected to {page.url})" if page.url != url else url
            raise FetchError(f"{where}: document id {doc_id} is on another origin")
        return doc

    async def get(self, actor_id: str, *, refresh: bool = False) -> RemoteActor:
        """The actor, from the cache while fresh, else fetched (and cached)."""
        if not refresh:
            fresh = self._fresh(actor_id)
            if fresh is not None:
                return fresh
        doc = await self.fetch_document(actor_id)
        actor = parse_actor(doc)
        if actor.id.split("#")[0] != actor_id.split("#")[0]:
            raise FetchError(f"{actor_id}: actor document has id {actor.id}")
        self.store(actor)
        return actor

    def _fresh(self, actor_id: str) -> RemoteActor | None:
        row = self.db.one("SELECT doc, fetched FROM actors WHERE id = ?", (actor_id,))
        if row and now() - row["fetched"] < ACTOR_TTL:
            return parse_actor(json.loads(row["doc"]))
        return None

    def cached(self, actor_id: str) -> RemoteActor | None:
        row = self.db.one("SELECT doc FROM actors WHERE id = ?", (actor_id,))
        return parse_actor(json.loads(row["doc"])) if row else None

    def store(self, actor: RemoteActor) -> None:
        """Cache the actor (``slim_actor`` of its document) and the keys it lists."""
        slim = slim_actor(actor.doc)
        moment = now()
        with self.db.tx() as con:
            con.execute(
                "INSERT INTO actors(id, doc, fetched) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET doc = excluded.doc, fetched = excluded.fetched",
                (actor.id, json.dumps(slim), moment),
            )
            for key_id, pem in _keys_of(slim):
                con.execute(
                    "INSERT INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key_id) DO UPDATE SET owner = excluded.owner, "
                    "pem = excluded.pem, fetched = excluded.fetched",
                    (key_id, actor.id, pem, moment),
                )

    def confirm(self, key_id: str) -> None:
        """A signature made with ``key_id`` verified: keep what its fetch found."""
        doc = self.pending.pop(key_id)
        if doc is not None:
            self.store(parse_actor(doc))

    async def lookup_key(self, key_id: str, refresh: bool) -> PublicKeyInfo:
        """``KeyLookup`` for ``signatures.verify_request``; stores nothing (see ``confirm``)."""
        if not key_id.startswith(("http://", "https://")):
            raise SignatureError(f"keyId {key_id!r} is not an http(s) URL")
        # A refresh (the cached key did not verify) is allowed once a minute per key, so
        # bogus signatures naming a cached key cannot turn into a fetch each.
        if not refresh or not self.budget.may_refresh(key_id):
            row = self.db.one("SELECT owner, pem, fetched FROM keys WHERE key_id = ?", (key_id,))
            if row and now() - row["fetched"] < ACTOR_TTL:
                key = self.parsed.load(key_id, row["pem"], _load_public_key)
                return PublicKeyInfo(key_id, row["owner"], key)
            doc = self.pending.get(key_id)
            if doc is not None:
                return _key_in(doc, key_id)
        owner_doc = await self._fetch_key_owner(key_id)
        self.budget.fetched(key_id)
        slim = slim_actor(owner_doc)
        info = _key_in(slim, key_id)
        self.pending.put(key_id, slim)
        return info

    async def _fetch_key_owner(self, key_id: str) -> dict[str, Any]:
        """The actor document listing ``key_id`` (through a separate key document if need be)."""
        self.budget.charge(key_id)
        try:
            doc = await self.fetch_document(key_id.split("#", 1)[0])
        except FetchError as exc:
            raise SignatureError(f"cannot fetch key {key_id}: {exc}") from None
        if "inbox" in doc:
            return doc
        # A separate key document (GoToSocial): its owner must list the key back.
        owner = doc.get("owner") or first_id(doc.get("publicKey", {}))
        if isinstance(doc.get("publicKey"), dict):
            owner = doc["publicKey"].get("owner", owner)
        if not isinstance(owner, str):
            raise SignatureError(f"key {key_id}: no owner")
        self.budget.charge(owner)
        try:
            return await self.fetch_document(owner)
        except FetchError as exc:
            raise SignatureError(f"cannot fetch owner of key {key_id}: {exc}") from None

    async def ed25519_key(self, method_id: str) -> ed25519.Ed25519PublicKey:
        """Resolve a FEP-521a verification method (``assertionMethod`` Multikey).

        Used for proofs on relayed activities, before anything about them is verified: a
        fresh cached actor, else a fetch kept only in memory (``pending``), charged to
        the origin like a key fetch.
        """
        actor_id = method_id.split("#", 1)[0]
        actor = self._fresh(actor_id)
        doc = actor.doc if actor is not None else self.pending.get(actor_id)
        if doc is None:
            self.budget.charge(actor_id)
            doc = slim_actor(await self.fetch_document(actor_id))
            if str(doc["id"]).split("#", 1)[0] != actor_id:
                raise SignatureError(f"{actor_id}: actor document has id {doc['id']}")
            self.pending.put(actor_id, doc)
        for method in as_list(doc.get("assertionMethod")):
            if isinstance(method, dict) and method.get("id") == method_id:
                value = method.get("publicKeyMultibase")
                if isinstance(value, str):
                    try:
                        return keymod.ed25519_from_multibase(value)
                    except ValueError as exc:
                        raise SignatureError(f"{method_id}: {exc}") from None
        raise SignatureError(f"{actor_id} lists no assertionMethod {method_id}")


def _key_in(doc: dict[str, Any], key_id: str) -> PublicKeyInfo:
    """The key ``key_id`` as the actor document ``doc`` lists it."""
    actor_id = str(doc.get("id"))
    for kid, pem in _keys_of(doc):
        if kid == key_id:
            try:
                return PublicKeyInfo(key_id, actor_id, _load_public_key(pem))
            except SignatureError as exc:
                raise SignatureError(f"key {key_id}: {exc}") from None
    raise SignatureError(f"actor {actor_id} does not list key {key_id}")


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
