"""Fixtures for end-to-end tests: a real daemon (``blog``) and Fedify peers."""

from tests.e2e.blog import blog  # noqa: F401
from tests.interop.fedify import fedify_peer, fedify_peers  # noqa: F401
