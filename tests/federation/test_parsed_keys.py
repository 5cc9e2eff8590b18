"""Parsed public keys are kept by key id, for the PEM they were parsed from.

Parsing a PEM costs about as much as the RSA check, so each process keeps the parsed
object (``key_fetch.ParsedKeys``).  What must not change: the ``keys`` row still decides
(a PEM rotated by another process is used at once), and the memory is bounded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bridge.db import Database
from bridge.federation.actors import Actors
from bridge.federation.key_fetch import ParsedKeys

pytestmark = pytest.mark.anyio

KEY_ID = "https://remote.example/users/alice#main-key"
OWNER = "https://remote.example/users/alice"


def _pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_the_same_pem_is_parsed_once_and_a_new_pem_again() -> None:
    parsed: list[str] = []

    def parse(pem: str) -> object:
        parsed.append(pem)
        return object()

    keys = ParsedKeys()
    first = keys.load(KEY_ID, "pem-1", parse)
    assert keys.load(KEY_ID, "pem-1", parse) is first
    rotated = keys.load(KEY_ID, "pem-2", parse)
    assert rotated is not first
    assert parsed == ["pem-1", "pem-2"]


def test_at_most_max_entries_are_kept_least_recently_used_first_out() -> None:
    keys = ParsedKeys(max_entries=2)
    a = keys.load("a", "pem", lambda pem: object())
    keys.load("b", "pem", lambda pem: object())
    assert keys.load("a", "pem", lambda pem: object()) is a  # a is now the newest
    keys.load("c", "pem", lambda pem: object())  # pushes b out
    assert len(keys) == 2
    assert keys.load("a", "pem", lambda pem: object()) is a
    fresh = object()
    assert keys.load("b", "pem", lambda pem: fresh) is fresh


def test_a_parse_that_fails_keeps_nothing() -> None:
    keys = ParsedKeys()

    def bad(pem: str) -> object:
        raise ValueError(pem)

    with pytest.raises(ValueError):
        keys.load(KEY_ID, "junk", bad)
    assert len(keys) == 0


async def test_a_key_rotated_in_the_database_is_used_at_once(tmp_path: Path) -> None:
    """Another process (the background one, a CLI command) stores a new PEM for the key id:
    this process's next lookup verifies with it, not with the object it parsed before."""
    db = Database(tmp_path / "state.db")
    actors = Actors(db, fetcher=None, auth=None)  # type: ignore[arg-type]  # no fetch here
    old, new = _pem(), _pem()
    with db.tx() as con:
        con.execute(
            "INSERT INTO keys(key_id, owner, pem, fetched) VALUES (?, ?, ?, ?)",
            (KEY_ID, OWNER, old, time.time()),
        )
    first = await actors.lookup_key(KEY_ID, refresh=False)
    again = await actors.lookup_key(KEY_ID, refresh=False)
    assert again.public_key is first.public_key  # parsed once
    with db.tx() as con:
        con.execute("UPDATE keys SET pem = ? WHERE key_id = ?", (new, KEY_ID))
    rotated = await actors.lookup_key(KEY_ID, refresh=False)
    assert rotated.public_key is not first.public_key
    assert (
        rotated.public_key.public_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        == new
    )
    db.close()
