"""Several delivery processes on one queue: the daemon's default set-up.

One ``DeliveryWorker`` is CPU-bound at about 800 signed deliveries/s (RSA signing, httpx
and the queue's bookkeeping, all on one core); the queue was built for several processes
(each claims its rows in one transaction), so the daemon runs ``processes`` children
(``bridge.federation.delivery.child``), by default ``min(cores, 4)``, each with its own
worker.  ``DeliveryPool`` has the worker's shape (``recover()``, ``wake()``,
``run_forever(stop)``), so the daemon uses either the same way.

Guarantees:

* Each child claims rows with its own ``owner`` token.  When a child exits for any reason
  (``kill -9`` included), the pool puts the rows it held in ``sending`` back to ``queued``
  (``queue.recover(owner=...)``) and starts another child, after a pause that doubles
  while children keep dying young (1 s up to 60 s).  No queued delivery is lost; the ones
  in flight at the kill may arrive twice, with the same activity id (as after a crash of
  the daemon itself).
* Children die with the daemon: each reads its stdin pipe, and the kernel closes that pipe
  when the daemon exits, ``kill -9`` included; the child then stops like ``run_forever``.
  On ``stop`` the pool closes the pipes and waits ``grace`` seconds before it kills a child
  that is still finishing attempts (and recovers that child's rows).
* Per-host politeness holds across processes: each child allows ``per_host // processes``
  connections to one host (at least 1), so all together stay within ``per_host`` unless
  there are more processes than that.
* A fan-out is shared: each child claims at most ``BATCH_SIZE`` (64) rows at a time.
* A 410 is reported by the child and handled here, by the pool's ``on_gone``.
* On demand (``idle_exit``, what the daemon uses): a slot starts its child only when a
  queued row is due (each slot after the first only when ``spare_backlog`` more rows are
  due, ``SPARE_BACKLOG``), and the child exits (reporting ``idle``) once it has had nothing to
  send and nothing due for ``idle_exit`` seconds; the slot then waits for due rows again,
  woken by ``wake()`` or, at the latest, by its poll of the queue's next due time.  A
  daemon with nothing to send carries no delivery process (each is 12-22 MB of its own).
* ``spawner`` (``serve``'s layout): children are forked by the supervisor, from its
  image (``forkserver``), instead of started as interpreters; they read and write
  the same pipes, and report ``exit 0`` on stdout, since their status is not ours to read.
  Without ``idle_exit`` the children run from start to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import secrets
import sqlite3
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bridge.config import SiteConfig
from bridge.db import Database
from bridge.federation.delivery import queue
from bridge.federation.delivery.worker import call_in_loop

if TYPE_CHECKING:
    from bridge.federation.delivery.forkserver import ForkClient

log = logging.getLogger("bridge.federation.delivery")

MAX_PROCESSES = 4
GRACE = 8.0
"""Seconds a stopping child may take to finish its attempts before it is killed."""
RESTART_PAUSE = (1.0, 60.0)
"""The first and the longest pause before a child that died is replaced."""
HEALTHY_AFTER = 60.0
"""A child that ran this long before dying is replaced after the first pause again."""
PER_HOST = 4
BATCH_SIZE = 64
"""Rows a child claims at a time: small, so that a fan-out is shared by all the children
(one worker alone claims 500), yet twice its default concurrency, so it never waits."""
IDLE_EXIT = 30.0
"""The daemon's ``idle_exit``: seconds a delivery child may idle before it exits."""
SPARE_BACKLOG = 512
"""On demand, the due rows it takes to start each child after the first (slot ``k``
starts at ``k`` times this many): one child sends 1,500 signed deliveries a second, so
the Accepts of a flood of Follows need no second one, and a fan-out to thousands of
followers starts them all."""
NOT_IMPORTED = ("click", "rich", "pygments", "trio")
"""Optional packages a child never uses but would import: httpx imports its command line
(click, rich, pygments) when they are installed, httpcore its trio support.  Marked
absent in ``sys.modules`` (Python's own way to refuse an import), both fall back; each
child is about 8 MB smaller."""
LAUNCH = (
    f"import sys; sys.modules.update(dict.fromkeys({NOT_IMPORTED!r})); "
    "from bridge.federation.delivery.child import main; main()"
)
"""What a child runs (``python -c``): ``child.main`` without ``NOT_IMPORTED``."""
HEADER = struct.Struct(">Q")
MAX_SPEC_BYTES = 16 * 1024 * 1024


