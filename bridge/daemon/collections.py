"""The per-post collections the build does not write, answered by the daemon.

The build writes a post's ``replies``, ``context``, ``likes`` and ``shares`` collections
only when they have items (``bridge.site.collections.post_documents``); their ids are in
every Note either way, and must dereference.  When the static route finds no file for
such an id and the post is live (its page is in the output), it answers with the empty
document the build would have written (``bridge.site.collections.empty_document``), with
the id that was asked for.  A deleted post's page is gone, so its collections are not
answered here (they fall through to the 410 and 404 rules).
"""

from __future__ import annotations

from typing import Any

from bridge.config import SiteConfig
from bridge.site import collections


def empty_collection(config: SiteConfig, rel: str) -> dict[str, Any] | None:
    """The empty collection document at ``rel`` (a path below the output folder, already
    checked for ``..``), or None when ``rel`` is not one of a live post's collections."""
    doc = collections.empty_document(config, rel)
    if doc is None:
        return None
    slug = rel.split("/")[2]
    if not (config.output_dir / "posts" / slug / "index.html").is_file():
        return None
    return doc
