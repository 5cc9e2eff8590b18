"""FEP-8b32 integrity proofs (eddsa-jcs-2022) and RFC 8785 canonicalization."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import FetchError, SignatureError
from bridge.keys import ed25519_multibase, unbase58btc
from bridge.site import proofs as proofs_module
from bridge.site.proofs import (
    canonicalize,
    proof_hash_data,
    sign_object,
    strip_proof,
    verify_object,
    verify_object_with,
)

# ---- RFC 8785 --------------------------------------------------------------------------------


def _double(bits: str) -> float:
    value: float = struct.unpack(">d", bytes.fromhex(bits))[0]
    return value


# RFC 8785 Appendix B: IEEE 754 bit patterns and their ECMAScript serialization.
NUMBERS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


@pytest.mark.parametrize(("bits", "expected"), NUMBERS)
def test_jcs_numbers(bits: str, expected: str) -> None:
    assert canonicalize(_double(bits)) == expected.encode()


def test_jcs_rfc8785_example() -> None:
    # RFC 8785 section 3.2.2 input and output.
    text = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonicalize(json.loads(text)) == expected.encode("utf-8")


def test_jcs_sorts_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: the emoji (a surrogate pair, D83D) sorts before U+FB33.
    obj = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(json.loads(canonicalize(obj)))
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_jcs_rejects_non_json() -> None:
    with pytest.raises(ValueError):
        canonicalize(float("nan"))
    with pytest.raises(ValueError):
        canonicalize("\ud800")
    with pytest.raises(TypeError):
        canonicalize({1: "x"})
    with pytest.raises(TypeError):
        canonicalize({"x": b"bytes"})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _full_serializer(value: Any) -> bytes:
    out: list[str] = []
    proofs_module._serialize(value, out)
    return "".join(out).encode("utf-8")


plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2)
    | st.text()
    | st.sampled_from(["\u2028", "\x00\x1f\x7f", '"\\/', "\U0001f600", "\ufb33", "a\ud800"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(
            st.text(max_size=3) | st.sampled_from(["\ufb33", "\U0001f600", "@id"]),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@given(plain_values)
def test_jcs_fast_path_writes_the_full_serializers_bytes(value: Any) -> None:
    """The C-encoder path (strings, ASCII names, small integers) is byte-identical, and
    a lone surrogate still fails as ``_serialize`` fails."""
    try:
        expected = _full_serializer(value)
    except ValueError as exc:
        with pytest.raises(ValueError, match="surrogate"):
            canonicalize(value)
        assert "surrogate" in str(exc)
        return
    assert canonicalize(value) == expected


def test_jcs_fast_path_taken_for_a_built_document_and_left_for_the_rest() -> None:
    doc = {"@context": ["https://www.w3.org/ns/activitystreams", {"x": "y"}], "n": 3, "b": True}
    assert proofs_module._plain(doc)
    assert canonicalize(doc) == _full_serializer(doc)
    for other in ({"f": 1.0}, {"n": 2**53 + 1}, {"\u00e9": 1}, {1: "x"}, [{"s": {1, 2}}]):
        assert not proofs_module._plain(other)
    assert canonicalize({"f": 1.0, "g": 1e21}) == b'{"f":1,"g":1e+21}'


@given(json_values)
def test_jcs_round_trips(value: Any) -> None:
    """Canonical output is a fixed point and parses back to the same doubles."""
    out = canonicalize(value)
    assert canonicalize(json.loads(out)) == out
    # JSON numbers are doubles: compare as such (shortest digits may not be integral).
    assert json.loads(out, parse_int=float) == json.loads(json.dumps(value), parse_int=float)


# ---- the W3C vc-di-eddsa test vectors --------------------------------------------------------

# W3C "Data Integrity EdDSA Cryptosuites v1.0", eddsa-jcs-2022 test vectors, copied unchanged
# from the specification's repository (tests/data/vc-di-eddsa/SOURCE.md names the commit).
VECTORS = Path(__file__).resolve().parents[1] / "data" / "vc-di-eddsa"


def vector(name: str) -> Any:
    text = (VECTORS / name).read_text(encoding="utf-8")
    return json.loads(text) if name.endswith(".json") else text.strip()


SPEC_CREATED = dt.datetime(2023, 2, 24, 23, 36, 38, tzinfo=dt.UTC)


def _spec_key() -> Ed25519PrivateKey:
    raw = unbase58btc(vector("keyPair.json")["privateKeyMultibase"][1:])
    assert raw[:2] == b"\x80\x26"  # multicodec ed25519-priv
    return Ed25519PrivateKey.from_private_bytes(raw[2:])


def test_spec_key_pair_matches() -> None:
    public = vector("keyPair.json")["publicKeyMultibase"]
    assert ed25519_multibase(_spec_key().public_key()) == public


def test_spec_vector_signed_document() -> None:
    """Signing unsigned.json gives signedJCS.json exactly, @context inside the proof too."""
    signed_vector = vector("signedJCS.json")
    method = signed_vector["proof"]["verificationMethod"]
    signed = sign_object(vector("unsigned.json"), _spec_key(), method, SPEC_CREATED)
    assert signed == signed_vector


def test_spec_vector_intermediate_values() -> None:
    document = vector("unsigned.json")
    config = vector("proofConfigJCS.json")
    assert canonicalize(document) == vector("canonDocJCS.txt").encode()
    assert canonicalize(config) == vector("proofCanonJCS.txt").encode()
    hash_data = proof_hash_data(document, config)
    assert hash_data.hex() == vector("combinedHashJCS.txt")
    assert _spec_key().sign(hash_data).hex() == vector("sigHexJCS.txt")


def test_spec_signed_document_verifies() -> None:
    verify_object(vector("signedJCS.json"), _spec_key().public_key())
    assert spec_verify(vector("signedJCS.json"), _spec_key().public_key())


def test_a_proof_without_context_is_hashed_with_the_documents() -> None:
    """Older signers (and ours before) left @context out of the proof: still accepted."""
    signed = vector("signedJCS.json")
    del signed["proof"]["@context"]
    verify_object(signed, _spec_key().public_key())
    assert not spec_verify(signed, _spec_key().public_key(), as_received=True)


# ---- a verifier written from the specification -------------------------------------------------

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _jcs(value: Any) -> bytes:
    """RFC 8785 for documents without floats and with ASCII member names (ours are)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_verify(
    secured: dict[str, Any], key: Ed25519PublicKey, *, as_received: bool = False
) -> bool:
    """vc-di-eddsa section 3.3 "Verify Proof (eddsa-jcs-2022)", step by step.

    ``as_received``: hash the proof options exactly as they arrived, as bovine and tootik do,
    instead of copying the document's @context into them when the proof has none.
    """
    unsecured = {k: v for k, v in secured.items() if k != "proof"}
    options = {k: v for k, v in secured["proof"].items() if k != "proofValue"}
    if options["type"] != "DataIntegrityProof" or options["cryptosuite"] != "eddsa-jcs-2022":
        return False
    if "@context" in options:
        # "Check that the securedDocument.@context starts with all values contained in the
        # proofOptions.@context in the same order."
        doc_ctx = unsecured.get("@context")
        doc_ctx = doc_ctx if isinstance(doc_ctx, list) else [doc_ctx]
        proof_ctx = options["@context"]
        proof_ctx = proof_ctx if isinstance(proof_ctx, list) else [proof_ctx]
        if doc_ctx[: len(proof_ctx)] != proof_ctx:
            return False
    elif not as_received and "@context" in unsecured:
        options["@context"] = unsecured["@context"]
    hash_data = hashlib.sha256(_jcs(options)).digest() + hashlib.sha256(_jcs(unsecured)).digest()
    value = secured["proof"]["proofValue"]
    if not value.startswith("z"):
        return False
    try:
        key.verify(_b58decode(value[1:]), hash_data)
    except InvalidSignature:
        return False
    return True


