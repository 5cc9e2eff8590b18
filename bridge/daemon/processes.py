"""``indiebridge serve``'s processes: HTTP workers on one socket, one background process.

The layout (docs/architecture.md, "Processes"):

* the **supervisor** (the process ``serve`` started in; ``bridge.daemon.supervisor``)
  binds the listening socket once, forks the other processes, restarts one that dies,
  and on SIGTERM or Ctrl+C stops them all.  It holds no database connection and runs no
  event loop;
* **N HTTP workers** (``serve --workers N``, default ``default_workers()``) accept on the
  inherited socket (the kernel hands each connection to one of them) and only answer
  requests: pages, the inbox's receive path, webmention receipt, ``/interact``;
* **one background process** runs everything stateful: the inbox processor, webmention
  verification, the delivery worker, the moderation poller, the feed bridge;
* **one rebuild process** rebuilds the site when comments change, told what changed by the
  background process (``bridge.daemon.rebuild_process``);
* **delivery children**, when delivery runs in child processes: the supervisor forks them
  too, when the background process's ``DeliveryPool`` asks, from the same loop in which it
  watches the others (``bridge.federation.delivery.forkserver``, ``delivery_child``).

Wake-ups cross processes through one pipe the supervisor creates before forking
(``WakePipe``): after an HTTP worker has committed a row it writes one byte naming what
to look at (``i`` inbox, ``w`` webmentions, ``d`` deliveries, ``b`` a rebuild); the
background process reads the pipe from its event loop.  A write never blocks: when the
pipe is full the write is dropped, and the reader, finding a full pipe's worth of bytes,
wakes every worker; every background loop also polls the database once a
``poll_interval``, so no wake-up is lost.  Each child asks the
kernel to kill it when the supervisor dies (``PR_SET_PDEATHSIG``), so a ``kill -9`` of
``serve`` leaves no orphan holding the port.

Priority: the background process runs at ``nice +5`` (``BACKGROUND_NICE``; its delivery
children lower still).  On a small server it needs several times the HTTP workers' CPU
(processing, rebuilds), and a request waiting for a core behind it is what the inbox's
p99 is made of.  With spare cores nothing changes; under a steady flood the background
process still gets whatever the workers leave, about as much over a second as before,
only after the requests that are waiting.

Memory: before it forks, the supervisor imports and freezes what the children share, so
they share those pages (``bridge.daemon.preload``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from bridge.config import SiteConfig
from bridge.daemon.lock import DaemonLock, lock_path
from bridge.daemon.preload import preload
from bridge.daemon.supervisor import SIGNALS, Supervisor

if TYPE_CHECKING:
    from bridge.daemon.rebuild_process import BuildPipe
    from bridge.federation.delivery.forkserver import ForkServer

log = logging.getLogger("indiebridge.daemon")

MAX_WORKERS = 4
WAKE_KINDS = frozenset("iwdb")
BACKGROUND_NICE = 5
"""Added to the background process's scheduling priority (module docstring)."""


def default_workers() -> int:
    """HTTP workers when ``--workers`` is not given: one per core, at most ``MAX_WORKERS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


class WakePipe:
    """One pipe, many writers (HTTP workers), one reader (the background process)."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        try:
            self.capacity = fcntl.fcntl(self.read_fd, fcntl.F_GETPIPE_SZ)
        except (OSError, AttributeError):  # not Linux: the usual size
            self.capacity = 65_536

    def send(self, kind: str) -> None:
        """Wake the background process for ``kind``; never blocks, never raises."""
        # A full pipe means the reader has bytes waiting: it will wake and poll anyway.
        with contextlib.suppress(OSError):
            os.write(self.write_fd, kind.encode("ascii"))

    def drain(self) -> set[str]:
        """Every kind written since the last call; all of them when the pipe was full
        (a write may have been dropped then)."""
        seen: set[str] = set()
        total = 0
        while True:
            try:
                chunk = os.read(self.read_fd, 4096)
            except BlockingIOError:
                break
            if not chunk:
                break
            total += len(chunk)
            seen.update(chunk.decode("ascii", "replace"))
        return set(WAKE_KINDS) if total >= self.capacity else seen & WAKE_KINDS


# ---- the roles ---------------------------------------------------------------------------


