"""Fixtures shared by the federation tests."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bridge import config as config_mod
from bridge import keys as keymod
from bridge.db import Database
from bridge.federation.context import Context, make_context


@pytest.fixture
def ctx(site: Path) -> Context:
    """The sample site's services, with any network access failing the test."""
    config = config_mod.load(site)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected network access: {request.url}")

    db = Database(config.db_path)
    return make_context(
        config, db, keymod.load(config.state_dir), transport=httpx.MockTransport(refuse)
    )