# ---- round trips and rejections --------------------------------------------------------------

ACTOR = "https://blog.example/ap/actor.json"
VM = ACTOR + "#ed25519-key"
NOW = dt.datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=dt.UTC)
NOTE: dict[str, Any] = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/data-integrity/v2",
    ],
    "id": "https://blog.example/ap/posts/hello.json",
    "type": "Note",
    "attributedTo": ACTOR,
    "content": "<p>Hello, fediverse! \u00e9\U0001f600</p>",
    "published": "2026-03-01T12:00:00Z",
    "to": ["https://www.w3.org/ns/activitystreams#Public"],
    "sensitive": False,
    "likes": 3,
}


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def test_round_trip(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    assert signed["proof"]["created"] == "2026-03-01T12:00:00Z"
    assert signed["proof"]["proofValue"].startswith("z")
    assert signed["proof"]["@context"] == NOTE["@context"]  # as bovine and tootik hash it
    assert "proof" not in NOTE  # the input is not modified
    verify_object(signed, key.public_key())
    # It survives a trip through JSON text with other whitespace and key order.
    reparsed = json.loads(json.dumps(signed, indent=3, sort_keys=True))
    verify_object(reparsed, key.public_key())
    # A verifier written from the specification, hashing the proof as received, agrees.
    assert spec_verify(reparsed, key.public_key(), as_received=True)


def test_created_must_be_aware(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError):
        sign_object(NOTE, key, VM, dt.datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("content",), "<p>Hello, fediverse!</p>"),
        (("likes",), 4),
        (("sensitive",), True),
        (("to", 0), "https://blog.example/ap/followers.json"),
        (("proof", "created"), "2026-03-01T12:00:01Z"),
        (("proof", "verificationMethod"), ACTOR + "#other-key"),
    ],
)
def test_tampered_field_fails(key: Ed25519PrivateKey, path: tuple[Any, ...], value: Any) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    tampered = copy.deepcopy(signed)
    target: Any = tampered
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    with pytest.raises(SignatureError):
        verify_object(tampered, key.public_key())


