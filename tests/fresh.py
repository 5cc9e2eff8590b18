"""Code run in a fresh interpreter, as a command starts: nothing imported yet.

What a command imports, and so what it costs, depends on what the process loaded before;
a test of that runs its code here, with this checkout first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_json(code: str, *args: str) -> dict[str, object]:
    """Run ``code`` with ``args`` as ``sys.argv[1:]``; its last line of output, as JSON."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    ).stdout
    result: dict[str, object] = json.loads(out.splitlines()[-1])
    return result
