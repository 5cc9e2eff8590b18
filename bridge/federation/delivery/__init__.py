"""Delivering our activities to followers' inboxes, with a persistent retry queue.

``enqueue`` writes an activity and one row per inbox in one transaction; a
``DeliveryWorker`` sends them.  The package is split by concept:

* ``queue``: the SQL of the ``outgoing`` and ``deliveries`` tables and the row states;
* ``policy``: what a response means (``classify_response``, ``parse_retry_after``) and
  when to try again (a ``RetryPolicy``; ``DEFAULT_SCHEDULE`` spreads ten attempts over
  about 24 hours);
* ``transport``: clients per host, per-host limits and the private-address check;
* ``worker``: the loop that claims, sends and records;
* ``pool`` and ``child``: the daemon's default, ``min(cores, 4)`` worker processes on the
  one queue, restarted (and their claimed rows recovered) when one dies.

A 410 makes the row and every other queued row for that inbox ``gone`` and calls
``on_gone(inbox)``, so the caller drops the followers behind it.
"""

from __future__ import annotations

from bridge.errors import InboxGone
from bridge.federation.delivery.policy import (
    DEFAULT_SCHEDULE,
    RetryPolicy,
    ScheduleRetry,
    classify_response,
    parse_retry_after,
)
from bridge.federation.delivery.pool import DeliveryPool
from bridge.federation.delivery.queue import enqueue, inboxes_for_followers, list_deliveries
from bridge.federation.delivery.transport import ACTIVITY_JSON
from bridge.federation.delivery.worker import DeliveryStats, DeliveryWorker

__all__ = [
    "ACTIVITY_JSON",
    "DEFAULT_SCHEDULE",
    "DeliveryPool",
    "DeliveryStats",
    "DeliveryWorker",
    "InboxGone",
    "RetryPolicy",
    "ScheduleRetry",
    "classify_response",
    "enqueue",
    "inboxes_for_followers",
    "list_deliveries",
    "parse_retry_after",
]
