"""``serve``'s supervisor (``bridge.daemon.processes``): forks one process per role,
restarts one that dies (giving up when they keep dying), forks the delivery children the
background process's pool asks for, and on SIGTERM or Ctrl+C stops them all.

It runs no thread and no event loop and holds no database connection, so a process it
forks starts with one thread and no lock held.  It waits for its children with
``os.wait``, or, when it also forks delivery children, with one selector over the fork
socket and a pidfd of every child, so that each child is reaped when it exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from bridge.federation.delivery.forkserver import ForkServer

log = logging.getLogger("indiebridge.daemon")

RESTART_DELAY = 0.5
"""Seconds before a process that died is started again."""
MAX_RESTARTS = 10
"""Restarts within ``RESTART_WINDOW`` seconds after which ``serve`` gives up."""
RESTART_WINDOW = 60.0
STOP_TIMEOUT = 15.0
SIGNALS = {signal.SIGINT, signal.SIGTERM}
"""What stops ``serve``; a child sets them back to their defaults."""


class _Stop(Exception):
    """SIGINT or SIGTERM reached the supervisor."""


class _GaveUp(Exception):
    """Processes kept dying: ``serve`` stops."""


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop


def _die_with_parent(parent: int, role: str) -> None:
    """Linux: the kernel kills this process when the supervisor dies, even by kill -9.
    The process is also named after its role (``ib-http-1``, ``ib-background``: what
    ``ps -o comm``, ``top`` and ``/proc/PID/comm`` show)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
            libc.prctl(15, f"ib-{role}".encode()[:15])  # PR_SET_NAME
    if os.getppid() != parent:  # the supervisor died before the line above ran
        os._exit(1)


class Supervisor:
    """Forks one process per role and keeps each running until told to stop."""

    def __init__(
        self,
        roles: dict[str, Callable[[], None]],
        forks: ForkServer | None = None,
        spawn: Callable[[], None] | None = None,
    ) -> None:
        """``forks`` and ``spawn``: the supervisor also forks the delivery children, each
        running ``spawn``, for the background process's pool (``forkserver``)."""
        self.roles = roles
        self.forks = forks
        self.spawn = spawn
        self.pids: dict[int, str] = {}
        self.restarts: deque[float] = deque()
        self.watched: selectors.BaseSelector | None = None

    def run(self) -> int:
        """Run until SIGINT/SIGTERM (0) or until processes keep dying (1)."""
        from bridge.daemon import events  # here: importing this module stays light

        previous = {sig: signal.signal(sig, _raise_stop) for sig in SIGNALS}
        try:
            started = {role: self._start(role) for role in self.roles}
            events.event(
                "processes",
                "processes: " + ", ".join(f"{role} {pid}" for role, pid in started.items()),
                **{role: pid for role, pid in started.items()},
            )
            self._watch()
        except _Stop:
            return 0
        except _GaveUp:
            return 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a second Ctrl+C ends it at once
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self) -> NoReturn:
        if self.forks is not None and self.spawn is not None:
            self._watch_and_fork(self.forks, self.spawn)
        while True:
            pid, status = os.wait()
            self._ended(pid, status)

    def _watch_and_fork(self, forks: ForkServer, spawn: Callable[[], None]) -> NoReturn:
        """``_watch`` that also answers the pool's requests for delivery children: one
        selector over the fork socket and a pidfd of every child (roles and delivery
        children alike, so each is reaped when it exits)."""
        self.watched = watched = selectors.DefaultSelector()
        watched.register(forks.server_end, selectors.EVENT_READ)
        for pid in self.pids:
            watched.register(os.pidfd_open(pid), selectors.EVENT_READ, pid)
        try:
            self._serve(watched, forks, spawn)
        finally:
            self._unwatch()

    def _unwatch(self) -> None:
        """Close the loop's epoll and pidfds: when it ends, and in every child forked from
        it (a restarted role, a delivery child), since a fork keeps descriptors marked
        close-on-exec."""
        if self.watched is not None:
            for key in list(self.watched.get_map().values()):
                if key.data is not None:
                    os.close(key.fd)
            self.watched.close()
            self.watched = None

    def _serve(
        self, watched: selectors.BaseSelector, forks: ForkServer, spawn: Callable[[], None]
    ) -> NoReturn:
        def delivery_child() -> None:
            _as_child()
            self._unwatch()
            spawn()

        while True:
            for key, _ in watched.select():
                if key.data is None:
                    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # as in ``_start``
                    try:
                        forked = forks.handle(delivery_child)
                    finally:
                        signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
                    if forked is not None:
                        watched.register(forked[1], selectors.EVENT_READ, forked[0])
                    continue
                watched.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(key.data, 0)
                new = self._ended(key.data, status)
                if new is not None:
                    watched.register(os.pidfd_open(new), selectors.EVENT_READ, new)

    def _ended(self, pid: int, status: int) -> int | None:
        """A child exited: a role's is started again (its new pid returned), unless
        processes keep dying (``_GaveUp``); a delivery child's is only reaped (None)."""
        from bridge.daemon import events

        role = self.pids.pop(pid, None)
        if role is None:
            return None
        moment = time.monotonic()
        self.restarts.append(moment)
        while self.restarts and self.restarts[0] < moment - RESTART_WINDOW:
            self.restarts.popleft()
        how = _how_it_ended(status)
        if len(self.restarts) > MAX_RESTARTS:
            log.error("%s process %d %s; too many restarts, stopping", role, pid, how)
            raise _GaveUp
        time.sleep(RESTART_DELAY)
        new = self._start(role)
        events.event(
            "process-restarted",
            f"{role} process {pid} {how}; restarted as {new}",
            role=role,
            pid=new,
            previous=pid,
        )
        return new

    def _start(self, role: str) -> int:
        parent = os.getpid()
        # Signals wait until the child has its own handlers and the parent knows the pid.
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._unwatch()
                _child(role, self.roles[role], parent)
            self.pids[pid] = role
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)
        return pid

    def _stop_all(self) -> None:
        for pid in list(self.pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.pids and time.monotonic() < deadline:
            for pid in list(self.pids):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.pids.pop(pid, None)
            time.sleep(0.05)
        for pid, role in list(self.pids.items()):
            log.warning("%s process %d did not stop within %g s; killed", role, pid, STOP_TIMEOUT)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.pids.clear()


def _how_it_ended(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"


def _as_child() -> None:
    """In any process the supervisor forks (signals blocked, its own handlers installed):
    the default handlers for ``SIGNALS``, then unblock them."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SIGNALS)


def _child(role: str, target: Callable[[], None], parent: int) -> NoReturn:
    code = 1
    try:
        _as_child()
        _die_with_parent(parent, role)
        target()
        code = 0
    except KeyboardInterrupt:
        code = 0
    except SystemExit as exc:  # uvicorn exits 3 when its app fails to start
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # a bug: logged, and the supervisor restarts the role
        log.exception("%s process failed: %s", role, exc)
    finally:
        logging.shutdown()
        os._exit(code)
