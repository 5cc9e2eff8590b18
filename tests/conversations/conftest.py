"""Fixtures of the conversation tests: ``harness_factory`` and ``h`` (see
``fediverse_harness``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import config as config_mod
from bridge.db import Database
from bridge.federation.context import make_context
from bridge.keys import load as load_keys
from bridge.site import build as site_mod
from tests.conversations.fediverse_harness import ALICE, BOB, MALLORY, Harness, Remote


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def harness_factory(make_site: Callable[..., Path]) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(remote: Remote | None = None, **overrides: Any) -> Harness:
        """A harness on a fresh site; ``remote`` serves the fediverse (default ``Remote()``)."""
        folder = make_site({"allow_private_addresses": True, **overrides})
        shutil.rmtree(folder / "content" / "comments")  # start without the site's own reply
        config = config_mod.load(folder)
        site_mod.build(config)
        remote = remote or Remote()
        ctx = make_context(
            config,
            Database(config.db_path),
            load_keys(config.state_dir),
            transport=httpx.MockTransport(remote.handler),
        )
        h = Harness(ctx, remote, folder)
        h.actor(ALICE, "Alice")
        h.actor(BOB, "Bob")
        h.actor(MALLORY, "Mallory")
        made.append(h)
        return h

    yield make
    for h in made:
        h.ctx.db.close()


@pytest.fixture
def h(harness_factory: Callable[..., Harness]) -> Harness:
    return harness_factory()
