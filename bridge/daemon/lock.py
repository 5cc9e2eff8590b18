"""The daemon's lock file: one delivering daemon per site, and a sign that one runs.

``indiebridge serve`` holds an exclusive ``flock`` on ``.indiebridge/daemon.lock`` while it
runs; ``publish`` (and auto_publish in ``indiebridge watch``) sees it held and leaves the
queue to the daemon's worker, and moderation commands leave the rebuild to the daemon.
The kernel drops the lock when the process dies, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bridge.config import SiteConfig


class DaemonLock:
    """An exclusive lock file: `publish` sees a running daemon and leaves delivery to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
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
        if self.fd is not None:
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