class _Pipe(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...


class Child(Protocol):
    """What the pool uses of a child: ``asyncio.subprocess.Process`` or a
    ``forkserver.ForkedChild``."""

    @property
    def pid(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...
    @property
    def stdin(self) -> _Pipe | None: ...
    @property
    def stdout(self) -> asyncio.StreamReader | None: ...
    async def wait(self) -> int: ...
    def kill(self) -> None: ...


@dataclass(frozen=True)
class ChildSpec:
    """What a child needs to build its worker: everything but the private key, which it
    loads from the site's state folder itself."""

    config: SiteConfig
    owner: str
    poll_interval: float
    log_level: int = logging.INFO
    options: dict[str, Any] = field(default_factory=dict)
    idle_exit: float | None = None
    """Seconds with nothing to send after which the child exits (None: never)."""


def encode(spec: ChildSpec) -> bytes:
    """The spec as the child reads it from its stdin: length, then the pickle."""
    data = pickle.dumps(spec)
    return HEADER.pack(len(data)) + data


def default_processes() -> int:
    """``min(cores, 4)``: the cores this process may run on, at most four."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_PROCESSES))


def _package_root() -> str:
    import bridge

    return str(Path(bridge.__file__).resolve().parent.parent)


class DeliveryPool:
    """``processes`` delivery children on the site's queue, kept alive until ``stop``."""

    def __init__(
        self,
        config: SiteConfig,
        db: Database,
        *,
        processes: int | None = None,
        on_gone: Callable[[str], None] | None = None,
        poll_interval: float = 15.0,
        grace: float = GRACE,
        per_host: int = PER_HOST,
        idle_exit: float | None = None,
        spare_backlog: int = SPARE_BACKLOG,
        spawner: ForkClient | None = None,
        **options: Any,
    ) -> None:
        self.config = config
        self.spawner = spawner
        """Forks the children (``forkserver``, ``serve``'s layout); None: interpreters."""
        self.db = db
        self.processes = processes or default_processes()
        if self.processes < 1:
            raise ValueError("a delivery pool needs at least one process")
        self.on_gone = on_gone
        self.poll_interval = poll_interval
        self.grace = grace
        self.idle_exit = idle_exit
        self.spare_backlog = spare_backlog
        self.options = {
            "batch_size": BATCH_SIZE,
            **options,
            "per_host": max(1, per_host // self.processes),
        }
        self.restarts = 0
        self.started = 0
        """Children started so far (on demand: one per busy spell of each slot)."""
        self._ready: set[int] = set()
        self._idled: set[int] = set()
        self._said_exit: dict[int, int] = {}
        self._work = asyncio.Event()
        self._children: dict[int, Child] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_config(
        cls,
        config: SiteConfig,
        db: Database,
        *,
        on_gone: Callable[[str], None] | None = None,
        **options: Any,
    ) -> DeliveryPool:
        """A pool of the site's ``delivery_processes`` (default ``min(cores, 4)``)."""
        processes = config.delivery_processes or default_processes()
        return cls(config, db, processes=processes, on_gone=on_gone, **options)

    @property
    def ready(self) -> int:
        """How many children have started their worker (and not exited since)."""
        return len(self._ready)

    @property
    def running(self) -> int:
        """How many children are running now."""
        return len(self._children)

    # ---- the worker's shape ------------------------------------------------------------

    def recover(self) -> int:
        """Put every row left in ``sending`` back to ``queued`` (at daemon start only)."""
        count = queue.recover(self.db, time.time())
        if count:
            log.info("recovered %d deliveries left in flight by an earlier run", count)
        return count

    def wake(self) -> None:
        """Ask every child to look at the queue now; safe from any thread."""
        if self._loop is not None:
            call_in_loop(self._loop, self._poke)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Keep ``processes`` children delivering until ``stop`` is set; then stop them."""
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tg:
                for slot in range(self.processes):
                    tg.create_task(self._keep(slot, stop))
        finally:
            self._loop = None

    # ---- children ----------------------------------------------------------------------

    def _poke(self) -> None:
        self._work.set()
        for child in self._children.values():
            stdin = child.stdin
            if stdin is not None and not stdin.is_closing():
                with contextlib.suppress(OSError, RuntimeError):
                    stdin.write(b"w")

    async def _keep(self, slot: int, stop: asyncio.Event) -> None:
        pause = RESTART_PAUSE[0]
        while not stop.is_set():
            if self.idle_exit is not None and not await self._due(stop, slot * self.spare_backlog):
                return
            started = time.monotonic()
            try:
                code = await self._run_child(slot, stop)
            except (OSError, sqlite3.Error) as exc:  # no process, a locked database: later
                log.error("delivery process %d could not run: %s", slot, exc)
                code = None
            if stop.is_set():
                return
            if code == 0 and slot in self._idled:  # it left with nothing to do: not a crash
                self._idled.discard(slot)
                pause = RESTART_PAUSE[0]
                continue
            lived = time.monotonic() - started
            if lived >= HEALTHY_AFTER:
                pause = RESTART_PAUSE[0]
            log.warning(
                "delivery process %d exited (status %s) after %.1f s; restarting in %.0f s",
                slot,
                code,
                lived,
                pause,
            )
            self.restarts += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await stop.wait()
            pause = min(pause * 2, RESTART_PAUSE[1])

    async def _due(self, stop: asyncio.Event, backlog: int = 0) -> bool:
        """Wait until a queued row is due, and at least ``backlog`` rows when more than
        none are asked for (True), or until ``stop`` is set (False)."""
        while not stop.is_set():
            moment = time.time()
            try:
                due = queue.next_due(self.db)
                short = backlog and due is not None and due <= moment
                if short and queue.due_count(self.db, moment, backlog) < backlog:
                    due = moment + self.poll_interval  # not enough due yet: look again
            except sqlite3.Error as exc:  # a locked database: look again at the next poll
                log.warning("delivery: cannot read the queue: %s", exc)
                due = None
            if due is not None and due <= moment:
                return True
            wait = self.poll_interval if due is None else min(due - moment, self.poll_interval)
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(self._work.wait())
            try:
                await asyncio.wait(
                    {stopping, woken}, timeout=max(wait, 0.0), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stopping.cancel()
                woken.cancel()
            self._work.clear()
        return False

    async def _run_child(self, slot: int, stop: asyncio.Event) -> int | None:
        """Run one child until it exits or ``stop``; then recover the rows it held."""
        owner = f"{os.getpid()}-{slot}-{secrets.token_hex(4)}"
        spec = ChildSpec(
            config=self.config,
            owner=owner,
            poll_interval=self.poll_interval,
            log_level=logging.getLogger("bridge").getEffectiveLevel(),
            options=dict(self.options),
            idle_exit=self.idle_exit,
        )
        child = await self._start_child()
        assert child.stdin is not None and child.stdout is not None
        self._children[slot] = child
        self.started += 1
        reader = asyncio.create_task(self._read(slot, child.stdout))
        exited = asyncio.create_task(child.wait())
        stopping = asyncio.create_task(stop.wait())
        try:
            child.stdin.write(encode(spec))
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():  # stop: close the pipe; the child finishes and exits
                child.stdin.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.grace):
                        await asyncio.shield(exited)
        finally:
            stopping.cancel()
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
            exited.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(1.0):  # the last lines (a 410) are still handled
                    await reader
            reader.cancel()
            self._children.pop(slot, None)
            self._ready.discard(slot)
            count = queue.recover(self.db, time.time(), owner=owner)
            if count:
                log.info("recovered %d deliveries held by delivery process %d", count, slot)
        # A forked child's status is what it said last (``exit 0``); -1 if it said nothing.
        return self._said_exit.pop(slot, child.returncode)

    async def _start_child(self) -> Child:
        if self.spawner is not None:
            return await self.spawner.spawn()
        path = os.pathsep.join(filter(None, [_package_root(), os.environ.get("PYTHONPATH")]))
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LAUNCH,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    async def _read(self, slot: int, stdout: asyncio.StreamReader) -> None:
        """Handle the child's lines: ``ready`` and ``gone <inbox>``."""
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # a line over the stream's limit: not ours, skip it
                continue
            if not line:
                return
            text = line.decode("utf-8", errors="replace").strip()
            if text == "ready":
                self._ready.add(slot)
            elif text == "idle":
                self._idled.add(slot)
            elif text.startswith("exit ") and text[5:].lstrip("-").isdigit():
                self._said_exit[slot] = int(text[5:])
            elif text.startswith("gone ") and self.on_gone is not None:
                try:
                    self.on_gone(text[5:])
                except Exception:  # the caller's cleanup must not stop delivery
                    log.exception("on_gone(%s) failed", text[5:])
