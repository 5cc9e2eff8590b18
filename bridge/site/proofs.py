"""FEP-8b32 Object Integrity Proofs with the ``eddsa-jcs-2022`` cryptosuite.

An object (a Note, an Article, an activity) is signed with the actor's Ed25519 key so that it
can be verified wherever it travels, independently of the HTTP request that carried it.  The
proof is a W3C Data Integrity ``DataIntegrityProof``::

    "proof": {
      "type": "DataIntegrityProof",
      "cryptosuite": "eddsa-jcs-2022",
      "verificationMethod": "https://blog.example/ap/actor.json#ed25519-key",
      "proofPurpose": "assertionMethod",
      "created": "2026-01-01T00:00:00Z",
      "proofValue": "z<base58btc of the 64-byte Ed25519 signature>"
    }

How the signature is computed (W3C "Data Integrity EdDSA Cryptosuites", eddsa-jcs-2022):

1. ``proofConfig`` = the proof without ``proofValue``; when the document has an ``@context``
   the proof carries that same ``@context`` (vc-di-eddsa hashes the document's context into
   the proof configuration).  We publish it inside ``proof``, as the W3C test vectors
   (``signedJCS.json``), bovine and tootik (``proof/proof.go``) do: verifiers that hash the
   proof exactly as received then agree with verifiers that add the document's context.
   A received proof without ``@context`` is hashed with the document's (older signers).
2. ``hashData`` = SHA-256(JCS(proofConfig)) || SHA-256(JCS(document without ``proof``)),
   64 bytes; JCS is RFC 8785 JSON canonicalization (``canonicalize`` below).
3. ``proofValue`` = ``"z"`` + base58btc(Ed25519 signature over ``hashData``).

Only the top-level ``proof`` is removed before hashing.  An activity that embeds an object
carrying its own proof therefore signs that inner proof too: sign the inner object first,
embed the signed object, then sign the activity.  Verifying goes the other way round: the
activity's proof covers the embedded object (proof included), and the embedded object can be
checked on its own with its own proof.

A ``proof`` that is a list (a proof set) is accepted when one of its ``eddsa-jcs-2022``
members verifies; each member is computed over the document without any proof.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bridge.errors import BridgeError, SignatureError
from bridge.keys import base58btc, unbase58btc

PROOF_TYPE = "DataIntegrityProof"
CRYPTOSUITE = "eddsa-jcs-2022"

__all__ = [
    "CRYPTOSUITE",
    "PROOF_TYPE",
    "canonicalize",
    "proof_hash_data",
    "sign_object",
    "strip_proof",
    "verify_object",
    "verify_object_with",
]


# ---- RFC 8785 JSON Canonicalization Scheme ------------------------------------------------

# json's C string encoder writes exactly RFC 8785's escapes: \" \\ \b \f \n \r \t, other
# characters below U+0020 as \u00xx (lowercase hex), everything else as itself.
_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring
_SURROGATE = re.compile("[\ud800-\udfff]")


def _string(text: str) -> str:
    """A JSON string with RFC 8785's minimal escapes (the ones ``json`` writes, in C)."""
    if _SURROGATE.search(text):
        raise ValueError("JCS: string holds a lone UTF-16 surrogate")
    return _encode_basestring(text)


