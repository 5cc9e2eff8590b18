"""The sample blog builds to exactly the committed bytes, and the build side stays light.

The manifest was first written from the flat layout (before ``bridge/`` moved into
sub-packages) and matched the re-laid-out tree byte for byte. An intended change to the
output updates it with ``python -m tests.sample_manifest --write``; the diff then names every
file that changed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.sample_manifest import MANIFEST, build_sample, manifest


def test_sample_build_matches_the_committed_digest_manifest(tmp_path: Path) -> None:
    expected = MANIFEST.read_text(encoding="utf-8").splitlines()
    actual = manifest(build_sample(tmp_path)).splitlines()
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    assert (missing, extra) == ([], []), (
        "the sample's output changed; if intended, run `python -m tests.sample_manifest --write`"
    )


# Modules the build must never load: the network client, the HTTP server stack and the
# daemon's side of the house.
_SERVER_SIDE = (
    "httpx",
    "starlette",
    "uvicorn",
    "anyio",
    "bridge.daemon",
    "bridge.federation",
    "bridge.conversations",
    "bridge.cli",
)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_the_build_side_loads_no_network_or_daemon_module() -> None:
    loaded = _loaded_after("import bridge.site, bridge.site.build")
    leaked = sorted(
        m
        for m in loaded
        if m.split(".")[0] in _SERVER_SIDE
        or any(m == p or m.startswith(p + ".") for p in _SERVER_SIDE)
    )
    assert leaked == []
    # The check can fail: the daemon side does load them.
    assert "httpx" in _loaded_after("import bridge.federation.fetch")
