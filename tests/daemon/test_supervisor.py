"""``bridge.daemon.supervisor``: a role that keeps dying makes ``serve`` give up, with and
without the loop that also forks delivery children."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.federation.delivery import forkserver

ROOT = Path(__file__).resolve().parents[2]

GIVE_UP = """
import sys
from bridge.daemon import supervisor
from bridge.federation.delivery.forkserver import ForkServer
supervisor.RESTART_DELAY = 0.01
forks = ForkServer() if sys.argv[1] == "forks" else None
spawn = (lambda: None) if forks is not None else None
code = supervisor.Supervisor({"dying": lambda: None}, forks=forks, spawn=spawn).run()
print(code)
"""


@pytest.mark.parametrize("layout", ["wait", "forks"])
def test_a_role_that_keeps_dying_makes_the_supervisor_give_up(layout: str) -> None:
    if layout == "forks" and not forkserver.supported():
        pytest.skip("Linux fork server only")
    done = subprocess.run(
        [sys.executable, "-c", GIVE_UP, layout],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=True,
    )
    assert done.stdout.strip() == "1"
    assert "too many restarts, stopping" in done.stderr
