"""Delivery children forked from the supervisor's image instead of started as interpreters.

A delivery child started with ``python -c`` (``pool.LAUNCH``) imports httpx, the
signatures and the worker itself: about 22 MB of its own, shared with nothing.  ``serve``
(``bridge.daemon.processes``) has already imported all of it in its supervisor, before
it forks anything and after ``gc.freeze()``; a child forked from that image shares those
pages and owns only what it writes.

The background process, which runs the ``DeliveryPool``, cannot fork the children itself:
it has threads (``asyncio.to_thread``, SQLite), open database connections and an event
loop, and a fork copies none of the threads but all of their locks and descriptors.  So
the supervisor, which has none of these, forks them: the pool asks it for each child
(``ForkClient.spawn``) and the supervisor answers (``ForkServer.handle``) from the loop in
which it watches its processes.  (The supervisor once forked a separate fork server
process for this; serving the requests itself saves that process, about 2 MB of PSS.)

Why a forked child is safe (each point is checked by ``tests/federation/test_forkserver.py``
and ``tests/daemon/test_processes.py``):

* **threads and locks:** the supervisor runs no thread and no event loop, so each child
  starts with one thread and no lock held;
* **descriptors:** a child closes the server's end of the socket; the supervisor's
  ``target`` closes what else it holds (the listening socket, the wake and build pipes,
  the pool's end of the socket, the daemon lock's descriptor, and the epoll and pidfds of
  the loop it forked from, which a fork keeps although they are close-on-exec).  The
  child keeps only stderr and the two pipes it was given (its stdin and stdout, exactly
  as an interpreter started by the pool has them); it opens its own database connection;
* **database:** the supervisor holds no connection (``processes``), so none is inherited;
* **random state:** Python reseeds ``random`` in a forked child (``os.register_at_fork``);
  ``secrets`` reads the kernel;
* **lifetime:** a child reads its stdin as before, so it stops when the background
  process closes that pipe or dies (``kill -9`` included); the supervisor reaps it.

The exchange is one ``SOCK_SEQPACKET`` socket pair the supervisor creates before forking:
the pool sends ``spawn <token>`` with the child's two pipe ends (``SCM_RIGHTS``); the
server answers ``pid <token> <pid>`` with a pidfd of the child, which the pool waits on and
signals (no pid can be reused under it).  A forked child's exit status is not the pool's
to read (it is not its parent), so the child reports ``exit 0`` on stdout when it ends
normally (``child.main``); anything else counts as a crash, as before.

Linux only (pidfds, ``SOCK_SEQPACKET``): elsewhere ``supported()`` is false and the pool
starts interpreters as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Callable
from typing import NoReturn

SPAWN_TIMEOUT = 10.0
"""Seconds the pool waits for the fork server to answer a ``spawn``."""
UNKNOWN = -1
"""A forked child's ``returncode`` once it has exited: its status is not ours to read."""


def supported() -> bool:
    """Whether this system has what the fork server needs (Linux 5.3 or later)."""
    return (
        sys.platform.startswith("linux")
        and hasattr(os, "pidfd_open")
        and hasattr(signal, "pidfd_send_signal")
        and hasattr(socket, "SOCK_SEQPACKET")
    )


