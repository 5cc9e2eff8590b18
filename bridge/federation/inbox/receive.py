"""The inbox's HTTP side: parse, authenticate, store, answer 202 — nothing else.

``receive()`` is all the request does:

1. refuse bodies over 1 MB (413) and non-JSON content types (415);
2. parse the JSON (400 when it is not an object with a ``type`` and an ``actor``);
3. verify the HTTP signature (401 with a JSON reason when it fails), which must cover
   ``host`` (or RFC 9421 ``@authority``/``@target-uri``) naming ``federation_url``'s host:
   a request signed for another server and replayed here is refused;
4. check that the key's owner is the activity's actor (401 otherwise), except for a
   Create/Update forwarded by a third server, which is stored flagged ``forwarded`` and
   processed only from a fresh copy fetched from the object's own origin;
5. count it against the signer's host and port (``sender_key``; 429 with ``Retry-After``
   past the limit).  Only verified requests count: an ``actor`` field is anyone's to
   write, so counting before the signature would let a stranger spend another server's
   allowance.  A sender already over its limit is answered 429 before its signature is checked;
6. answer 202 without storing anything when no handler acts on its type
   (``PROCESSED_TYPES``); otherwise store it once by activity id (a redelivery is answered
   202 and not stored again) with the verified actor id (``signer``: the id of the actor
   document listing the key, fetched from its own origin; equal to ``actor`` unless the
   activity was forwarded), and answer 202 once the row has committed (inserts arriving
   together share one transaction: ``bridge.federation.inbox.writer``).

The ``InboxProcessor`` (``bridge.federation.inbox.processor``) handles stored activities
later.  Facts relied on (tests in tests/federation/test_daemon_inbox.py): a Delete of an
unknown actor whose key is gone is answered 202 without processing (Mastodon does the same,
so deleted accounts do not cause retry storms).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from bridge.db import now
from bridge.errors import SignatureError
from bridge.federation import followers, quoting
from bridge.federation.actors import first_id
from bridge.federation.context import Context
from bridge.federation.inbox.handlers import PROCESSED_TYPES
from bridge.federation.inbox.writer import InboxWriter, insert_rows
from bridge.federation.signatures import Verified, verify_request
from bridge.site import proofs

log = logging.getLogger("indiebridge.inbox")

MAX_BODY = 1_048_576
MAX_DEPTH = 64
JSON_TYPES = ("application/activity+json", "application/ld+json", "application/json")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping early past ``limit`` (deeply nested JSON is refused)."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def sender_key(url: str) -> str:
    """What a sender is counted under: its host and port (``host`` alone on the default port).

    Lower case, without a trailing dot, so ``Remote.Example.`` and ``remote.example:443``
    share one allowance while ``remote.example:8443`` (another server) has its own.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    host = (parts.hostname or "").rstrip(".")
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return host if port in (None, default) else f"{host}:{port}"


def _peer(request: Request) -> str:
    client = request.client
    return f"{client.host}:{client.port}" if client else "a client"


