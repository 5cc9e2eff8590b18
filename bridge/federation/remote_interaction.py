"""Follow, reply, like and boost from the reader's own server, in one step.

A no-JS form on each post (and on the follow card) sends the reader's handle to
``GET <federation_url>/interact?handle=…&intent=…&object=…``.  The daemon looks the
handle up with WebFinger (through the SSRF-safe fetcher: size and time limits, no private
addresses), finds the reader's server's page for that action and redirects there (303).

Facts relied on (tests/federation/test_remote_interaction.py checks each):

* FEP-3b86 (Activity Intents): a WebFinger answer may carry links with ``rel``
  ``https://w3id.org/fep/3b86/<Activity>`` and a URI ``template``.  ``Follow``, ``Like``
  and ``Announce`` take ``{object}``; ``Create`` takes ``{inReplyTo}`` (among others).
  Every value is percent-encoded; a parameter the caller does not know becomes empty
  (FEP-3b86 section 3.2: "Remote servers MUST replace unrecognized values with an empty
  string"), so an intent whose template lacks the parameter naming our object could only
  open an empty form: the FEP's own example has ``Create`` with ``{object}``
  (``/share?uri={object}``), which cannot carry a reply's ``inReplyTo``.  Such an intent
  is skipped and the OStatus link used instead.
* The older OStatus remote-follow link, ``rel`` ``http://ostatus.org/schema/1.0/subscribe``
  with ``{uri}``, which Mastodon serves (``/authorize_interaction?uri={uri}``) and answers
  by showing the object with its follow, reply, like and boost buttons.  It is the
  fallback when an intent is not offered.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bridge.errors import BridgeError, InteractionError
from bridge.federation.context import Context
from bridge.federation.fetch import SafeFetcher
from bridge.federation.inbox import RateLimiter

FEP_3B86 = "https://w3id.org/fep/3b86/"
SUBSCRIBE = "http://ostatus.org/schema/1.0/subscribe"
# What the form asks for -> (FEP-3b86 activity, the template parameter naming our object).
INTENTS: dict[str, tuple[str, str]] = {
    "follow": ("Follow", "object"),
    "reply": ("Create", "inReplyTo"),
    "like": ("Like", "object"),
    "boost": ("Announce", "object"),
}
LOOKUPS_PER_MINUTE = 30
_HANDLE_RE = re.compile(r"^@?([A-Za-z0-9_.+~-]{1,64})@([A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?)$")
_PARAM_RE = re.compile(r"\{([^{}]*)\}")


def parse_handle(text: str) -> tuple[str, str]:
    """``@user@host``, ``user@host`` or ``acct:user@host`` -> (user, host).

    Raises:
        InteractionError: anything else.
    """
    value = text.strip().removeprefix("acct:")
    m = _HANDLE_RE.match(value)
    host_name = m.group(2).split(":")[0] if m else ""
    if not m or ("." not in host_name and host_name != "localhost"):
        raise InteractionError(
            f"{text.strip()[:100]!r} is not a fediverse handle: write it as @you@your.server"
        )
    return m.group(1), m.group(2).lower()


def fill(template: str, values: dict[str, str]) -> str:
    """Expand a simple URI template: known names percent-encoded, unknown ones empty."""
    return _PARAM_RE.sub(lambda m: quote(values.get(m.group(1), ""), safe=""), template)


def choose(jrd: Any, intent: str, object_id: str) -> str | None:
    """The reader's URL for ``intent`` on ``object_id`` from their WebFinger answer:
    the FEP-3b86 intent when offered with a place for our object, else the OStatus
    subscribe template."""
    activity, param = INTENTS[intent]
    links = jrd.get("links", []) if isinstance(jrd, dict) else []
    templates = {
        str(link.get("rel")): link["template"]
        for link in links
        if isinstance(link, dict) and isinstance(link.get("template"), str)
    }
    intent = templates.get(FEP_3B86 + activity, "")
    if "{" + param + "}" in intent:
        return fill(intent, {param: object_id})
    if SUBSCRIBE in templates:
        return fill(templates[SUBSCRIBE], {"uri": object_id})
    return None


async def intent_url(
    fetcher: SafeFetcher, handle: str, intent: str, object_id: str, *, allow_http: bool = False
) -> str:
    """Where to send the reader of ``handle`` to ``intent`` (follow, reply, like, boost).

    Raises:
        InteractionError: a bad handle or intent, a server that does not answer
            WebFinger, or one that offers no way to do it.
    """
    if intent not in INTENTS:
        raise InteractionError(
            f"unknown action {intent[:20]!r}: expected follow, reply, like or boost"
        )
    user, host = parse_handle(handle)
    scheme = "http" if allow_http and host.split(":")[0] in ("localhost", "127.0.0.1") else "https"
    url = f"{scheme}://{host}/.well-known/webfinger?resource=acct:{user}@{host}"
    try:
        page = await fetcher.get(url, accept="application/jrd+json, application/json")
    except BridgeError as exc:
        raise InteractionError(f"{host} could not be reached ({exc})") from None
    if page.status != 200:
        raise InteractionError(f"{host} does not know @{user}@{host} (HTTP {page.status})")
    try:
        jrd = json.loads(page.body)
    except ValueError:
        raise InteractionError(
            f"{host} answered WebFinger with something that is not JSON"
        ) from None
    target = choose(jrd, intent, object_id)
    if target is None:
        raise InteractionError(f"{host} offers no page to {intent} from; search for the post there")
    if urlsplit(target).scheme not in ("http", "https") or not urlsplit(target).hostname:
        raise InteractionError(f"{host} gave an address that is not a web page")
    return target


def _error_page(message: str, back: str) -> HTMLResponse:
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Could not continue</title></head><body><main>"
        f'<p class="error" role="alert">{html.escape(message)}</p>'
        f'<p><a href="{html.escape(back)}">Back</a></p></main></body></html>'
    )
    return HTMLResponse(body, status_code=400, headers={"Cache-Control": "no-store"})


def routes(ctx: Context) -> list[Route]:
    """``GET /interact``: validate, look the reader up, redirect (303) or explain (400)."""
    config = ctx.config
    # Readers are anonymous: at most LOOKUPS_PER_MINUTE WebFinger requests to any one server.
    limiter = RateLimiter(per_minute=LOOKUPS_PER_MINUTE)

    async def interact(request: Request) -> Response:
        q = request.query_params
        object_id = q.get("object", "")
        ours = object_id == config.actor_id or ctx.post_slug(object_id) is not None
        slug = ctx.post_slug(object_id) if ours and object_id != config.actor_id else None
        back = config.post_url(slug) if slug else config.base_url + "/"
        if not ours:
            return _error_page("This form only acts on this blog's posts and profile.", back)
        try:
            _, host = parse_handle(q.get("handle", ""))
            if not limiter.allow(host, "interact"):
                raise InteractionError(
                    f"too many lookups of {host} just now; try again in a minute"
                )
            target = await intent_url(
                ctx.fetcher,
                q.get("handle", ""),
                q.get("intent", "follow"),
                object_id,
                allow_http=config.allow_private_addresses,
            )
        except InteractionError as exc:
            return _error_page(str(exc), back)
        return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})

    return [Route("/interact", interact, methods=["GET"])]