def _number(value: float) -> str:
    """ECMAScript ``Number.prototype.toString`` of a double (RFC 8785 section 3.2.2.3)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError("JCS: NaN and Infinity are not JSON numbers")
    if value == 0:
        return "0"  # also -0
    if value < 0:
        return "-" + _number(-value)
    # repr() is the shortest string that round-trips, as ECMAScript requires.
    mantissa, _, exp_text = repr(value).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    n = len(int_part) + int(exp_text or "0")  # value = 0.<all_digits> * 10**n
    stripped = all_digits.lstrip("0")
    n -= len(all_digits) - len(stripped)
    digits = stripped.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    exponent = n - 1
    sign = "+" if exponent >= 0 else "-"
    head = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{head}e{sign}{abs(exponent)}"


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _serialize(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        # JSON numbers are IEEE doubles: integers beyond 2**53 lose precision, as in JS.
        out.append(str(value) if abs(value) <= 2**53 else _number(float(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _serialize(item, out)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"JCS: object keys must be strings, got {type(key).__name__}")
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_key)):
            if i:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _serialize(value[key], out)
        out.append("}")
    else:
        raise TypeError(f"JCS: cannot canonicalize a {type(value).__name__}")


def canonicalize(obj: Any) -> bytes:
    """RFC 8785 canonical JSON of ``obj`` as UTF-8 bytes.

    Object members are sorted by the UTF-16 code units of their names, numbers are written
    as ECMAScript writes doubles and strings use the minimal JSON escapes.

    Raises:
        ValueError: NaN, Infinity or a lone surrogate.
        TypeError: a value that is not JSON (sets, bytes, non-string keys...).
    """
    if _plain(obj):
        try:
            return _PLAIN_ENCODER.encode(obj).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: the full serializer names the problem
    out: list[str] = []
    _serialize(obj, out)
    return "".join(out).encode("utf-8")


# For the documents a build signs (strings, ASCII member names, small integers, no floats)
# ``json``'s C encoder writes RFC 8785's bytes: members sorted by code point, which for
# ASCII names is the order of UTF-16 code units; integers as ``str``; the same string
# escapes (``encode_basestring``, above); no whitespace.  Three times faster than
# ``_serialize``; anything else (a float, a big integer, a non-ASCII or non-string name,
# a subclass) takes ``_serialize``.  tests/site/test_proofs.py compares the two.
_PLAIN_ENCODER = json.JSONEncoder(
    ensure_ascii=False,
    allow_nan=False,
    sort_keys=True,
    separators=(",", ":"),
    check_circular=False,
)
_SAFE_INT = 2**53


def _plain(value: Any) -> bool:
    """Whether ``_PLAIN_ENCODER`` writes ``value`` exactly as ``_serialize`` does."""
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str or _plain(item) for item in value)
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    return False


# ---- proofs ----------------------------------------------------------------------------------


def strip_proof(obj: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy of ``obj`` without its top-level ``proof``."""
    return {k: v for k, v in obj.items() if k != "proof"}


def _format_created(created: dt.datetime) -> str:
    if created.tzinfo is None:
        raise ValueError("created must be timezone-aware")
    return created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def proof_hash_data(document: dict[str, Any], proof_config: dict[str, Any]) -> bytes:
    """``SHA-256(JCS(proof_config)) || SHA-256(JCS(document))``: the 64 bytes that are signed.

    ``document`` must already be without its proof; ``proof_config`` without ``proofValue``
    and with the ``@context`` it is hashed with.
    """
    return (
        hashlib.sha256(canonicalize(proof_config)).digest()
        + hashlib.sha256(canonicalize(document)).digest()
    )


def sign_object(
    obj: dict[str, Any],
    key: Ed25519PrivateKey,
    verification_method: str,
    created: dt.datetime,
    purpose: str = "assertionMethod",
) -> dict[str, Any]:
    """Return a copy of ``obj`` carrying an ``eddsa-jcs-2022`` proof made with ``key``.

    An existing top-level proof is replaced.  ``created`` is written in whole seconds, UTC.
    """
    document = strip_proof(obj)
    proof: dict[str, Any] = {
        "type": PROOF_TYPE,
        "cryptosuite": CRYPTOSUITE,
        "verificationMethod": verification_method,
        "proofPurpose": purpose,
        "created": _format_created(created),
    }
    if "@context" in document:
        proof["@context"] = document["@context"]
    signature = key.sign(proof_hash_data(document, proof))
    proof["proofValue"] = "z" + base58btc(signature)
    return {**document, "proof": proof}


def _candidates(obj: Any) -> list[dict[str, Any]]:
    """The ``eddsa-jcs-2022`` proofs of ``obj``; SignatureError when there is none usable."""
    if not isinstance(obj, dict):
        raise SignatureError("object is not a JSON object")
    if "proof" not in obj:
        raise SignatureError("object has no integrity proof")
    raw = obj["proof"]
    proofs = raw if isinstance(raw, list) else [raw]
    if not proofs or not all(isinstance(p, dict) for p in proofs):
        raise SignatureError("proof must be an object or a list of objects")
    ours = [p for p in proofs if p.get("cryptosuite") == CRYPTOSUITE]
    if not ours:
        suites = sorted({str(p.get("cryptosuite") or p.get("type")) for p in proofs})
        raise SignatureError(
            f"unsupported proof cryptosuite {', '.join(suites)} (expected {CRYPTOSUITE})"
        )
    return ours


