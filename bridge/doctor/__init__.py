"""`indiebridge doctor`: check a deployed blog from the outside, as a fediverse server would.

``discovery``, ``documents`` and ``endpoints`` hold the pure checks (one ``Finding`` each,
from responses already fetched), ``probe`` fetches what they need, ``findings`` formats
the report and the exit status.
This package may use ``bridge.site`` and ``bridge.federation`` but never the daemon: it
only speaks HTTP to a deployment, like any remote server.
"""

from __future__ import annotations

import httpx

from bridge.doctor.findings import Finding, as_json, exit_status
from bridge.doctor.probe import diagnose, diagnose_url, make_client
from bridge.doctor.responses import Expect

__all__ = [
    "Expect", "Finding", "as_json", "diagnose", "diagnose_url", "exit_status", "run", "run_url"
]  # fmt: skip


async def run(expect: Expect, auth: httpx.Auth | None = None) -> list[Finding]:
    """Every check against the live deployment, with a fresh client."""
    async with make_client() as client:
        return await diagnose(expect, client, auth=auth)


async def run_url(base_url: str) -> list[Finding]:
    """Every check against a site known only by its address (see ``diagnose_url``)."""
    async with make_client() as client:
        return await diagnose_url(base_url, client)
