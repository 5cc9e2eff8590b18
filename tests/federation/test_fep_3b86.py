"""FEP-3b86 Activity Intents (https://w3id.org/fep/3b86), on both sides of the blog.

* The blog's own WebFinger answer advertises no intent and no OStatus ``subscribe``
  template: the FEP's "Home Server" is "the location where a user is logged in", and each
  intent "the API endpoint where the current user can" act; nobody logs in to the blog to
  follow, like or post (the reasoning is in FEDERATION.md and ``bridge.site.webfinger``).
* The reader's side (``/interact``) uses the intents of the *reader's* server, with the
  FEP's section 3.1 example answer as input: values percent-encoded (section 3.3),
  unrecognised parameters replaced by an empty string (section 3.2), and an intent whose
  template has no place for our object skipped for the OStatus link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from bridge.federation import remote_interaction as ri
from bridge.site import webfinger
from tests.conftest import Built
from tests.e2e.blog import Blog, blog  # noqa: F401 - the `blog` fixture

POST_ID = "https://blog.example/ap/posts/first-article.json"
ENCODED = "https%3A%2F%2Fblog.example%2Fap%2Fposts%2Ffirst-article.json"

# FEP-3b86 section 3.1, "Example", verbatim.
FEP_EXAMPLE: dict[str, Any] = {
    "subject": "acct:benpate@mastodon.social",
    "aliases": ["https://mastodon.social/@benpate", "https://mastodon.social/users/benpate"],
    "links": [
        {
            "rel": "http://webfinger.net/rel/profile-page",
            "type": "text/html",
            "href": "https://mastodon.social/@benpate",
        },
        {
            "rel": "self",
            "type": "application/activity+json",
            "href": "https://mastodon.social/users/benpate",
        },
        {
            "rel": "http://ostatus.org/schema/1.0/subscribe",
            "template": "https://mastodon.social/authorize_interaction?uri={uri}",
        },
        {
            "rel": "https://w3id.org/fep/3b86/Follow",
            "template": "https://mastodon.social/authorize_interaction?uri={object}",
        },
        {
            "rel": "https://w3id.org/fep/3b86/Create",
            "template": "https://mastodon.social/share?uri={object}",
        },
        {
            "rel": "https://w3id.org/fep/3b86/Like",
            "template": "https://mastodon.social/intents/like?id={object}",
        },
    ],
}


def rels(jrd: dict[str, Any]) -> list[str]:
    return [link["rel"] for link in jrd["links"]]


def advertises_no_intent(jrd: dict[str, Any]) -> None:
    assert rels(jrd) == ["self", "http://webfinger.net/rel/profile-page"]
    assert not any("template" in link for link in jrd["links"])
    assert not any(r.startswith(ri.FEP_3B86) or r == ri.SUBSCRIBE for r in rels(jrd))


def test_the_built_webfinger_answer_advertises_no_intent(built: Built) -> None:
    jrd = built.json(".well-known/webfinger")
    advertises_no_intent(jrd)
    assert jrd == webfinger.jrd(built.config)


def test_the_daemons_webfinger_answer_advertises_no_intent(blog: Blog) -> None:  # noqa: F811
    blog.start()
    host = blog.base_url.removeprefix("http://")
    answer = blog.get(f"/.well-known/webfinger?resource=acct:blog@{host}")
    assert answer.status_code == 200
    advertises_no_intent(answer.json())


def test_the_readers_intents_from_the_feps_example() -> None:
    # Follow and Like take {object}: the intent wins over the OStatus link.
    assert ri.choose(FEP_EXAMPLE, "follow", POST_ID) == (
        f"https://mastodon.social/authorize_interaction?uri={ENCODED}"
    )
    assert ri.choose(FEP_EXAMPLE, "like", POST_ID) == (
        f"https://mastodon.social/intents/like?id={ENCODED}"
    )
    # The example's Create has no {inReplyTo}: it could only open an empty share form, so
    # the reply goes through the OStatus link, which shows the post with its reply button.
    assert ri.choose(FEP_EXAMPLE, "reply", POST_ID) == (
        f"https://mastodon.social/authorize_interaction?uri={ENCODED}"
    )
    # No Announce intent in the example: the OStatus link too.
    assert ri.choose(FEP_EXAMPLE, "boost", POST_ID) == (
        f"https://mastodon.social/authorize_interaction?uri={ENCODED}"
    )


def test_workflow_parameters_we_do_not_send_become_empty() -> None:
    jrd = {
        "links": [
            {
                "rel": ri.FEP_3B86 + "Create",
                "template": "https://s.example/new?r={inReplyTo}&ok={on-success}&no={on-cancel}",
                "href": "https://ignored.example/",  # "All others properties are ignored."
            }
        ]
    }
    url = ri.choose(jrd, "reply", POST_ID)
    assert url is not None and url.startswith("https://s.example/new?")
    assert parse_qs(urlsplit(url).query, keep_blank_values=True) == {
        "r": [POST_ID],
        "ok": [""],
        "no": [""],
    }
