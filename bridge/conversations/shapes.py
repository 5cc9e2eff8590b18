"""One reading of ActivityStreams values, whatever shape the sender chose.

ActivityStreams 2.0 is JSON-LD, so every property may hold one value or an array, and a
reference may be a URL string, an embedded object (with ``id``) or a ``Link`` (with
``href``).  Sources: ActivityStreams 2.0 Core, section 4 ("Properties": "the value of any
property can be a single value or an array"), https://www.w3.org/TR/activitystreams-core/
#extensibility-json-ld-compaction, and the JSON-LD 1.1 rule that ``@type`` (aliased
``type``) may be an array (https://www.w3.org/TR/json-ld11/#specifying-the-type).  Seen in
the wild:

* ``type``: ``"Note"``, ``["Note", "Article"]``, a full IRI
  ``"https://www.w3.org/ns/activitystreams#Note"`` or the compact ``"as:Note"``;
* ``attributedTo``: a string, an actor object, or PeerTube's list of a ``Person`` and the
  ``Group`` of its channel (the person is the author);
* ``to``/``cc``/``audience``/``tag``/``attachment``: one value or a list, items strings or
  objects; ``inReplyTo``/``object``: a string, an object or a one-element list.

The conversation handlers never read these keys raw: ``read_object`` turns a document into
a ``RemoteObject`` with each field in one shape, and ``types``/``ref``/``refs`` read the
rest (an activity's own ``type``, an Undo's inner activity).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["RemoteObject", "addressing", "objects", "read_object", "ref", "refs", "types"]

AS_NAMESPACE = "https://www.w3.org/ns/activitystreams#"
ACTOR_TYPES = frozenset({"Person", "Service", "Application", "Group", "Organization"})
AUTHOR_TYPES = frozenset({"Person", "Service", "Application"})  # before a Group or Organization
QUOTE_KEYS = ("quote", "quoteUrl", "quoteUri", "_misskey_quote")
AUDIENCE_KEYS = ("to", "cc", "audience")


def _items(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def types(value: Any) -> frozenset[str]:
    """The type names of a ``type`` value (or of a document's ``type``), namespace removed."""
    if isinstance(value, dict):
        value = value.get("type")
    out = set()
    for item in _items(value):
        if isinstance(item, str) and item:
            out.add(item.removeprefix(AS_NAMESPACE).removeprefix("as:"))
    return frozenset(out)


def _ref_of(item: Any) -> str | None:
    if isinstance(item, str):
        return item.strip() or None
    if isinstance(item, dict):
        for key in ("id", "href"):
            value = item.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def refs(value: Any) -> list[str]:
    """The ids of a reference value: strings, objects' ``id``, Links' ``href``; one level of
    list, in order, without repeats."""
    out = [r for r in (_ref_of(item) for item in _items(value)) if r]
    return list(dict.fromkeys(out))


def ref(value: Any) -> str | None:
    """The first id of a reference value, or None."""
    found = refs(value)
    return found[0] if found else None


def objects(value: Any) -> list[dict[str, Any]]:
    """The embedded objects of a value (strings skipped)."""
    return [item for item in _items(value) if isinstance(item, dict)]


def _author(value: Any) -> str | None:
    """``attributedTo``: the first person-like actor among objects, else the first id."""
    for item in objects(value):
        if types(item) & AUTHOR_TYPES and _ref_of(item):
            return _ref_of(item)
    return ref(value)


def addressing(doc: dict[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(the ids in ``to``/``cc``/``audience``, the ``href`` of each ``Mention`` tag)."""
    audience = {r for key in AUDIENCE_KEYS for r in refs(doc.get(key))}
    mentions = set()
    for tag in objects(doc.get("tag")):
        href = ref(tag.get("href"))
        if "Mention" in types(tag) and href:
            mentions.add(href)
    return frozenset(audience), frozenset(mentions)


@dataclass(frozen=True)
class RemoteObject:
    """A remote object with every field the handlers use in one shape."""

    doc: dict[str, Any]
    id: str
    types: frozenset[str]
    author: str | None
    in_reply_to: str | None
    audience: frozenset[str]
    mentions: frozenset[str]
    quotes: tuple[str, ...]

    def is_a(self, kinds: frozenset[str]) -> bool:
        return bool(self.types & kinds)


def read_object(doc: Any) -> RemoteObject | None:
    """The normalised view of an object document; None when it is not an object with an id."""
    if not isinstance(doc, dict):
        return None
    obj_id = doc.get("id")
    if not isinstance(obj_id, str) or not obj_id.strip():
        return None  # (the id is kept as written: comment ids are hashes of it)
    audience, mentions = addressing(doc)
    return RemoteObject(
        doc=doc,
        id=obj_id,
        types=types(doc),
        author=_author(doc.get("attributedTo")),
        in_reply_to=ref(doc.get("inReplyTo")),
        audience=audience,
        mentions=mentions,
        quotes=tuple(q for q in (ref(doc.get(key)) for key in QUOTE_KEYS) if q),
    )
