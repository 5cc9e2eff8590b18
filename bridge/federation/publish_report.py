"""What a publish did, or with ``dry_run`` would do: the activities it queues and its summary.

Kept apart from ``bridge.federation.outbox`` so that a publish with nothing to send can
say so without importing the delivery and HTTP stack (``bridge.federation.pending``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Planned:
    """One activity a publish queues (or, with ``dry_run``, would queue)."""

    activity: dict[str, Any]
    inboxes: list[str]

    def describe(self) -> str:
        obj = self.activity.get("object")
        target = obj.get("id") if isinstance(obj, dict) else obj
        n = len(self.inboxes)
        return f"{self.activity['type']} {target} -> {n} inbox{'es' if n != 1 else ''}"


@dataclass
class PublishReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    recorded: list[str] = field(default_factory=list)  # backfilled: in the outbox, not pushed
    profile: bool = False  # Update(actor) sent
    queued: int = 0
    planned: list[Planned] = field(default_factory=list)
    dry_run: bool = False
    webmentions: list[Any] = field(default_factory=list)

    def summary(self) -> str:
        recorded = (
            f" ({len(self.recorded)} older posts recorded without announcing)"
            if self.recorded
            else ""
        )
        if not (self.created or self.updated or self.deleted or self.profile):
            return f"Nothing to send: no post or profile changed since the last publish{recorded}."
        changes = (
            f"{len(self.created)} new, {len(self.updated)} updated, {len(self.deleted)} deleted"
        )
        if self.profile:
            changes += ", profile updated"
        if not any(p.inboxes for p in self.planned):
            return f"{changes}{recorded}; no followers yet: nothing to deliver."
        if self.dry_run:
            return f"Dry run: {changes}{recorded}; would queue {self.queued} deliveries."
        return f"{changes}{recorded}; {self.queued} deliveries queued"
