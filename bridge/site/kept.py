"""What a process keeps of its last plan, and what a command build leaves for the next.

Planning 10,000 posts is 30,000 outputs, each with a key to hash: most of a rebuild that
changed one post.  A post's block (its page, object, Create and collections) whose inputs
(``made_of``) are exactly those of an earlier build is one ``Kept``: its (path, key) pairs,
which are a function of those inputs alone, so a block is never wrong for another site or
output folder; the writer checks every pair against the folder's manifest anyway.

* A resident process (``serve --watch``, the daemon) keeps its blocks in memory.
* A command build (``indiebridge build``, ``publish``) starts from the blocks the last
  command build saved (``load``, ``save``: ``.indiebridge/cache/blocks.marshal``), by a
  hash of each block's ``made_of``.  The file's key covers the code that turns inputs
  into paths and keys, and Python's version; any doubt (no file, another key, a broken
  one) only means planning every post as before.  A block taken from the file has its
  files looked at (``Kept.look``), as a planned output's are, so a page deleted by hand
  comes back at the next command build.

A one-post edit of a 1,000-post site planned 3,212 outputs in 27-43 ms; with the saved
blocks, 4-7 ms (benchmarks/README.md).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import marshal
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bridge import __version__
from bridge.site.output import Kept, Output

FILE = "blocks.marshal"
VERSION = "blocks-1"

Pairs = tuple[tuple[str, str], ...]

# slug -> (what its block was made of, its (path, key) pairs), from this process's builds
_blocks: dict[str, tuple[tuple[str, ...], Pairs]] = {}
# slug -> (a hash of made_of, pairs): the last command build's, from ``load``
_saved: dict[str, tuple[bytes, Pairs]] = {}
_changed = False  # a block planned since ``load``: ``save`` has something to write
_file_key: str | None = None  # the file's key, from ``load``


def kept_block(
    slug: str, made_of: tuple[str, ...], expand: Callable[[], Iterator[Output]]
) -> Kept | None:
    """The post's block as kept, when it was made of exactly ``made_of``."""
    kept = _blocks.get(slug)
    if kept is not None and kept[0] == made_of:
        return Kept(kept[1], expand)
    saved = _saved.get(slug)
    if saved is not None and saved[0] == _digest(made_of):
        return Kept(saved[1], expand, look=True)
    return None


def remember_block(slug: str, made_of: tuple[str, ...], outputs: list[Output]) -> list[Output]:
    global _changed
    if len(_blocks) > 200_000:  # many sites built in one process
        _blocks.clear()
    _blocks[slug] = (made_of, tuple((out.path, out.key) for out in outputs))
    _changed = True  # planned: the saved block, if any, was of other inputs
    return outputs


def forget_blocks() -> None:
    """Drop the kept blocks (as a fresh process starts)."""
    global _changed, _file_key
    _blocks.clear()
    _saved.clear()
    _file_key = None
    _changed = False


def load(cache_dir: Path, code: tuple[str, ...]) -> None:
    """Take the blocks the last command build saved in ``cache_dir`` (see the module
    docstring); nothing when the file is missing, broken or of other code.  ``code``:
    the files of the code that turns a block's inputs into its paths and keys."""
    global _changed, _file_key
    _saved.clear()
    _changed = False
    _file_key = _code_key(code)
    try:
        data = marshal.loads((cache_dir / FILE).read_bytes())  # noqa: S302 - our private cache
    except (OSError, EOFError, ValueError, TypeError):
        return
    # The site's private state, as the parse cache's pickles are: the shape is checked
    # to the block (a wrong one is planned again), not every pair (1.7 ms a thousand).
    try:
        key, blocks = data
        if key == _file_key and isinstance(blocks, dict):
            _saved.update(
                (slug, block)
                for slug, block in blocks.items()
                if type(block) is tuple and len(block) == 2 and type(block[1]) is tuple
            )
    except (TypeError, ValueError):
        _saved.clear()


def save(cache_dir: Path, slugs: list[str]) -> None:
    """Leave the blocks of ``slugs`` (this build's posts) for the next command build,
    when any was planned since ``load``; a file that cannot be written only costs speed."""
    if not _changed or _file_key is None:
        return
    blocks: dict[str, tuple[bytes, Pairs]] = {}
    for slug in slugs:
        kept = _blocks.get(slug)
        if kept is not None:
            blocks[slug] = (_digest(kept[0]), kept[1])
        elif slug in _saved:  # taken from the file and not planned again
            blocks[slug] = _saved[slug]
    path = cache_dir / FILE
    tmp = path.with_name(f".{FILE}.{os.getpid()}")
    try:
        tmp.write_bytes(marshal.dumps((_file_key, blocks)))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _digest(made_of: tuple[str, ...]) -> bytes:
    return hashlib.sha256("\0".join(made_of).encode()).digest()


@functools.cache
def _code_key(code: tuple[str, ...]) -> str:
    """What else decides a block's paths and keys: that code and the versions."""
    h = hashlib.sha256(f"{VERSION}\0{__version__}\0{sys.version}".encode())
    for module in (__file__, *code):
        with contextlib.suppress(OSError):  # as the parse cache: its version still counts
            h.update(Path(module).read_bytes())
    return h.hexdigest()
