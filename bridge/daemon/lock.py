"""The daemon's lock file: one delivering daemon per site, and a sign that one runs.

``indiebridge serve`` holds an exclusive ``flock`` on ``.indiebridge/daemon.lock`` while it
runs; ``publish`` (and auto_publish in ``indiebridge watch``) sees it held and leaves the
queue to the daemon's worker, and moderation commands leave the rebuild to the daemon.
The kernel drops the lock when the process dies, so a crash never leaves a stale lock.

In ``serve``'s production layout the supervisor takes the lock (``DaemonLock.hold``)
before it forks anything, so the lock is held before any HTTP worker answers; the
background process, which delivers and processes the inbox, adopts the supervisor's lock
instead of taking one (``acquire``), and every other child closes its inherited copy
(``let_go``).  When the background process took it itself, a moderation command run just
after ``serve`` answered found no lock and rebuilt the site on its own, without the
daemon's ``--drafts``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import ClassVar

from bridge.config import SiteConfig


class DaemonLock:
    """An exclusive lock file: `publish` sees a running daemon and leaves delivery to it."""

    _held: ClassVar[dict[str, int]] = {}
    """Path -> descriptor of the lock this process's supervisor took before forking it
    (``hold``); a forked process shares that lock through the inherited descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None
        self._adopted = False

    @classmethod
    def hold(cls, path: Path) -> bool:
        """Take the lock for this process and every process it forks from now on (the
        supervisor of ``serve``); False when another daemon holds it."""
        lock = cls(path)
        if not lock.acquire():
            return False
        assert lock.fd is not None
        cls._held[str(path)] = lock.fd
        return True

    @classmethod
    def let_go(cls) -> None:
        """In a forked process that runs none of the daemon's work (an HTTP worker, the
        rebuild process, a delivery child): close the inherited descriptors. The lock stays
        held by the supervisor and adopted by the background process."""
        for fd in cls._held.values():
            os.close(fd)
        cls._held = {}

    def acquire(self) -> bool:
        inherited = DaemonLock._held.get(str(self.path))
        if inherited is not None:  # taken by the process that forked this one
            self.fd, self._adopted = inherited, True
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return True

    def release(self) -> None:
        """Let the lock go; an adopted one stays with the supervisor, which holds it until
        ``serve`` ends (unlocking the shared descriptor would unlock it for all)."""
        if self.fd is not None and not self._adopted:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
        self.fd = None

    @staticmethod
    def held(path: Path) -> bool:
        if not path.exists():
            return False
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


def lock_path(config: SiteConfig) -> Path:
    return config.state_dir / "daemon.lock"


def daemon_running(config: SiteConfig) -> bool:
    """True while an ``indiebridge serve`` of this site runs (on this machine)."""
    return DaemonLock.held(lock_path(config))