def http_worker(
    config: SiteConfig,
    sock: socket.socket,
    pipe: WakePipe,
    workers: int,
    drafts: bool,
    forks: ForkServer | None = None,
) -> None:
    """One HTTP worker: the daemon's routes under uvicorn, on the shared socket."""
    import uvicorn

    from bridge.daemon.app import create_app
    from bridge.federation import limits

    os.close(pipe.read_fd)
    if forks is not None:
        forks.close()
    DaemonLock.let_go()
    app = limits.HTTPLimits(create_app(config, drafts=drafts, notify=pipe.send, workers=workers))
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", proxy_headers=True, **limits.uvicorn_options())
    )
    server.run(sockets=[sock])


def background(
    config: SiteConfig,
    sock: socket.socket,
    pipe: WakePipe,
    drafts: bool,
    builds: BuildPipe,
    forks: ForkServer | None = None,
) -> None:
    """The background process: every worker of the daemon but rebuilds, no HTTP server."""
    sock.close()
    os.close(pipe.write_fd)
    with contextlib.suppress(OSError, AttributeError):  # not Unix: the same priority
        os.nice(BACKGROUND_NICE)
    asyncio.run(_background(config, pipe, drafts, builds, forks))


def delivery_child(
    sock: socket.socket, pipe: WakePipe, builds: BuildPipe, forks: ForkServer
) -> None:
    """A delivery child, forked by the supervisor for the background process's pool
    (``bridge.federation.delivery.forkserver``; its stdin and stdout are already the
    pool's pipes): it drops what the supervisor holds (the listening socket, the pipes,
    the pool's end of the fork socket, the daemon lock) and runs below the background
    process's priority, as a child that process started would.  (The supervisor has
    already set its signals back to their defaults.)"""
    sock.close()
    for fd in (pipe.read_fd, pipe.write_fd, builds.read_fd, builds.write_fd):
        os.close(fd)
    forks.close()  # the server's end is closed already; closing it again is a no-op
    DaemonLock.let_go()
    with contextlib.suppress(OSError, AttributeError):
        os.nice(BACKGROUND_NICE)
    from bridge.federation.delivery import child

    child.main(forked=True)


async def _background(
    config: SiteConfig, pipe: WakePipe, drafts: bool, builds: BuildPipe, forks: ForkServer | None
) -> None:
    from bridge.daemon.app import Daemon

    spawner = forks.client() if forks is not None else None
    daemon = Daemon(config, drafts=drafts, spawner=spawner)
    daemon.rebuilder.forward_to(builds)  # the rebuild process builds (rebuild_process)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(pipe.read_fd, lambda: daemon.wake(pipe.drain()))
    await daemon.start()
    log.debug("background process %d started", os.getpid())
    try:
        await stop.wait()
    finally:
        loop.remove_reader(pipe.read_fd)
        await daemon.shutdown()


def _rebuilds(
    config: SiteConfig,
    sock: socket.socket,
    pipe: WakePipe,
    builds: BuildPipe,
    drafts: bool,
    forks: ForkServer | None = None,
) -> None:
    """The rebuild process (``bridge.daemon.rebuild_process``), below the background's
    priority (``rebuild_process.NICE``)."""
    from bridge.daemon.rebuild_process import run_rebuilds

    sock.close()
    os.close(pipe.read_fd)
    os.close(pipe.write_fd)
    if forks is not None:
        forks.close()
    DaemonLock.let_go()
    run_rebuilds(config, builds, drafts)


def serve(config: SiteConfig, sock: socket.socket, *, workers: int, drafts: bool) -> int:
    """Run ``workers`` HTTP workers and the background process until stopped."""
    # Held before any child answers: a command run as soon as the site answers must see
    # the daemon (``bridge.daemon.lock``); without it, the background process warns.
    DaemonLock.hold(lock_path(config))
    preload(config)
    from bridge.daemon import services
    from bridge.daemon.rebuild_process import BuildPipe
    from bridge.federation.delivery import forkserver

    pipe, builds = WakePipe(), BuildPipe()
    use_forks = forkserver.supported() and services.delivery_children(config)
    forks = forkserver.ForkServer() if use_forks else None
    roles: dict[str, Callable[[], None]] = {}
    roles["background"] = lambda: background(config, sock, pipe, drafts, builds, forks)
    roles["rebuild"] = lambda: _rebuilds(config, sock, pipe, builds, drafts, forks)
    for n in range(workers):
        roles[f"http-{n + 1}"] = lambda: http_worker(config, sock, pipe, workers, drafts, forks)
    spawn = (lambda: delivery_child(sock, pipe, builds, forks)) if forks is not None else None
    supervisor = Supervisor(roles, forks=forks, spawn=spawn)
    code = supervisor.run()
    sock.close()
    if forks is not None:
        forks.close()
    return code
