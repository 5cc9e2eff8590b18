"""Author attribution: which sites may credit the actor in link previews.

Facts relied on (tests/site/test_featured.py checks each):

* A page names its author with ``<meta name="fediverse:creator" content="@user@host">``.
  Mastodon 4.3+ shows the "More from @user" line under a link preview only when the page's
  host is listed in that actor's ``attributionDomains`` (Mastodon's blog post
  "Highlighting journalism on Mastodon", 2024-07; the 4.3 "Author attribution" setting).
* The property is a ``toot:`` term declared ``{"@id": "toot:attributionDomains",
  "@type": "@id"}`` in the actor's ``@context``; its values are bare domains, no scheme or
  port.  Mastodon before 4.4.18 / 4.5.11 mis-declared the term for Linked Data Signatures
  (CVE-2026-50128); we sign with FEP-8b32 integrity proofs over the JSON, which cover it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from bridge.config import SiteConfig


def domains(config: SiteConfig) -> list[str]:
    """The blog's own host first, then the ``attribution_domains`` setting, deduplicated."""
    own = (urlsplit(config.base_url).hostname or "").lower()
    return list(dict.fromkeys([own, *config.attribution_domains]))
