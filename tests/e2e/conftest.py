"""Fixtures for end-to-end tests: a real daemon (``blog``) and Fedify peers."""

from typing import Any

from tests.e2e.blog import blog  # noqa: F401
from tests.interop.fedify import fedify_peer, fedify_peers  # noqa: F401

# Figures the page-quality tests measure (axe-core counts, Lighthouse scores), printed at
# the end of every run, CI's included, as the security suite prints its table.
AUDIT_LINES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if AUDIT_LINES:
        terminalreporter.section("page quality: axe-core and Lighthouse")
        for line in AUDIT_LINES:
            terminalreporter.write_line(line)
