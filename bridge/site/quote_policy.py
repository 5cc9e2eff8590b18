"""Quote posts (FEP-044f, as Mastodon 4.5 does them): the policy our posts advertise and
the documents of the approval handshake.  Pure converters, no I/O; the inbox side is
``bridge.conversations.quotes``.

Facts relied on (tests/conversations/test_quotes.py checks each against JSON shaped like
the FEP's and Mastodon's examples):

* A quotable object advertises ``interactionPolicy.canQuote.automaticApproval``: the
  Public collection (anyone), the author's followers collection, or, to allow nobody,
  the author's own id (an empty list would vanish under JSON-LD compaction).  The terms
  are GoToSocial's (``https://gotosocial.org/ns#``); the policy is advisory only.
* A quoting server sends ``QuoteRequest {object: <quoted>, instrument: <quote post>}``.
  The quoted author answers ``Accept {object: <the QuoteRequest>, result: <stamp id>}``
  or ``Reject {object: <the QuoteRequest>}``.
* The stamp is a ``QuoteAuthorization`` with ``attributedTo`` (us), ``interactingObject``
  (the quote post, never embedded) and ``interactionTarget`` (our post); it must
  dereference for as long as the quote is approved.  ``Delete`` of the stamp revokes it.
  Mastodon requires the stamp's host to be the quoted author's host.

Sources: FEP-044f (codeberg.org/fediverse/fep, fep/044f/fep-044f.md); Mastodon's
documentation ``spec/activitypub.md`` (quote posts, 4.5).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from bridge.config import SiteConfig

AS = "https://www.w3.org/ns/activitystreams"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
FEP_044F = "https://w3id.org/fep/044f#"
POLICIES = ("public", "followers", "nobody")

# JSON-LD terms, merged into the extension context of our objects and activities.
TERMS: dict[str, Any] = {
    "gts": "https://gotosocial.org/ns#",
    "interactionPolicy": {"@id": "gts:interactionPolicy", "@type": "@id"},
    "canQuote": {"@id": "gts:canQuote", "@type": "@id"},
    "automaticApproval": {"@id": "gts:automaticApproval", "@type": "@id"},
    "manualApproval": {"@id": "gts:manualApproval", "@type": "@id"},
    "interactingObject": {"@id": "gts:interactingObject", "@type": "@id"},
    "interactionTarget": {"@id": "gts:interactionTarget", "@type": "@id"},
    "QuoteRequest": FEP_044F + "QuoteRequest",
    "QuoteAuthorization": FEP_044F + "QuoteAuthorization",
    "quote": {"@id": FEP_044F + "quote", "@type": "@id"},
    "quoteAuthorization": {"@id": FEP_044F + "quoteAuthorization", "@type": "@id"},
}
# The data-integrity context defines ``proof``: without it JSON-LD processors (Fedify)
# drop the FEP-8b32 proof our documents carry.
CONTEXT: list[Any] = [AS, "https://w3id.org/security/data-integrity/v1", TERMS]


def interaction_policy(config: SiteConfig) -> dict[str, Any]:
    """``interactionPolicy`` of our posts under the ``quote_policy`` setting."""
    approval = {
        "public": PUBLIC,
        "followers": config.followers_url,
        "nobody": config.actor_id,
    }[config.quote_policy]
    return {"canQuote": {"automaticApproval": [approval]}}


def allows(config: SiteConfig, *, is_follower: bool) -> bool:
    """Whether a QuoteRequest from an actor is approved under ``quote_policy``."""
    if config.quote_policy == "public":
        return True
    return config.quote_policy == "followers" and is_follower


def stamp_token(quote_post: str, quoted: str) -> str:
    """Stable name of the stamp for one (quote post, quoted post) pair."""
    return hashlib.sha256(f"{quote_post}\0{quoted}".encode()).hexdigest()[:24]


def stamp_url(config: SiteConfig, token: str) -> str:
    """Where a stamp is served: under ``base_url`` (Mastodon wants the quoted author's host)."""
    return f"{config.base_url}/ap/quotes/{token}.json"


def stamp(config: SiteConfig, token: str, quote_post: str, quoted: str) -> dict[str, Any]:
    """The ``QuoteAuthorization`` approving ``quote_post`` as a quote of ``quoted``."""
    return {
        "@context": CONTEXT,
        "id": stamp_url(config, token),
        "type": "QuoteAuthorization",
        "attributedTo": config.actor_id,
        "interactingObject": quote_post,
        "interactionTarget": quoted,
    }


def request_reference(request: dict[str, Any]) -> dict[str, Any]:
    """The QuoteRequest as an answer embeds it: its id, actor, object and instrument id."""
    instrument = request.get("instrument")
    if isinstance(instrument, dict):
        instrument = instrument.get("id")
    return {
        "type": "QuoteRequest",
        "id": request["id"],
        "actor": request["actor"],
        "object": request["object"],
        "instrument": instrument,
    }


def answer(
    config: SiteConfig, request: dict[str, Any], kind: str, stamp_id: str | None = None
) -> dict[str, Any]:
    """``Accept`` (with the stamp as ``result``) or ``Reject`` of a QuoteRequest."""
    if kind not in ("Accept", "Reject") or (kind == "Accept") != (stamp_id is not None):
        raise ValueError("an Accept carries a stamp and a Reject does not")
    digest = hashlib.sha256(str(request["id"]).encode()).hexdigest()[:16]
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "id": f"{config.actor_id}#quote-{kind.lower()}s/{digest}",
        "type": kind,
        "actor": config.actor_id,
        "to": [request["actor"]],
        "object": request_reference(request),
    }
    if stamp_id is not None:
        doc["result"] = stamp_id
    return doc


def revoke(config: SiteConfig, stamp_id: str, quoter: str, moment: dt.datetime) -> dict[str, Any]:
    """``Delete`` of a stamp: the quote is no longer approved."""
    return {
        "@context": CONTEXT,
        "id": f"{stamp_id}#delete/{int(moment.timestamp())}",
        "type": "Delete",
        "actor": config.actor_id,
        "to": [quoter],
        "cc": [config.followers_url],
        "object": stamp_id,
    }
