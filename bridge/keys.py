"""The actor's key pairs: RSA-2048 for HTTP Signatures, Ed25519 for integrity proofs.

Private keys live in ``.indiebridge/keys/`` (mode 0600), never under the output folder.
Public keys are published in the actor as SPKI PEM (``BEGIN PUBLIC KEY``; PKCS#1 breaks Go
and JS servers) and, for Ed25519, as a FEP-521a Multikey (``publicKeyMultibase``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from bridge.errors import KeyFileError

RSA_FILE = "actor-rsa.pem"
ED25519_FILE = "actor-ed25519.pem"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58btc(data: bytes) -> str:
    """Base58 (Bitcoin alphabet), as multibase ``z`` values use."""
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    pad = len(data) - len(data.lstrip(b"\0"))
    return "1" * pad + out


def unbase58btc(text: str) -> bytes:
    n = 0
    for ch in text:
        idx = _B58.find(ch)
        if idx < 0:
            raise ValueError(f"invalid base58 character {ch!r}")
        n = n * 58 + idx
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\0" * pad + body


ED25519_MULTICODEC = b"\xed\x01"


def ed25519_multibase(public: ed25519.Ed25519PublicKey) -> str:
    """FEP-521a ``publicKeyMultibase``: ``z`` + base58btc(0xed01 + raw key)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58btc(ED25519_MULTICODEC + raw)


def ed25519_from_multibase(value: str) -> ed25519.Ed25519PublicKey:
    if not value.startswith("z"):
        raise ValueError("multibase value must start with 'z' (base58btc)")
    data = unbase58btc(value[1:])
    if not data.startswith(ED25519_MULTICODEC) or len(data) != 34:
        raise ValueError("not an Ed25519 multikey")
    return ed25519.Ed25519PublicKey.from_public_bytes(data[2:])


@dataclass(frozen=True)
class ActorKeys:
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey

    @property
    def public_pem(self) -> str:
        return (
            self.rsa.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    @property
    def ed25519_multibase(self) -> str:
        return ed25519_multibase(self.ed25519.public_key())


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate(state_dir: Path) -> ActorKeys:
    """Create both key pairs under ``state_dir/keys`` (fails if they already exist)."""
    keys = ActorKeys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519=ed25519.Ed25519PrivateKey.generate(),
    )
    folder = state_dir / "keys"
    _write_private(folder / RSA_FILE, _pem(keys.rsa))
    _write_private(folder / ED25519_FILE, _pem(keys.ed25519))
    return keys


def load(state_dir: Path) -> ActorKeys:
    """Read the key pairs; ``KeyFileError`` names the file when one is missing or broken."""
    folder = state_dir / "keys"
    loaded = []
    for name in (RSA_FILE, ED25519_FILE):
        path = folder / name
        try:
            loaded.append(serialization.load_pem_private_key(path.read_bytes(), password=None))
        except FileNotFoundError:
            raise KeyFileError(
                f"{path}: key file missing (run 'indiebridge init' or 'indiebridge keys create')"
            ) from None
        except (ValueError, TypeError, OSError) as exc:
            raise KeyFileError(
                f"{path}: not a readable unencrypted PEM private key ({exc})"
            ) from None
    rsa_key, ed_key = loaded
    if not isinstance(rsa_key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{folder / RSA_FILE}: expected an RSA private key")
    if not isinstance(ed_key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{folder / ED25519_FILE}: expected an Ed25519 private key")
    return ActorKeys(rsa=rsa_key, ed25519=ed_key)


def load_or_generate(state_dir: Path) -> ActorKeys:
    folder = state_dir / "keys"
    if not (folder / RSA_FILE).exists() and not (folder / ED25519_FILE).exists():
        return generate(state_dir)
    return load(state_dir)
