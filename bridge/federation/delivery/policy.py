"""What a delivery attempt's outcome means: classification, ``Retry-After`` and backoff.

Pure functions, no I/O.  Classification mirrors Mastodon's rules for what it receives, so we
treat peers alike (tests in tests/federation/test_delivery.py):

* 2xx: delivered.
* 401, 408, 429, 5xx except 501: ``RetryableDelivery`` (as are timeouts, connection errors,
  resets and DNS failures, classified by the transport).  The next try waits what the
  ``RetryPolicy`` says, or what ``Retry-After`` says (seconds or an HTTP date, at least 1 s,
  at most 24 h).
* 410: ``InboxGone`` (a ``PermanentDelivery``).
* Any other 4xx, 501, redirects (a signed POST is never replayed to another URL):
  ``PermanentDelivery``.

``DEFAULT_SCHEDULE`` is 1 m, 5 m, 15 m, 30 m, 1 h, 2 h, 4 h, 8 h, 8 h: ten attempts spread
over about 24 hours (23.85 h before jitter, up to 28.6 h with it).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
from collections.abc import Sequence
from typing import Protocol

import httpx

from bridge.errors import InboxGone, PermanentDelivery, RetryableDelivery

DEFAULT_SCHEDULE: tuple[float, ...] = (
    60,
    5 * 60,
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    8 * 3600,
)
"""Seconds to wait after the 1st, 2nd, ... failed attempt; one more failure gives up."""

JITTER = 0.2
"""Each backoff delay is stretched by a random factor in [1, 1 + JITTER)."""

MAX_RETRY_AFTER = 24 * 3600.0
MIN_RETRY_AFTER = 1.0
ERROR_CHARS = 300


class RetryPolicy(Protocol):
    """``policy(tries)`` -> seconds to wait before the next attempt, or None to give up.

    ``tries`` counts the attempts made so far, the one that just failed included.
    """

    def __call__(self, tries: int) -> float | None: ...


class ScheduleRetry:
    """Back off along ``schedule`` (with up to ``jitter`` extra); give up after its end."""

    def __init__(
        self,
        schedule: Sequence[float] = DEFAULT_SCHEDULE,
        jitter: float = JITTER,
        rng: random.Random | None = None,
    ) -> None:
        self.schedule: tuple[float, ...] = tuple(schedule)
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def __call__(self, tries: int) -> float | None:
        if tries > len(self.schedule) or tries < 1:
            return None
        return self.schedule[tries - 1] * (1.0 + self.jitter * self._rng.random())


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), capped.

    Returns None when the header is absent or unreadable; otherwise a delay between
    ``MIN_RETRY_AFTER`` and ``MAX_RETRY_AFTER``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        delay = float(int(text))
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delay = when.timestamp() - now
    return min(max(delay, MIN_RETRY_AFTER), MAX_RETRY_AFTER)


def one_line(text: str, limit: int = ERROR_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters (what ``last_error`` keeps)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def classify_response(
    status: int, reason: str, headers: httpx.Headers, body: bytes, now: float
) -> None:
    """Return for a 2xx; raise ``RetryableDelivery``, ``InboxGone`` or ``PermanentDelivery``.

    The exception message is the one-line ``last_error``: status, reason and the start of
    the response body.
    """
    if 200 <= status < 300:
        return
    text = body.decode("utf-8", errors="replace") if body else ""
    if headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        text = f"({len(body)} encoded bytes)"
    message = one_line(f"{status} {reason}".strip() + (f": {text}" if text.strip() else ""))
    if status == 410:
        raise InboxGone(message, status)
    if status in (401, 408, 429) or (500 <= status < 600 and status != 501):
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        raise RetryableDelivery(message, status, retry_after)
    if 300 <= status < 400:
        location = headers.get("location", "")
        message = one_line(f"{status} {reason}: redirect to {location} not followed")
    raise PermanentDelivery(message, status)
