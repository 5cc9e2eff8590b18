"""Atom 1.0 and JSON Feed 1.1 for the newest posts: pure builders."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bridge.config import SiteConfig
from bridge.site.activities import excerpt, iso
from bridge.site.posts import Post
from bridge.site.xmltext import escape, quoteattr

FEED_SIZE = 20


def _title(post: Post) -> str:
    return post.title or excerpt(post, 80)


def atom(config: SiteConfig, posts: Sequence[Post]) -> str:
    recent = list(posts[:FEED_SIZE])
    updated = max((p.last_modified for p in recent), default=None)
    out = [
        '<?xml version="1.0" encoding="utf-8"?>',
        f'<feed xmlns="http://www.w3.org/2005/Atom" xml:lang={quoteattr(config.language)}>',
        f"  <title>{escape(config.title)}</title>",
    ]
    if config.description:
        out.append(f"  <subtitle>{escape(config.description)}</subtitle>")
    out += [
        f"  <id>{escape(config.base_url)}/</id>",
        f'  <link rel="alternate" type="text/html" href={quoteattr(config.base_url + "/")}/>',
        '  <link rel="self" type="application/atom+xml" '
        f"href={quoteattr(config.base_url + '/feed.xml')}/>",
        f"  <updated>{iso(updated) if updated else '1970-01-01T00:00:00Z'}</updated>",
        "  <author>",
        f"    <name>{escape(config.author.name)}</name>",
    ]
    if config.author.url:
        out.append(f"    <uri>{escape(config.author.url)}</uri>")
    out += [
        "  </author>",
        '  <generator uri="https://github.com/indiebridge/indiebridge">indiebridge</generator>',
    ]
    for post in recent:
        url = config.post_url(post.slug)
        out += [
            "  <entry>",
            f"    <title>{escape(_title(post))}</title>",
            f"    <id>{escape(url)}</id>",
            f'    <link rel="alternate" type="text/html" href={quoteattr(url)}/>',
            f"    <published>{iso(post.date)}</published>",
            f"    <updated>{iso(max(post.last_modified, post.date))}</updated>",
        ]
        out += [f"    <category term={quoteattr(tag)}/>" for tag in post.tags]
        if post.summary:
            out.append(f"    <summary>{escape(post.summary)}</summary>")
        body = post.html
        if post.content_warning:
            body = f"<p><strong>Content warning: {escape(post.content_warning)}</strong></p>{body}"
        for img in post.images:
            body += f"<p><img src={quoteattr(img.url)} alt={quoteattr(img.alt)}></p>"
        out.append(f'    <content type="html">{escape(body)}</content>')
        out.append("  </entry>")
    out.append("</feed>")
    return "\n".join(out) + "\n"


def json_feed(config: SiteConfig, posts: Sequence[Post]) -> str:
    items = []
    for post in posts[:FEED_SIZE]:
        url = config.post_url(post.slug)
        item: dict[str, object] = {
            "id": url,
            "url": url,
            "content_html": post.html,
            "date_published": iso(post.date),
            "date_modified": iso(max(post.last_modified, post.date)),
            "tags": list(post.tags),
            "language": post.lang,
        }
        if post.title:
            item["title"] = post.title
        if post.summary:
            item["summary"] = post.summary
        if post.images:
            item["image"] = post.images[0].url
        if post.in_reply_to:
            item["external_url"] = post.in_reply_to
        items.append(item)
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": config.title,
        "home_page_url": config.base_url + "/",
        "feed_url": config.base_url + "/feed.json",
        "description": config.description,
        "language": config.language,
        "authors": [
            {"name": config.author.name, "url": config.author.url or config.base_url + "/"}
        ],
        "items": items,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
