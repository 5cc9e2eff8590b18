"""The inbox: verify, store, answer 202 — then process in the background.

* ``receive``: the HTTP side (parse, authenticate, store, 202) and the per-host rate limit;
* ``writer``: the group commit of received rows (one transaction for those arriving together);
* ``processor``: the ``InboxProcessor`` that works through stored activities;
* ``handlers``: the follow handlers and the type -> handler table;
* ``shapes``: the shape handlers may rely on, checked before any of them runs;
* ``retention``: what the inbox table keeps, and the maintenance step (``maintenance``).
"""

from __future__ import annotations

from bridge.federation.inbox.handlers import (
    PROCESSED_TYPES,
    ConversationHook,
    Handler,
    accept_pending,
    default_handlers,
    ignore,
    make_delete,
    make_undo,
    on_follow,
    undo_target,
)
from bridge.federation.inbox.processor import InboxProcessor
from bridge.federation.inbox.receive import (
    JSON_TYPES,
    MAX_BODY,
    MAX_DEPTH,
    RateLimiter,
    error,
    read_body,
    receive,
    request_url,
)
from bridge.federation.inbox.writer import InboxWriter

__all__ = [
    "JSON_TYPES",
    "MAX_BODY",
    "MAX_DEPTH",
    "PROCESSED_TYPES",
    "ConversationHook",
    "Handler",
    "InboxProcessor",
    "InboxWriter",
    "RateLimiter",
    "accept_pending",
    "default_handlers",
    "error",
    "ignore",
    "make_delete",
    "make_undo",
    "on_follow",
    "read_body",
    "receive",
    "request_url",
    "undo_target",
]