def test_added_field_fails(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    with pytest.raises(SignatureError, match="does not verify"):
        verify_object({**signed, "inReplyTo": "https://evil.example/1"}, key.public_key())


def test_wrong_key_fails(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_object(signed, other)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"proof": None}, "must be an object"),
        ({"proof": []}, "must be an object"),
        ({"proof": "zabc"}, "must be an object"),
        ({"proof": {"type": "RsaSignature2017"}}, "unsupported proof cryptosuite"),
        ({"proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022"}}, "eddsa-rdfc"),
    ],
)
def test_malformed_proofs(key: Ed25519PrivateKey, change: dict[str, Any], message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        verify_object({**NOTE, **change}, key.public_key())


def test_missing_proof(key: Ed25519PrivateKey) -> None:
    with pytest.raises(SignatureError, match="no integrity proof"):
        verify_object(NOTE, key.public_key())


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("proofValue", "not-multibase", "multibase"),
        ("proofValue", "z0OIl", "base58btc"),
        ("proofValue", "z3mJr7AoUXx2Wqd", "64 bytes"),
        ("proofValue", 42, "multibase"),
        ("proofPurpose", "authentication", "proofPurpose"),
        ("type", "Ed25519Signature2020", "proof type"),
        ("verificationMethod", None, "verificationMethod"),
    ],
)
def test_malformed_proof_fields(
    key: Ed25519PrivateKey, field: str, value: Any, message: str
) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    signed["proof"][field] = value
    with pytest.raises(SignatureError, match=message):
        verify_object(signed, key.public_key())


