"""The rebuild process of ``serve``: the site's rebuilds, apart from the inbox's processing.

In ``serve``'s production layout (``bridge.daemon.processes``) the background process
processes the inbox: under a flood it has no idle moment, and a build run in one of its
threads shares its interpreter lock with that processing, so a reply's page waited
seconds for the build that would show it.  The supervisor therefore forks one more
process, ``ib-rebuild`` (after ``gc.freeze()``, like the others, so it shares their
imported code), which runs the ``Rebuilder`` schedule (a reply's page at once, likes
coalesced) and nothing else, at a lower priority still (``NICE``).

The background process tells it what changed through one pipe (``BuildPipe``), one line
per change: ``u SLUG`` a change readers see first (``CommentCache.note_urgent``: a reply
written or removed), ``d SLUG`` any comment change of that post (``Rebuilder.mark_dirty``),
``f`` a full build (``Rebuilder.request``: moderation by a CLI command, a webmention).
The message follows the comment file's write, so the build it starts reads the file.

Nothing is lost on the way:

* the supervisor holds both ends of the pipe, so a restarted rebuild process reads what
  its predecessor had not read, and a write never fails for want of a reader;
* a write never blocks the background process: lines are written in chunks of at most
  ``PIPE_BUF`` bytes, which a pipe takes whole or not at all; a chunk that does not fit
  stays queued (each line once) and the background process's ``Rebuilder.run`` writes it
  again every ``rebuild.RETRY`` seconds until it fits;
* the rebuild process reads the pipe from its event loop while a build runs in a thread,
  so the pipe (enlarged to ``PIPE_SIZE`` where the system allows) is emptied continuously;
* a rebuild process that starts (at ``serve``'s start, or after its predecessor died
  holding changes it had read but not built) runs one full build first when the site has
  been built before: it reads every post's current comments, and unchanged pages are not
  written again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import signal
import threading
from collections.abc import Iterable

from bridge.config import SiteConfig
from bridge.daemon.rebuild import Rebuilder

__all__ = ["BuildPipe", "run_rebuilds"]

PIPE_SIZE = 1 << 20
"""Bytes asked for the pipe (Linux ``F_SETPIPE_SZ``); the default is 64 KiB."""
NICE = 10
"""Added to the rebuild process's scheduling priority: below the HTTP workers and the
background process (+5), whose processing writes the comments a build shows; above
delivery (+15).  Under a flood a build waits for what they leave of the cores."""
GAP = 0.3
"""Seconds between two builds of the rebuild process (``Rebuilder``'s ``gap``).  It shares
no interpreter with the inbox, but it shares the disk: each build writes the pages of
every post with a new reply, and the round's ``syncfs`` and the HTTP workers' commits
wait for those writes.  Builds 0.05 s apart raised the inbox's p50 under
``benchmarks.load_mixed`` from 8-23 ms to 165-750 ms."""
_CHUNK = select.PIPE_BUF


class BuildPipe:
    """One pipe, written by the background process, read by the rebuild process."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        with contextlib.suppress(OSError, AttributeError):  # not Linux, or a lower limit
            fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._unsent: dict[str, None] = {}  # lines not written yet, in order, each once
        self._lock = threading.Lock()
        self._partial = b""  # the reader's incomplete last line

    # ---- the writing side (the background process) ------------------------------------

    def send(self, kind: str, slug: str = "") -> bool:
        """Queue one line and write what fits; True when nothing is left unwritten.
        Never blocks; safe from any thread."""
        with self._lock:
            self._unsent[_line(kind, slug)] = None
            return self._write()

    def hold(self, kind: str, slug: str = "") -> None:
        """Queue one line for the next ``send`` or ``flush`` (a burst becomes one write)."""
        with self._lock:
            self._unsent[_line(kind, slug)] = None

    def flush(self) -> bool:
        """Write the lines left over; True when none is left."""
        with self._lock:
            return self._write()

    def _write(self) -> bool:
        while self._unsent:
            chunk: list[str] = []
            size = 0
            for line in self._unsent:
                if chunk and size + len(line) > _CHUNK:
                    break
                chunk.append(line)
                size += len(line)
            try:
                os.write(self.write_fd, "".join(chunk).encode())
            except (BlockingIOError, InterruptedError):
                return False  # full: the whole chunk is still queued
            for line in chunk:
                del self._unsent[line]
        return True

    # ---- the reading side (the rebuild process) -------------------------------------------

    def receive(self) -> list[tuple[str, str]]:
        """Every whole line written since the last call, as (kind, slug)."""
        data = self._partial
        while True:
            try:
                chunk = os.read(self.read_fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                break
            if not chunk:
                break
            data += chunk
        *lines, self._partial = data.split(b"\n")
        out = []
        for raw in lines:
            kind, _, slug = raw.decode("utf-8", "replace").partition(" ")
            out.append((kind, slug))
        return out


def _line(kind: str, slug: str) -> str:
    return f"{kind} {slug}\n" if slug else f"{kind}\n"


def apply(rebuilder: Rebuilder, messages: Iterable[tuple[str, str]]) -> None:
    """Hand what the background process said to the rebuild schedule."""
    for kind, slug in messages:
        if kind == "u" and slug:
            rebuilder.comments.cache.mark_urgent(slug)
        elif kind == "d" and slug:
            rebuilder.mark_dirty(slug)
        elif kind == "f":
            rebuilder.request()


def run_rebuilds(config: SiteConfig, pipe: BuildPipe, drafts: bool, *, nice: int = NICE) -> None:
    """The rebuild process's body (the supervisor's ``rebuild`` role)."""
    os.close(pipe.write_fd)
    with contextlib.suppress(OSError, AttributeError):  # not Unix: the same priority
        os.nice(nice)
    asyncio.run(_serve(config, pipe, drafts))


async def _serve(config: SiteConfig, pipe: BuildPipe, drafts: bool) -> None:
    rebuilder = Rebuilder(config, drafts=drafts, gap=GAP)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(pipe.read_fd, lambda: apply(rebuilder, pipe.receive()))
    if config.output_dir.is_dir():
        rebuilder.request()  # what a predecessor read but did not build
    try:
        await rebuilder.run(stop)
    finally:
        loop.remove_reader(pipe.read_fd)
