"""Bounds on what an unverified request can make us fetch and keep.

A signature names its ``keyId``; the key has to be fetched before the signature can be
checked, so anyone can make the daemon fetch a URL of their choice.  Two bounds hold that
in check (tests in tests/security/test_inbox_unverified.py):

* ``FetchBudget``: at most ``per_minute`` key fetches per origin (scheme, host and port) in
  any sliding minute, refreshes included, and at most one refresh per key id per
  ``refresh_interval`` seconds.  Past it the lookup fails with a 429 and nothing is fetched.
  A key just fetched is not refreshed within that interval either: a signature that fails
  with a key first seen costs one fetch, not two.
  The origin charged is the one the ``keyId`` names: that is where the fetches go, so a
  flood of bogus keyIds cannot make the daemon hammer a server, and the ``actor`` field
  (anyone's to write) plays no part.
* ``PendingKeys``: what a key fetch found stays in memory, not in the database, until a
  signature made with it verifies (``Actors.confirm``).  At most ``max_entries`` entries
  are kept, each for at most ``ttl`` seconds, so a failed verification leaves no lasting
  trace.

``ParsedKeys`` is not a bound but a cost: parsing a PEM public key takes about as long as
the RSA check itself, so each process keeps the parsed key object by key id, for the PEM
it was parsed from.  The database row is still read for every request (its ``fetched``
time and PEM decide, whichever process wrote them); only the parse is skipped when the PEM
is the one already parsed.  At most ``PARSED_MAX`` keys are kept, least recently used
first out.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridge.errors import SignatureError

KEY_FETCHES_PER_MINUTE = 30
REFRESH_INTERVAL = 60.0
PENDING_MAX = 256
PENDING_TTL = 600.0
PARSED_MAX = 2048


def origin_key(url: str) -> str:
    """``scheme://host:port`` of ``url`` (default port filled in, host lower-cased)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
    except ValueError:
        return url
    return f"{parts.scheme}://{(parts.hostname or '').rstrip('.')}:{port}"


class FetchBudget:
    """Sliding-minute key-fetch limits per origin, and a minimum interval between refreshes."""

    def __init__(
        self,
        per_minute: int = KEY_FETCHES_PER_MINUTE,
        refresh_interval: float = REFRESH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        max_origins: int = 10_000,
    ) -> None:
        self.per_minute = per_minute
        self.refresh_interval = refresh_interval
        self.clock = clock
        self._max_origins = max_origins
        self._fetches: OrderedDict[str, deque[float]] = OrderedDict()
        self._refreshed: OrderedDict[str, float] = OrderedDict()

    def charge(self, url: str) -> None:
        """Count one fetch of ``url``; raise ``SignatureError`` (429) past the limit."""
        origin = origin_key(url)
        moment = self.clock()
        window = self._fetches.pop(origin, None) or deque()
        while window and window[0] <= moment - 60:
            window.popleft()
        if len(window) >= self.per_minute:
            self._fetches[origin] = window
            raise SignatureError(
                f"too many key fetches from {origin} (at most {self.per_minute} a minute); "
                "try again later",
                429,
            )
        window.append(moment)
        self._fetches[origin] = window
        while len(self._fetches) > self._max_origins:
            self._fetches.popitem(last=False)

    def may_refresh(self, key_id: str) -> bool:
        """True (and remembered) unless ``key_id`` was fetched or refreshed within the
        interval."""
        last = self._refreshed.get(key_id)
        if last is not None and self.clock() - last < self.refresh_interval:
            return False
        self.fetched(key_id)
        return True

    def fetched(self, key_id: str) -> None:
        """Remember that ``key_id`` was just fetched: refreshing it within the interval
        would fetch the same document again (one bogus signature, two fetches)."""
        self._refreshed.pop(key_id, None)
        self._refreshed[key_id] = self.clock()
        while len(self._refreshed) > self._max_origins:
            self._refreshed.popitem(last=False)


class ParsedKeys:
    """Parsed public keys by key id, each with the PEM it was parsed from (bounded LRU)."""

    def __init__(self, max_entries: int = PARSED_MAX) -> None:
        self.max_entries = max_entries
        self._keys: OrderedDict[str, tuple[str, Any]] = OrderedDict()

    def load(self, key_id: str, pem: str, parse: Callable[[str], Any]) -> Any:
        """``parse(pem)``, or the object it returned last time for this key id and PEM.

        A key id whose PEM changed (a rotated key) is parsed again; ``parse`` raising
        leaves nothing kept."""
        entry = self._keys.get(key_id)
        if entry is not None and entry[0] == pem:
            self._keys.move_to_end(key_id)
            return entry[1]
        key = parse(pem)
        self._keys[key_id] = (pem, key)
        self._keys.move_to_end(key_id)
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class Pending:
    """An actor document found by a key fetch, waiting for a signature to verify with it."""

    doc: dict[str, Any]
    fetched: float


class PendingKeys:
    """A bounded, expiring memory of key fetches not yet backed by a verified signature."""

    def __init__(
        self,
        max_entries: int = PENDING_MAX,
        ttl: float = PENDING_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self.clock = clock
        self._entries: OrderedDict[str, Pending] = OrderedDict()

    def put(self, key_id: str, doc: dict[str, Any]) -> None:
        self._entries.pop(key_id, None)
        self._entries[key_id] = Pending(doc, self.clock())
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key_id: str) -> dict[str, Any] | None:
        entry = self._entries.get(key_id)
        if entry is None:
            return None
        if self.clock() - entry.fetched > self.ttl:
            del self._entries[key_id]
            return None
        return entry.doc

    def pop(self, key_id: str) -> dict[str, Any] | None:
        doc = self.get(key_id)
        self._entries.pop(key_id, None)
        return doc

    def __len__(self) -> int:
        return len(self._entries)
