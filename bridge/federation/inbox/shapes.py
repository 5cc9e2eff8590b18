"""The shape every handler may rely on, checked before any handler sees a stored activity.

Any field of a received activity may hold any JSON type (tests/security/test_inbox_fuzz.py
sends all of them).  Rather than every handler guarding every access, the processor refuses
an activity whose load-bearing fields have the wrong shape, and handlers read the rest
defensively.
"""

from __future__ import annotations

from typing import Any

from bridge.federation.actors import first_id

_REFERENCE_FIELDS = ("object", "target", "inReplyTo", "attributedTo", "actor")


def _type_error(value: Any, where: str) -> str:
    if value is None or isinstance(value, str):
        return ""
    if isinstance(value, list) and all(isinstance(t, str) for t in value):
        return ""
    return f"{where} type is neither a string nor a list of strings"


def _id_error(value: Any, where: str) -> str:
    return "" if value is None or isinstance(value, str) else f"{where} id is not a string"


def _object_error(value: Any, where: str, depth: int) -> str:
    """The shape rules for an embedded object (and the objects it embeds, a few levels)."""
    if isinstance(value, list):
        for item in value[:50]:
            problem = _object_error(item, where, depth)
            if problem:
                return problem
        return ""
    if not isinstance(value, dict) or depth <= 0:
        return ""
    problem = _type_error(value.get("type"), where) or _id_error(value.get("id"), where)
    if problem:
        return problem
    for name in _REFERENCE_FIELDS:
        problem = _object_error(value.get(name), f"{where}.{name}", depth - 1)
        if problem:
            return problem
    return ""


def shape_error(activity: Any) -> str:
    """Why a stored activity cannot be handed to a handler, or ``""`` when it can.

    Handlers may rely on: a JSON object; a string ``type``; an ``actor`` id; ``id`` a
    string when present; and in embedded objects (``object``, ``target``, ``inReplyTo``,
    ``attributedTo``, ``actor``, three levels deep) ``type`` a string or a list of strings
    and ``id`` a string.  Anything else is hostile input and fails here, before any
    handler runs.
    """
    if not isinstance(activity, dict):
        return "not a JSON object"
    if not isinstance(activity.get("type"), str):
        return "type is not a string"
    if not first_id(activity.get("actor")):
        return "actor is not an id"
    problem = _id_error(activity.get("id"), "activity")
    for name in _REFERENCE_FIELDS:
        problem = problem or _object_error(activity.get(name), name, 3)
    return problem
