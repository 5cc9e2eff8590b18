"""Link previews: the OpenGraph and Twitter-card ``<meta>`` tags of every page.

Pure: it turns a page's values into (attribute, name, content) triples; ``base.html``
prints them from the ``opengraph`` template variable, escaped by Jinja's autoescape.

Facts relied on (tests/site/test_opengraph.py parses built pages to check each):

* The Open Graph protocol (https://ogp.me/) uses ``<meta property="og:...">``: ``og:title``,
  ``og:type`` (``article`` for a post, else ``website``), ``og:url`` (the canonical URL),
  ``og:image`` with the structured ``og:image:width``, ``og:image:height`` and
  ``og:image:alt``, ``og:description``, ``og:site_name``, ``og:locale`` (``en_US`` form); the
  ``article`` type adds ``article:published_time``, ``article:modified_time`` (ISO 8601)
  and one ``article:tag`` per tag.
* Twitter/X cards (developer.x.com, "Cards markup") use ``<meta name="twitter:...">``:
  ``twitter:card`` is ``summary_large_image`` with an image, else ``summary``; they fall
  back to the ``og:`` values for title, description and image, but ``twitter:image:alt``
  has no ``og:`` fallback.
* Mastodon builds its preview card from the OpenGraph tags (title, description, image,
  type, publication time; ``LinkDetailsExtractor``), and ``fediverse:creator`` credits the
  author (see ``bridge.site.attribution``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

from bridge.config import SiteConfig
from bridge.site.activities import absolute, excerpt, iso
from bridge.site.posts import Page, Post

DESCRIPTION_LIMIT = 200
SizeLookup = Callable[[str], "tuple[int, int] | None"]


@dataclass(frozen=True)
class MetaTag:
    attr: str  # "property" (OpenGraph, article) or "name" (Twitter)
    key: str
    content: str


@dataclass(frozen=True)
class PreviewImage:
    url: str
    alt: str
    width: int | None
    height: int | None


_IMG = re.compile(r"<img", re.IGNORECASE)


class _FirstImage(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img" and self.found is None:
            values = dict(attrs)
            if values.get("src"):
                self.found = (values["src"] or "", values.get("alt") or "")


def first_image(config: SiteConfig, post: Post) -> tuple[str, str] | None:
    """(absolute URL, alt) of the post's first image: its ``images`` list, else its body."""
    if post.images:
        return post.images[0].url, post.images[0].alt
    parser = _FirstImage()
    # Fed up to each ``<img`` in turn, and no further once one is found: parsing a whole
    # long post for its first image was an eighth of rendering its page.
    text, start = post.html, 0
    while parser.found is None:
        at = _IMG.search(text, start)
        if at is None:
            break
        end = text.find(">", at.end()) + 1 or len(text)
        parser.feed(text[start:end])
        start = end
    if parser.found is None:
        return None
    src, alt = parser.found
    if src.startswith("//") or not re.match(r"^(https?://|/|[\w.-])", src):
        return None  # protocol-relative, data: or javascript: sources are never advertised
    return absolute(config, src), alt


def preview_image(
    config: SiteConfig, post: Post | None, sizes: SizeLookup | None = None
) -> PreviewImage | None:
    """The post's first image, else the site-wide ``og_image``; None when neither exists."""
    found = first_image(config, post) if post is not None else None
    if found is not None:
        url, alt = found
        size = sizes(url) if sizes is not None else None
        return PreviewImage(url, alt, *(size or (None, None)))
    if config.og_image:
        url = absolute(config, config.og_image)
        return PreviewImage(url, config.og_image_alt, config.og_image_width, config.og_image_height)
    return None


def _text(fragment: str, limit: int = DESCRIPTION_LIMIT) -> str:
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + "…"


def _locale(lang: str) -> str:
    """BCP 47 ``en-GB`` -> Open Graph's ``en_GB``; a bare ``en`` stays ``en``."""
    return lang.replace("-", "_")


def page_meta(
    config: SiteConfig,
    *,
    title: str,
    url: str,
    post: Post | None = None,
    page: Page | None = None,
    sizes: SizeLookup | None = None,
) -> tuple[MetaTag, ...]:
    """Every preview tag of one page, in a stable order."""
    if post is not None:
        # The summary is plain text; the body's first words come out of excerpt() as text.
        description = post.content_warning or excerpt(post, DESCRIPTION_LIMIT)
        lang = post.lang
    elif page is not None:
        description, lang = _text(page.html) or config.description, page.lang
    else:
        description, lang = config.description, config.language
    og: list[tuple[str, str]] = [
        ("og:site_name", config.title),
        ("og:title", title),
        ("og:type", "article" if post is not None else "website"),
        ("og:url", url),
        ("og:locale", _locale(lang)),
    ]
    if description:
        og.append(("og:description", description))
    image = preview_image(config, post, sizes)
    if image is not None:
        og.append(("og:image", image.url))
        if image.width and image.height:
            og += [("og:image:width", str(image.width)), ("og:image:height", str(image.height))]
        if image.alt:
            og.append(("og:image:alt", image.alt))
    if post is not None:
        og.append(("article:published_time", iso(post.date)))
        if post.updated and post.updated > post.date:
            og.append(("article:modified_time", iso(post.updated)))
        og += [("article:tag", tag) for tag in post.tags]
    twitter = [("twitter:card", "summary_large_image" if image else "summary")]
    twitter.append(("twitter:title", title))
    if description:
        twitter.append(("twitter:description", description))
    if image is not None:
        twitter.append(("twitter:image", image.url))
        if image.alt:
            twitter.append(("twitter:image:alt", image.alt))
    return tuple(MetaTag("property", k, v) for k, v in og) + tuple(
        MetaTag("name", k, v) for k, v in twitter
    )