class RateLimiter:
    """Sliding-window limits per sender (``sender_key``): one noisy server starves no one."""

    PER_MINUTE = 600
    FOLLOWS_PER_MINUTE = 60

    def __init__(
        self, per_minute: int = PER_MINUTE, follows_per_minute: int = FOLLOWS_PER_MINUTE
    ) -> None:
        self.limits = {"all": per_minute, "Follow": follows_per_minute}
        self.seen: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    @classmethod
    def shared_by(cls, workers: int) -> RateLimiter:
        """One HTTP worker's share when ``workers`` processes answer the inbox: the
        limits divided by ``workers`` (rounded up), so the whole daemon still lets one
        sender through at most (about) the documented limit a minute."""
        n = max(1, workers)
        return cls(-(-cls.PER_MINUTE // n), -(-cls.FOLLOWS_PER_MINUTE // n))

    def allow(self, host: str, kind: str, moment: float | None = None) -> bool:
        """Count one request; False (and not counted) when the host is over its limit."""
        if self.exhausted(host, kind, moment):
            return False
        moment = time.monotonic() if moment is None else moment
        self.seen[(host, "Follow" if kind == "Follow" else "all")].append(moment)
        return True

    def exhausted(self, host: str, kind: str, moment: float | None = None) -> bool:
        """Whether ``host`` is over its limit for ``kind`` now (nothing is counted)."""
        moment = time.monotonic() if moment is None else moment
        bucket = "Follow" if kind == "Follow" else "all"
        key = (host, bucket)
        q = self.seen.get(key)
        if q is None:
            return False
        while q and q[0] < moment - 60:
            q.popleft()
        if not q:
            del self.seen[key]  # forgotten hosts take no memory
            return False
        return len(q) >= self.limits[bucket]


def _too_many() -> JSONResponse:
    return JSONResponse(
        {"error": "too many requests from this host"},
        status_code=429,
        headers={"Retry-After": "60"},
    )


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes | None:
    """The body, or None when it is larger than ``limit`` (read no further than that)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return None
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host that ``urlsplit`` can take apart."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def request_url(ctx: Context, request: Request) -> str | None:
    """The URL the sender signed: our public scheme, the Host it sent, path and query.

    None when the Host header is not a host name (it is the sender's to choose, so a
    malformed one is refused rather than allowed to break URL parsing further on).
    """
    scheme = urlsplit(ctx.config.federation_url).scheme or request.url.scheme
    host = request.headers.get("host") or urlsplit(ctx.config.federation_url).netloc
    url = f"{scheme}://{host}{request.url.path}"
    if not _is_http_url(url) or urlsplit(url).netloc != host:
        return None
    if request.url.query:
        url += "?" + request.url.query
    return url


def our_authority(ctx: Context) -> str:
    """The host[:port] requests must be signed for: ``federation_url``'s."""
    return urlsplit(ctx.config.federation_url).netloc


@dataclass(frozen=True)
class Parsed:
    """A received activity that passed the shape checks."""

    body: bytes
    activity: dict[str, Any]
    kind: str
    actor: str


async def _parse(request: Request) -> Parsed | Response:
    """Content type, size, JSON, depth, ``type`` and ``actor``: the activity or a 4xx."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in JSON_TYPES:
        return error(415, "expected Content-Type application/activity+json")
    body = await read_body(request)
    if body is None:
        return error(413, f"activity larger than {MAX_BODY} bytes")
    try:
        activity = json.loads(body)
    except (ValueError, RecursionError):
        return error(400, "body is not valid JSON")
    if not isinstance(activity, dict):
        return error(400, "body is not a JSON object")
    # Nesting never exceeds the number of brackets: most bodies skip the walk.
    deep = body.count(b"{") + body.count(b"[") > MAX_DEPTH
    if deep and _depth(activity, MAX_DEPTH) > MAX_DEPTH:
        return error(400, f"JSON nested deeper than {MAX_DEPTH} levels")
    kind = activity.get("type")
    actor = first_id(activity.get("actor"))
    if not isinstance(kind, str) or not actor or not _is_http_url(actor):
        return error(400, "activity needs a string 'type' and an http(s) 'actor'")
    return Parsed(body, activity, kind, actor)


async def _authenticate(ctx: Context, request: Request, parsed: Parsed) -> Verified | Response:
    """Verify the HTTP signature; a 401/400 (or a 202 for a gone actor's Delete) otherwise."""
    url = request_url(ctx, request)
    if url is None:
        return error(400, "the Host header is not a valid host name")
    try:
        verified = await verify_request(
            request.method,
            url,
            request.headers,
            parsed.body,
            ctx.actors.lookup_key,
            authority=our_authority(ctx),
        )
    except SignatureError as exc:
        object_id = first_id(parsed.activity.get("object"))
        actor = parsed.actor
        if parsed.kind == "Delete" and object_id == actor and ctx.actors.cached(actor) is None:
            return Response(status_code=202)  # a deleted account we never knew: drop
        if exc.status == 429:
            return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": "60"})
        return error(exc.status, str(exc))
    # Only now may what the key fetch found be kept (a failed check leaves nothing stored).
    if ctx.actors.pending.get(verified.key_id) is not None:  # a key fetched just now
        await anyio.to_thread.run_sync(ctx.actors.confirm, verified.key_id)
    return verified


async def receive(
    ctx: Context,
    request: Request,
    limiter: RateLimiter,
    notify: Callable[[], None],
    writer: InboxWriter | None = None,
) -> Response:
    """Answer one POST to the inbox (see the module docstring for the steps); with a
    ``writer``, the row is committed in a batch with the others arriving now."""
    try:
        parsed = await _parse(request)
    except ClientDisconnect:  # the sender went away mid-body: one line, no traceback
        log.info("inbox: %s closed the connection before the body was read", _peer(request))
        return Response(status_code=400)
    if isinstance(parsed, Response):
        return parsed
    activity, kind, actor = parsed.activity, parsed.kind, parsed.actor
    if limiter.exhausted(sender_key(actor), kind):
        return _too_many()  # cheap refusal; only verified requests are counted below
    verified = await _authenticate(ctx, request, parsed)
    if isinstance(verified, Response):
        return verified
    forwarded = False
    if verified.owner != actor and not await _proof_by_actor(ctx, activity, actor):
        if kind in ("Create", "Update") and isinstance(activity.get("object"), (dict, str)):
            forwarded = True  # processed only from a copy fetched from its origin
        else:
            return error(401, f"signed by {verified.owner}, but the actor is {actor}")
    if not limiter.allow(sender_key(verified.owner), kind):
        return _too_many()
    if kind not in PROCESSED_TYPES:
        return Response(status_code=202)  # accepted and ignored: nothing to keep
    if kind in ("Accept", "Reject") and not quoting.names_our_request(ctx, activity):
        return Response(status_code=202)  # not an answer to our QuoteRequest: ignored
    if followers.is_blocked(ctx.db, actor) and kind != "Follow":
        return Response(status_code=202)
    activity_id = activity.get("id")
    if not isinstance(activity_id, str) or not activity_id:
        activity_id = "urn:sha256:" + hashlib.sha256(parsed.body).hexdigest()
    body = parsed.body.decode("utf-8", "replace")
    row = (activity_id, kind, actor, body, now(), forwarded, verified.owner)
    # The write may wait for another process's lock (a CLI command): in a worker thread,
    # so the event loop keeps serving pages and other requests meanwhile.
    if writer is not None:
        new = await writer.store(row)
    else:
        new = (await anyio.to_thread.run_sync(insert_rows, ctx.db, [row]))[0]
    if new:
        notify()
    return Response(status_code=202)


async def _proof_by_actor(ctx: Context, activity: dict[str, Any], actor: str) -> bool:
    """True when the activity carries a FEP-8b32 proof made with one of the actor's keys.

    A valid proof authenticates an activity relayed by another server (its HTTP signature
    is the relay's).  A proof that fails is only logged: the HTTP signature still decides.
    """
    if not isinstance(activity.get("proof"), (dict, list)):
        return False
    try:
        method = await proofs.verify_object_with(activity, ctx.actors.ed25519_key)
    except SignatureError as exc:
        log.info("integrity proof of %s does not verify: %s", activity.get("id"), exc)
        return False
    return method.split("#", 1)[0] == actor
