"""FEP-8b32 integrity proofs (eddsa-jcs-2022) and RFC 8785 canonicalization."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import FetchError, SignatureError
from bridge.keys import ed25519_multibase, unbase58btc
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


@given(json_values)
def test_jcs_round_trips(value: Any) -> None:
    """Canonical output is a fixed point and parses back to the same doubles."""
    out = canonicalize(value)
    assert canonicalize(json.loads(out)) == out
    # JSON numbers are doubles: compare as such (shortest digits may not be integral).
    assert json.loads(out, parse_int=float) == json.loads(json.dumps(value), parse_int=float)


# ---- the W3C vc-di-eddsa test vector ---------------------------------------------------------

# W3C "Data Integrity EdDSA Cryptosuites v1.0", eddsa-jcs-2022 test vectors (TestVectors/ of the
# specification's repository): the key pair and the unsigned "Alumni Credential".
SPEC_PRIVATE_MULTIBASE = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"
SPEC_PUBLIC_MULTIBASE = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
SPEC_CONTEXT = [
    "https://www.w3.org/ns/credentials/v2",
    "https://www.w3.org/ns/credentials/examples/v2",
]
SPEC_DOCUMENT: dict[str, Any] = {
    "@context": SPEC_CONTEXT,
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}
SPEC_CREATED = dt.datetime(2023, 2, 24, 23, 36, 38, tzinfo=dt.UTC)
SPEC_VM_HTTPS = "https://vc.example/issuers/5678#" + SPEC_PUBLIC_MULTIBASE
SPEC_VM_DID = f"did:key:{SPEC_PUBLIC_MULTIBASE}#{SPEC_PUBLIC_MULTIBASE}"
# signedJCS.json of the vectors (verification method on https):
SPEC_PROOF_VALUE = (
    "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQfmWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4"
)
# proofCanonJCS.txt and combinedHashJCS.txt of the vectors (verification method on did:key):
SPEC_PROOF_CANON = (
    '{"@context":["https://www.w3.org/ns/credentials/v2",'
    '"https://www.w3.org/ns/credentials/examples/v2"],"created":"2023-02-24T23:36:38Z",'
    '"cryptosuite":"eddsa-jcs-2022","proofPurpose":"assertionMethod",'
    '"type":"DataIntegrityProof","verificationMethod":"' + SPEC_VM_DID + '"}'
)
SPEC_COMBINED_HASH = (
    "66ab154f5c2890a140cb8388a22a160454f80575f6eae09e5a097cabe539a1db"
    "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"
)


def _spec_key() -> Ed25519PrivateKey:
    raw = unbase58btc(SPEC_PRIVATE_MULTIBASE[1:])
    assert raw[:2] == b"\x80\x26"  # multicodec ed25519-priv
    return Ed25519PrivateKey.from_private_bytes(raw[2:])


def test_spec_key_pair_matches() -> None:
    assert ed25519_multibase(_spec_key().public_key()) == SPEC_PUBLIC_MULTIBASE


def test_spec_vector_proof_value() -> None:
    signed = sign_object(SPEC_DOCUMENT, _spec_key(), SPEC_VM_HTTPS, SPEC_CREATED)
    assert signed["proof"] == {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "verificationMethod": SPEC_VM_HTTPS,
        "proofPurpose": "assertionMethod",
        "created": "2023-02-24T23:36:38Z",
        "proofValue": SPEC_PROOF_VALUE,
    }
    assert strip_proof(signed) == SPEC_DOCUMENT


def test_spec_vector_hash_data() -> None:
    config = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2023-02-24T23:36:38Z",
        "verificationMethod": SPEC_VM_DID,
        "proofPurpose": "assertionMethod",
        "@context": SPEC_CONTEXT,
    }
    assert canonicalize(config) == SPEC_PROOF_CANON.encode()
    assert proof_hash_data(SPEC_DOCUMENT, config).hex() == SPEC_COMBINED_HASH


def test_spec_signed_document_verifies() -> None:
    """The published signed credential (its proof carries @context) verifies as received."""
    signed = {
        **SPEC_DOCUMENT,
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "created": "2023-02-24T23:36:38Z",
            "verificationMethod": SPEC_VM_HTTPS,
            "proofPurpose": "assertionMethod",
            "@context": SPEC_CONTEXT,
            "proofValue": SPEC_PROOF_VALUE,
        },
    }
    verify_object(signed, _spec_key().public_key())


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
    assert "@context" not in signed["proof"]
    assert "proof" not in NOTE  # the input is not modified
    verify_object(signed, key.public_key())
    # It survives a trip through JSON text with other whitespace and key order.
    reparsed = json.loads(json.dumps(signed, indent=3, sort_keys=True))
    verify_object(reparsed, key.public_key())


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
