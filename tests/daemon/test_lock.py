"""The daemon's lock file (``bridge.daemon.lock``): ``serve``'s supervisor takes it before
it forks, and the process that runs the daemon adopts it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.daemon.lock import DaemonLock


def other_process_can_take(path: Path) -> bool:
    """Whether a process that was not forked by the holder can take the lock."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except OSError:\n"
        "    sys.exit(1)\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], check=False).returncode == 0


def test_a_lock_held_before_forking_is_adopted_and_outlives_a_childs_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DaemonLock, "_held", {})
    path = tmp_path / "daemon.lock"
    assert DaemonLock.hold(path)
    try:
        assert DaemonLock.held(path) and not other_process_can_take(path)
        pid = os.fork()
        if pid == 0:  # the background process: adopts the lock, then stops
            lock = DaemonLock(path)
            adopted = lock.acquire() and lock.fd == DaemonLock._held[str(path)]
            lock.release()
            os._exit(0 if adopted else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        pid = os.fork()
        if pid == 0:  # an HTTP worker: closes its copy, and holds nothing after
            DaemonLock.let_go()
            os._exit(0 if DaemonLock(path).acquire() is False else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        # The children's release, close and exit leave the lock with the supervisor.
        assert DaemonLock.held(path) and not other_process_can_take(path)
    finally:
        os.close(DaemonLock._held[str(path)])
    assert other_process_can_take(path)


def test_without_a_held_lock_a_second_daemon_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DaemonLock, "_held", {})
    path = tmp_path / "daemon.lock"
    first = DaemonLock(path)
    assert first.acquire()
    assert not DaemonLock(path).acquire()  # another description: the kernel refuses it
    assert not DaemonLock.hold(path)
    first.release()
    assert not DaemonLock.held(path)
