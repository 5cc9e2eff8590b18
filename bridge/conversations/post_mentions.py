"""Webmentions for published posts, in the shape ``bridge.federation.outbox`` asks for.

The outbox (federation) must not import conversations, so ``publish`` takes a
``Webmentions`` sender as a parameter; this is the one the CLI and the daemon pass.
Its modules (HTML and microformats parsing) are imported at the first post that changed:
a publish with nothing new does not pay for them.
"""

from __future__ import annotations

from typing import Any

from bridge.federation.context import Context


class PostWebmentions:
    """Finds a post's outgoing links and sends webmentions for them (``outbox.Webmentions``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def links(self, html: str, base: str) -> set[str]:
        """Absolute links of ``html`` that point away from this site."""
        from bridge.conversations import webmention_client

        found = webmention_client.find_links(html, base)
        return {u for u in found if self.ctx.config.local_path(u) is None}

    async def send(self, source: str, html: str, old_links: list[str]) -> list[Any]:
        """Webmentions from ``source`` to every link of ``html`` and to links it dropped."""
        from bridge.conversations import webmention_outbox  # not the receiving side (mf2)

        results: list[Any] = await webmention_outbox.send_for_post(
            self.ctx, source, html, old_links
        )
        return results