def test_proof_set_accepts_one_good_member(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    foreign = {"type": "DataIntegrityProof", "cryptosuite": "ecdsa-jcs-2019", "proofValue": "z1"}
    verify_object({**NOTE, "proof": [foreign, signed["proof"]]}, key.public_key())


def test_embedded_object_signed_first(key: Ed25519PrivateKey) -> None:
    """Inner object first, then the activity: both proofs verify on their own."""
    note = sign_object(NOTE, key, VM, NOW)
    create = {
        "@context": NOTE["@context"],
        "id": "https://blog.example/ap/posts/hello/create.json",
        "type": "Create",
        "actor": ACTOR,
        "object": note,
    }
    signed = sign_object(create, key, VM, NOW)
    verify_object(signed, key.public_key())
    verify_object(signed["object"], key.public_key())
    # The activity's proof covers the embedded object's proof as well.
    signed["object"]["proof"]["created"] = "2020-01-01T00:00:00Z"
    with pytest.raises(SignatureError):
        verify_object(signed, key.public_key())


def test_verify_object_with_resolver(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)
    asked: list[str] = []

    async def resolve(method: str) -> Ed25519PublicKey:
        asked.append(method)
        return key.public_key()

    assert asyncio.run(verify_object_with(signed, resolve)) == VM
    assert asked == [VM]


def test_verify_object_with_resolver_failure(key: Ed25519PrivateKey) -> None:
    signed = sign_object(NOTE, key, VM, NOW)

    async def resolve(method: str) -> Ed25519PublicKey:
        raise FetchError(f"{method}: 404")

    with pytest.raises(SignatureError, match="cannot resolve"):
        asyncio.run(verify_object_with(signed, resolve))


# ---- a real proof from another server --------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[3] / "shared/fixtures/activities"
MITRA = FIXTURES / "mitra--create--note-fep8b32-proof.json"


@pytest.mark.skipif(not MITRA.exists(), reason="shared fixtures are not available")
def test_mitra_fixture_fails_cleanly(key: Ed25519PrivateKey) -> None:
    """The fixture's proof has the right shape but is not verifiable: a SignatureError, no crash."""
    activity = json.loads(MITRA.read_text(encoding="utf-8"))
    proof = activity["proof"]
    assert proof["cryptosuite"] == "eddsa-jcs-2022"
    assert len(unbase58btc(proof["proofValue"][1:])) == 64
    canonicalize(strip_proof(activity))
    with pytest.raises(SignatureError, match="does not verify"):
        verify_object(activity, key.public_key())

    async def resolve(method: str) -> Ed25519PublicKey:
        assert method == "https://mitra.social/users/test#ed25519-key"
        return key.public_key()

    with pytest.raises(SignatureError):
        asyncio.run(verify_object_with(activity, resolve))


# ---- every activity we sign --------------------------------------------------------------------


def _activities_we_sign(config: Any, moment: dt.datetime) -> dict[str, dict[str, Any]]:
    from bridge.site import activities

    note = {**NOTE, "id": config.post_ap_id("hello"), "cc": [config.followers_url]}
    follow = {"id": "https://peer.example/follows/1", "actor": "https://peer.example/users/a"}
    actor_doc = {"@context": activities.ACTOR_CONTEXT, "id": config.actor_id, "type": "Person"}
    return {
        "Create": activities.create(config, note),
        "Update": activities.update(config, note, moment),
        "Update(Person)": activities.actor_update(config, actor_doc, moment),
        "Delete": activities.delete(config, note["id"], moment),
        "Move": activities.move(config, "https://new.example/users/me", moment),
        "Accept": activities.accept(config, follow, config.actor_id + "#accepts/1"),
        "Reject": activities.accept(config, follow, config.actor_id + "#rejects/1", "Reject"),
    }


def test_every_activity_we_sign_verifies_as_received(site: Path, key: Ed25519PrivateKey) -> None:
    """Each kind carries the Data Integrity context (JSON-LD processors such as Fedify drop a
    ``proof`` their context does not define) and a proof that verifies under the W3C
    algorithm and under a verifier that hashes the proof exactly as received."""
    from bridge.config import load
    from bridge.site.activities import DATA_INTEGRITY

    config = load(site)
    for kind, activity in _activities_we_sign(config, NOW).items():
        assert DATA_INTEGRITY in activity["@context"], kind
        signed = sign_object(activity, key, config.ed25519_key_id, NOW)
        assert signed["proof"]["@context"] == activity["@context"], kind
        verify_object(signed, key.public_key())
        assert spec_verify(signed, key.public_key(), as_received=True), kind
