"""Fixtures of the deploy tests that run real web servers: one throwaway certificate
authority and one network namespace per test module (``stack.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.stack import DAEMON_HOSTS, Namespace, make_certificates


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certificates(tmp_path_factory.mktemp("ca"), DAEMON_HOSTS)


@pytest.fixture(scope="module")
def ns(tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Path]) -> Iterator[Namespace]:
    namespace = Namespace(tmp_path_factory.mktemp("ns"), DAEMON_HOSTS, certs["ca"])
    yield namespace
    namespace.close()
