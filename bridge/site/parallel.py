"""A cold build's outputs rendered and written in forked worker processes, one per core.

Each post's page, object, Create and collections are independent of other posts', and an
outbox page needs only the Creates of the posts just before it, so the plan's outputs are
cut into runs that end where ``Output.cut`` allows (never between a post's documents and
the outbox page that embeds its Create: each is signed once).  Workers write their files
themselves: creating files is system time (about 0.6 ms a file on ordinary disks), which
then runs on every core too.  The parent keeps the order, the manifest and the progress.

As ``parse_pool`` does for posts and pages: only from a process with one thread
(forking copies locks other threads hold; the daemon builds in a thread), with ``fork``
(workers inherit the plan, its templates and keys, and never import ``__main__`` again),
and in-process whenever a pool cannot be had.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext


class Output(Protocol):
    """What ``bridge.site.output.Output`` offers here (that module imports this one)."""

    @property
    def path(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def cut(self) -> bool: ...
    def render(self) -> bytes: ...


Progress = Callable[[int, int], None]

PARALLEL_MIN = 200
"""Fewer outputs than this are rendered in-process (a pool of workers costs ~0.1 s)."""

Written = tuple[str, str] | None  # (key, sha256 of the bytes); None: the output failed

_forked: tuple[str, Sequence[Output]] | None = None  # set before forking; workers read it


def fork_pool(items: int, minimum: int) -> tuple[BaseContext, int] | None:
    """The ``fork`` context and the number of workers (one per core, at most 8) for
    ``items`` pieces of work, or None when a pool cannot be had or is not worth it here:
    fewer than ``minimum`` items, one core, more than one thread in this process (forking
    copies locks other threads hold), or no ``fork`` on this platform.  ``parse_pool``
    asks the same."""
    import multiprocessing
    import threading

    workers = min(os.cpu_count() or 1, 8)
    if workers < 2 or items < minimum or threading.active_count() > 1:
        return None
    try:
        return multiprocessing.get_context("fork"), workers
    except ValueError:  # pragma: no cover - platforms without fork
        return None


def render_and_write(
    root: Path, outputs: Sequence[Output], progress: Progress | None, total: int
) -> list[Written] | None:
    """Render ``outputs`` and write each to ``root / path`` in forked workers.

    Returns each output's (key, sha256) in order (None for one whose rendering failed:
    the caller renders it again, in-process, to raise its error), or None when workers
    cannot be used here and nothing was written.
    """
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    global _forked
    pool_for = fork_pool(len(outputs), PARALLEL_MIN)
    if pool_for is None:
        return None
    context, workers = pool_for
    results: list[Written] = []
    _forked = (str(root), outputs)
    try:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            # Runs of about one outbox page (20 posts): the last run keeps one core
            # working alone, and a long one (80 posts) cost ~0.15 s at the end.
            for done in pool.map(_render_run, runs(outputs, workers * 16)):
                results += done
                if progress:
                    progress(len(results), total)
    except (OSError, BrokenProcessPool):  # pragma: no cover - the caller renders in-process
        return None
    finally:
        _forked = None
    return results


def runs(outputs: Sequence[Output], count: int) -> list[tuple[int, int]]:
    """About ``count`` consecutive (start, end) index ranges covering ``outputs``, each
    ending after an output whose ``cut`` allows it."""
    size = max(1, len(outputs) // max(1, count))
    bounds: list[tuple[int, int]] = []
    start = 0
    for i, out in enumerate(outputs, 1):
        if i - start >= size and out.cut:
            bounds.append((start, i))
            start = i
    if start < len(outputs):
        bounds.append((start, len(outputs)))
    return bounds


def _render_run(bounds: tuple[int, int]) -> list[Written]:
    """In a worker: render and write the outputs ``bounds`` of the list set before forking."""
    assert _forked is not None
    root, outputs = _forked
    made: set[str] = set()
    done: list[Written] = []
    for out in outputs[bounds[0] : bounds[1]]:
        try:
            target = f"{root}/{out.path}"
            folder = os.path.dirname(target)
            if folder not in made:
                _folder(folder)
                made.add(folder)
            data = out.render()
            _write(target, data)
            done.append((out.key, hashlib.sha256(data).hexdigest()))
        except Exception:  # noqa: BLE001 - the parent renders it again to raise the error
            done.append(None)
    return done


def _folder(path: str) -> None:
    """Make ``path``; its parent is nearly always there (``makedirs`` stats it first)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def _write(path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` in three system calls: ``open()`` adds an fstat,
    an ioctl and an lseek to each of a cold build's thousands of files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
