"""What a resident process (``serve --watch``, the daemon) keeps of its last plan.

Planning 10,000 posts is 30,000 outputs, each with a key to hash: most of a rebuild that
changed one post.  A post's block (its page, object, Create and collections) whose inputs
are exactly those of this process's last build is one ``Kept``: its (path, key) pairs,
which are a function of those inputs alone, so a block is never wrong for another site or
output folder; the writer checks every pair against the folder's manifest anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bridge.site.output import Kept, Output

# slug -> (what its block was made of, its (path, key) pairs), from this process's builds
_blocks: dict[str, tuple[tuple[str, ...], list[tuple[str, str]]]] = {}


def kept_block(
    slug: str, made_of: tuple[str, ...], expand: Callable[[], Iterator[Output]]
) -> Kept | None:
    """The post's block as kept, when it was made of exactly ``made_of``."""
    kept = _blocks.get(slug)
    if kept is None or kept[0] != made_of:
        return None
    return Kept(kept[1], expand)


def remember_block(slug: str, made_of: tuple[str, ...], outputs: list[Output]) -> list[Output]:
    if len(_blocks) > 200_000:  # many sites built in one process
        _blocks.clear()
    _blocks[slug] = (made_of, [(out.path, out.key) for out in outputs])
    return outputs


def forget_blocks() -> None:
    """Drop the kept blocks (as a fresh process starts)."""
    _blocks.clear()
