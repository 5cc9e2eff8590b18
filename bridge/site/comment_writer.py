"""A batch's comment files written by a thread of their own, in the order they were asked.

Creating a file is a system call that waits for the file system's journal; under a flood
it took the inbox processor's event loop a quarter of its time, during which no other row
advanced.  A deferring ``CommentStore`` (the processor's) hands each write and delete to
one ``CommentWriter`` instead and goes on: the thread creates the files (temporary file +
rename, as before) while the event loop processes the next rows.

What the store promises is unchanged:

* **order** — one thread does the operations one after the other, as they were asked, so
  a Delete never lands before the write it removes;
* **reads see what was asked** — until a write lands, ``state`` answers with the comment
  (or, for a delete, that there is none), so a handler reading a comment its batch wrote
  (an Update after its Create) finds it;
* **durability before done** — ``drain`` waits until every operation asked so far has
  landed, and only then does the processor sync the files and record its rows done; an
  operation that failed is raised by ``drain``, and the processor records none of the
  batch's rows, so they all run again (a comment's file name is a hash of what it is, so
  running a row again rewrites the same file).

The thread ends after ``LINGER`` seconds with nothing queued (a new write starts another),
and ``drain``, when nothing else was asked meanwhile, ends it and waits for it: a process
that forks after a batch (the build's parallel rendering refuses to fork with a second
thread alive) never finds it left over.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.site.posts import Comment

log = logging.getLogger("indiebridge.comments")

LINGER = 1.0
"""Seconds the thread waits for more work before it ends (``drain`` ends it at once):
under a flood one thread writes every file, instead of one started per write."""


@dataclass(frozen=True)
class _Op:
    path: Path
    data: str | None  # the file's text; None: delete the file
    comment: Comment | None
    landed: Callable[[], None]  # called once the file is written (or removed)


class CommentWriter:
    """Writes and deletes comment files in one thread, in order (module docstring)."""

    def __init__(self) -> None:
        self._queue: deque[_Op] = deque()
        self._pending: dict[Path, list[_Op]] = {}  # what reads must see until it lands
        self._lock = threading.Condition()
        self._asked = 0  # operations asked for so far
        self._landed = 0  # operations done (landed or failed), in the order asked
        self._thread: threading.Thread | None = None
        self._ended: threading.Thread | None = None  # the last thread, about to end
        self._closing = False  # ``drain`` asks the idle thread to end now
        self._error: OSError | None = None

    def write(self, path: Path, data: str, comment: Comment, landed: Callable[[], None]) -> None:
        self._put(_Op(path, data, comment, landed))

    def delete(self, path: Path, landed: Callable[[], None]) -> None:
        self._put(_Op(path, None, None, landed))

    def state(self, path: Path) -> tuple[bool, Comment | None]:
        """(whether an operation on ``path`` has not landed yet, the comment it leaves)."""
        with self._lock:
            ops = self._pending.get(path)
            return (True, ops[-1].comment) if ops else (False, None)

    def wait(self) -> None:
        """Wait until every operation asked before the call has landed (not those asked
        meanwhile, so a flood cannot keep it waiting)."""
        with self._lock:
            target = self._asked
            while self._landed < target:
                self._lock.wait()

    def drain(self) -> None:
        """``wait``; then, if nothing else was asked meanwhile, end the thread; raise the
        first operation that failed since the last ``drain``."""
        with self._lock:
            target = self._asked
            while self._landed < target:
                self._lock.wait()
            error, self._error = self._error, None
            if self._thread is not None and not self._queue:
                self._closing = True
                self._lock.notify_all()
                while self._thread is not None and not self._queue:
                    self._lock.wait()
            ended = self._ended if self._thread is None else None
        if ended is not None:
            ended.join()  # it has returned: gone at once
        if error is not None:
            raise error

    def _put(self, op: _Op) -> None:
        with self._lock:
            self._queue.append(op)
            self._asked += 1
            self._closing = False
            self._pending.setdefault(op.path, []).append(op)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="comment-writer", daemon=True
                )
                self._thread.start()
            else:
                self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    if not self._lock.wait(LINGER):
                        break
                if not self._queue:
                    self._thread, self._ended = None, threading.current_thread()
                    self._closing = False
                    self._lock.notify_all()
                    return
                op = self._queue.popleft()
            try:
                _land(op)
            except OSError as exc:
                with self._lock:
                    self._error = self._error or exc
            else:
                try:
                    op.landed()
                except Exception:  # a hook's bug must not stop the writes after it
                    log.exception("after writing %s", op.path)
            finally:
                with self._lock:
                    ops = self._pending[op.path]
                    ops.remove(op)
                    if not ops:
                        del self._pending[op.path]
                    self._landed += 1
                    self._lock.notify_all()


def _land(op: _Op) -> None:
    if op.data is None:
        op.path.unlink(missing_ok=True)
        return
    op.path.parent.mkdir(parents=True, exist_ok=True)
    tmp = op.path.with_name(f".{op.path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(op.data)
    os.replace(tmp, op.path)