def _check_one(
    document: dict[str, Any], proof: dict[str, Any], public_key: Ed25519PublicKey, purpose: str
) -> None:
    if proof.get("type") != PROOF_TYPE:
        raise SignatureError(f"proof type must be {PROOF_TYPE}, got {proof.get('type')!r}")
    if proof.get("proofPurpose") != purpose:
        raise SignatureError(f"proofPurpose must be {purpose}, got {proof.get('proofPurpose')!r}")
    if not isinstance(proof.get("verificationMethod"), str):
        raise SignatureError("proof has no verificationMethod")
    value = proof.get("proofValue")
    if not isinstance(value, str) or not value.startswith("z"):
        raise SignatureError("proofValue must be a base58btc multibase string ('z...')")
    try:
        signature = unbase58btc(value[1:])
    except ValueError as exc:
        raise SignatureError(f"proofValue is not base58btc: {exc}") from None
    if len(signature) != 64:
        raise SignatureError(f"proofValue must hold 64 bytes, got {len(signature)}")
    config = {k: v for k, v in proof.items() if k != "proofValue"}
    if "@context" in config:
        # The document's @context must start with the proof's (vc-di-eddsa, verify proof).
        proof_ctx = config["@context"]
        doc_ctx = document.get("@context")
        proof_list = proof_ctx if isinstance(proof_ctx, list) else [proof_ctx]
        doc_list = doc_ctx if isinstance(doc_ctx, list) else [doc_ctx]
        if doc_list[: len(proof_list)] != proof_list:
            raise SignatureError("proof @context does not match the document's @context")
    elif "@context" in document:
        config["@context"] = document["@context"]
    try:
        hash_data = proof_hash_data(document, config)
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"object cannot be canonicalized: {exc}") from None
    try:
        public_key.verify(signature, hash_data)
    except InvalidSignature:
        raise SignatureError(
            f"integrity proof by {proof['verificationMethod']} does not verify"
        ) from None


def verify_object(
    obj: dict[str, Any], public_key: Ed25519PublicKey, purpose: str = "assertionMethod"
) -> None:
    """Check the ``eddsa-jcs-2022`` proof of ``obj`` against ``public_key``.

    Raises:
        SignatureError: the proof is missing, malformed, of another cryptosuite, or does not
            verify with this key.
    """
    candidates = _candidates(obj)
    document = strip_proof(obj)
    failures: list[SignatureError] = []
    for proof in candidates:
        try:
            _check_one(document, proof, public_key, purpose)
            return
        except SignatureError as exc:
            failures.append(exc)
    raise failures[0]


async def verify_object_with(
    obj: dict[str, Any],
    resolve: Callable[[str], Awaitable[Ed25519PublicKey]],
    purpose: str = "assertionMethod",
) -> str:
    """Verify ``obj``'s proof, resolving its ``verificationMethod`` with ``resolve``.

    Returns the verification method that verified, so the caller can check that it belongs
    to the actor the object claims (e.g. ``attributedTo`` / ``actor``).

    Raises:
        SignatureError: as ``verify_object``; also when ``resolve`` fails (a ``BridgeError``
            it raises becomes a SignatureError naming the method).
    """
    candidates = _candidates(obj)
    document = strip_proof(obj)
    failures: list[SignatureError] = []
    for proof in candidates:
        method = proof.get("verificationMethod")
        try:
            if not isinstance(method, str) or not method:
                raise SignatureError("proof has no verificationMethod")
            try:
                key = await resolve(method)
            except SignatureError:
                raise
            except BridgeError as exc:
                raise SignatureError(f"cannot resolve {method}: {exc}") from None
            _check_one(document, proof, key, purpose)
            return method
        except SignatureError as exc:
            failures.append(exc)
    raise failures[0]