class ForkServer:
    """Both ends of the socket pair: the server's (``handle``, in the supervisor) and the
    pool's (``client``, in the background process)."""

    def __init__(self) -> None:
        self.server_end, self.client_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.server_end.set_inheritable(False)
        self.client_end.set_inheritable(False)

    def close(self) -> None:
        """Close both ends (a process that uses neither)."""
        self.server_end.close()
        self.client_end.close()

    def client(self) -> ForkClient:
        """The pool's side, in the background process (the server's end is closed)."""
        self.server_end.close()
        return ForkClient(self.client_end)

    def handle(self, target: Callable[[], None]) -> tuple[int, int] | None:
        """Answer the one ``spawn`` waiting on the server's end (call when it is readable):
        fork a child running ``target`` (``child.main`` after the caller's clean-up) and
        send the pool its pid and a pidfd.  Returns the child's pid and a pidfd of it for
        the caller, which is the child's parent and must reap it; None for a malformed
        request.  Raises ``EOFError`` once the pool's end is closed."""
        sock = self.server_end
        msg, fds, _, _ = socket.recv_fds(sock, 256, 2)
        if not msg:
            raise EOFError("the pool's end of the fork server's socket is closed")
        words = msg.split()
        if len(words) != 2 or words[0] != b"spawn" or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            return None
        pid = os.fork()
        if pid == 0:
            _forked(sock, fds[0], fds[1], target)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        # The pool gone (its process died): the child reads the end of its stdin and exits.
        with contextlib.suppress(OSError):
            socket.send_fds(sock, [b"pid %s %d" % (words[1], pid)], [pidfd])
        return pid, pidfd


def _forked(server: socket.socket, stdin: int, stdout: int, target: Callable[[], None]) -> NoReturn:
    """A new delivery child: the given pipes as stdin and stdout, then ``target``."""
    code = 1
    try:
        server.close()
        os.dup2(stdin, 0)
        os.dup2(stdout, 1)
        os.close(stdin)
        os.close(stdout)
        # New file objects: the inherited ones may hold the supervisor's buffers.
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - until _exit
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        target()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # a bug: logged; the pool sees a crash and starts another
        logging.getLogger("bridge.federation.delivery").exception("delivery child: %s", exc)
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(code)


class ForkedChild:
    """A child the fork server started, with ``asyncio.subprocess.Process``'s shape (what
    ``DeliveryPool`` uses of it: ``pid``, ``stdin``, ``stdout``, ``wait``, ``kill``)."""

    def __init__(
        self,
        pid: int,
        pidfd: int,
        stdin: asyncio.WriteTransport,
        stdout: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._pidfd = pidfd
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, self._on_exit, loop)

    def _on_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        self.returncode = UNKNOWN
        if not self._exited.done():
            self._exited.set_result(None)

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        return UNKNOWN

    def kill(self) -> None:
        if self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


class ForkClient:
    """Asks the fork server for children (one request at a time)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._lock = asyncio.Lock()

    async def spawn(self) -> ForkedChild:
        """A new delivery child, its stdin and stdout connected to this process."""
        loop = asyncio.get_running_loop()
        child_in, to_child = os.pipe()
        from_child, child_out = os.pipe()
        try:
            async with self._lock:
                pid, pidfd = await self._ask(loop, child_in, child_out)
        except BaseException:
            os.close(to_child)
            os.close(from_child)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader),
            open(from_child, "rb", buffering=0),  # noqa: SIM115
        )
        writer, _ = await loop.connect_write_pipe(
            asyncio.Protocol,
            open(to_child, "wb", buffering=0),  # noqa: SIM115 - the transport closes it
        )
        return ForkedChild(pid, pidfd, writer, reader)

    async def _ask(
        self, loop: asyncio.AbstractEventLoop, child_in: int, child_out: int
    ) -> tuple[int, int]:
        token = secrets.token_hex(8).encode()
        socket.send_fds(self.sock, [b"spawn " + token], [child_in, child_out])
        async with asyncio.timeout(SPAWN_TIMEOUT):
            while True:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(self.sock.fileno(), _settle, ready)
                try:
                    await ready
                finally:
                    loop.remove_reader(self.sock.fileno())
                try:
                    msg, fds, _, _ = socket.recv_fds(self.sock, 256, 1)
                except BlockingIOError:
                    continue
                words = msg.split()
                if len(words) == 3 and words[0] == b"pid" and words[1] == token and fds:
                    return int(words[2]), fds[0]
                for fd in fds:  # a late answer to a request that timed out: not ours
                    os.close(fd)
