"""Embedded things (iframes, scripts, oEmbed URLs) as plain links a reader can follow.

A static post cannot run a YouTube player or a gist script, and dropping them silently
loses content, so every embed becomes a link to the thing itself:
``https://www.youtube.com/embed/ID`` (the player, documented at
https://developers.google.com/youtube/player_parameters) -> ``https://www.youtube.com/watch?v=ID``,
``https://player.vimeo.com/video/ID`` -> ``https://vimeo.com/ID``, and a gist's
``https://gist.github.com/USER/ID.js`` script -> ``https://gist.github.com/USER/ID``.
"""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

_YOUTUBE_ID = re.compile(r"^[\w-]{6,20}$")


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().removeprefix("www.")


def canonical(url: str) -> str:
    """The page a reader should open for an embed URL (player -> watch page)."""
    parts = urlsplit(url.strip())
    host = _host(url)
    path = parts.path
    if host in ("youtube.com", "youtube-nocookie.com", "m.youtube.com"):
        match = re.match(r"^/(?:embed|v|shorts)/([\w-]+)", path)
        if match:
            return f"https://www.youtube.com/watch?v={match.group(1)}"
        video = parse_qs(parts.query).get("v", [""])[0]
        if _YOUTUBE_ID.match(video):
            return f"https://www.youtube.com/watch?v={video}"
    if host == "youtu.be" and _YOUTUBE_ID.match(path.strip("/")):
        return f"https://www.youtube.com/watch?v={path.strip('/')}"
    if host == "player.vimeo.com":
        match = re.match(r"^/video/(\d+)", path)
        if match:
            return f"https://vimeo.com/{match.group(1)}"
    if host == "gist.github.com" and path.endswith(".js"):
        return f"https://gist.github.com{path.removesuffix('.js')}"
    return url.strip()


def label(url: str) -> str:
    """Link text naming what the embed was."""
    host = _host(url)
    if host in ("youtube.com", "youtu.be"):
        return "Video on YouTube"
    if host == "vimeo.com":
        return "Video on Vimeo"
    if host == "gist.github.com":
        return "Code on GitHub Gist"
    return f"Embedded content from {host}" if host else "Embedded content"


def vimeo_url(value: str) -> str:
    """``[vimeo 123]`` takes an id or a URL."""
    value = value.strip()
    return f"https://vimeo.com/{value}" if value.isdigit() else canonical(value)


def link_card(url: str) -> str:
    """A paragraph linking to the embedded thing: what every embed becomes."""
    target = canonical(url)
    return f'<p><a href="{html.escape(target)}">{html.escape(label(target))}</a></p>'
