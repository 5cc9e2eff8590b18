"""The actor's key pairs: RSA-2048 for HTTP Signatures, Ed25519 for integrity proofs.

Private keys live in ``.indiebridge/keys/`` (mode 0600), never under the output folder.
Public keys are published in the actor as SPKI PEM (``BEGIN PUBLIC KEY``; PKCS#1 breaks Go
and JS servers) and, for Ed25519, as a FEP-521a Multikey (``publicKeyMultibase``).

``load`` parses both files at once; ``open_lazy`` only checks that they exist and parses
each the first time it is used, so a build that signs nothing parses no key, and one that
signs only integrity proofs never pays for the RSA key's validation (tens of ms, most of
a one-post rebuild's key handling).  Its ``public_pem`` reads the RSA file without that
validation: the public half (n, e) is copied out of the file as it is, and nothing is
signed with a key read that way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import KeyFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + base58btc(ED25519_MULTICODEC + raw)


def ed25519_from_multibase(value: str) -> ed25519.Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    if not value.startswith("z"):
        raise ValueError("multibase value must start with 'z' (base58btc)")
    data = unbase58btc(value[1:])
    if not data.startswith(ED25519_MULTICODEC) or len(data) != 34:
        raise ValueError("not an Ed25519 multikey")
    return ed25519.Ed25519PublicKey.from_public_bytes(data[2:])


def _spki_pem(public: rsa.RSAPublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


class ActorKeys:
    """The actor's two private keys, and the public forms the actor document shows."""

    __slots__ = ("_ed25519", "_rsa")

    def __init__(self, rsa: rsa.RSAPrivateKey, ed25519: ed25519.Ed25519PrivateKey) -> None:
        self._rsa = rsa
        self._ed25519 = ed25519

    @property
    def rsa(self) -> rsa.RSAPrivateKey:
        return self._rsa

    @property
    def fingerprint(self) -> str:
        """What the public keys are made of (``LazyActorKeys`` hashes the files)."""
        return self.public_pem + "\0" + self.ed25519_multibase

    @property
    def ed25519(self) -> ed25519.Ed25519PrivateKey:
        return self._ed25519

    @property
    def public_pem(self) -> str:
        return _spki_pem(self.rsa.public_key())

    @property
    def ed25519_multibase(self) -> str:
        return ed25519_multibase(self.ed25519.public_key())


class LazyActorKeys(ActorKeys):
    """``ActorKeys`` that read each file the first time it is needed (``open_lazy``).

    A broken file raises ``KeyFileError`` naming it at that first use, as ``load`` would.
    """

    __slots__ = ("_ed_loaded", "_folder", "_public_pem", "_rsa_loaded")

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._rsa_loaded: rsa.RSAPrivateKey | None = None
        self._ed_loaded: ed25519.Ed25519PrivateKey | None = None
        self._public_pem: str | None = None

    @property
    def rsa(self) -> rsa.RSAPrivateKey:
        if self._rsa_loaded is None:
            self._rsa_loaded = _read_rsa(self._folder)
        return self._rsa_loaded

    @property
    def ed25519(self) -> ed25519.Ed25519PrivateKey:
        if self._ed_loaded is None:
            self._ed_loaded = _read_ed25519(self._folder)
        return self._ed_loaded

    @property
    def fingerprint(self) -> str:
        """A hash of both key files' bytes, without parsing them (a build's keys depend
        on the public keys; parsing the RSA key and importing ``cryptography`` was a
        tenth of a one-post rebuild as a command)."""
        import hashlib

        h = hashlib.sha256()
        for name in (RSA_FILE, ED25519_FILE):
            try:
                h.update((self._folder / name).read_bytes() + b"\0")
            except FileNotFoundError:
                raise _missing(self._folder / name) from None
            except OSError as exc:
                raise KeyFileError(f"{self._folder / name}: cannot be read ({exc})") from None
        return h.hexdigest()

    @property
    def public_pem(self) -> str:
        if self._public_pem is None:
            if self._rsa_loaded is not None:
                self._public_pem = _spki_pem(self._rsa_loaded.public_key())
            else:  # the public half only: no validation of the private key needed
                key = _read_rsa(self._folder, validate=False)
                self._public_pem = _spki_pem(key.public_key())
        return self._public_pem


def _write_private(path: Path, pem: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def generate(state_dir: Path) -> ActorKeys:
    """Create both key pairs under ``state_dir/keys`` (fails if they already exist)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    keys = ActorKeys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519=ed25519.Ed25519PrivateKey.generate(),
    )
    folder = state_dir / "keys"
    _write_private(folder / RSA_FILE, _pem(keys.rsa))
    _write_private(folder / ED25519_FILE, _pem(keys.ed25519))
    return keys


def _missing(path: Path) -> KeyFileError:
    return KeyFileError(
        f"{path}: key file missing (run 'indiebridge init' or 'indiebridge keys create')"
    )


# Keys parsed in this process, by file and its stat: ``publish`` builds two contexts and
# would validate the RSA key twice (tens of ms each); a replaced file is parsed again.
_parsed: dict[tuple[str, bool, int, int, int], object] = {}


def _read_private(path: Path, *, validate: bool = True) -> object:
    try:
        st = path.stat()
        memo = (str(path.resolve()), validate, st.st_mtime_ns, st.st_size, st.st_ino)
        key = _parsed.get(memo)
        if key is not None:
            return key
        data = path.read_bytes()
        key = _pkcs8_ed25519(data) or _load_pem(data, validate)
        if len(_parsed) > 16:
            _parsed.clear()
        _parsed[memo] = key
        return key
    except FileNotFoundError:
        raise _missing(path) from None
    except (ValueError, TypeError, OSError) as exc:
        raise KeyFileError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None


def _load_pem(data: bytes, validate: bool) -> object:
    from cryptography.hazmat.primitives import serialization

    if validate:
        return serialization.load_pem_private_key(data, password=None)
    return serialization.load_pem_private_key(
        data, password=None, unsafe_skip_rsa_key_validation=True
    )


def _read_rsa(folder: Path, *, validate: bool = True) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = _read_private(folder / RSA_FILE, validate=validate)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyFileError(f"{folder / RSA_FILE}: expected an RSA private key")
    return key


def _read_ed25519(folder: Path) -> ed25519.Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = _read_private(folder / ED25519_FILE)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise KeyFileError(f"{folder / ED25519_FILE}: expected an Ed25519 private key")
    return key


# RFC 8410, section 7: an Ed25519 private key in PKCS #8 (as ``generate`` writes it) is
# these 16 bytes of DER, then the 32-byte seed.
PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")
_PEM_PRIVATE = (b"-----BEGIN PRIVATE KEY-----", b"-----END PRIVATE KEY-----")


def _pkcs8_ed25519(data: bytes) -> ed25519.Ed25519PrivateKey | None:
    """The Ed25519 key of a PEM file as ``generate`` writes it, else None; read without
    ``cryptography``'s serialization module, whose import was 8 ms of a one-post rebuild
    (which signs one object with this key)."""
    import base64
    import binascii

    text = data.strip()
    if not (text.startswith(_PEM_PRIVATE[0]) and text.endswith(_PEM_PRIVATE[1])):
        return None
    try:
        der = base64.b64decode(b"".join(text[27:-25].split()), validate=True)
    except binascii.Error:
        return None
    if len(der) != 48 or not der.startswith(PKCS8_ED25519):
        return None
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return ed25519.Ed25519PrivateKey.from_private_bytes(der[16:])


def load(state_dir: Path) -> ActorKeys:
    """Read the key pairs; ``KeyFileError`` names the file when one is missing or broken."""
    folder = state_dir / "keys"
    return ActorKeys(rsa=_read_rsa(folder), ed25519=_read_ed25519(folder))


def open_lazy(state_dir: Path) -> ActorKeys:
    """The key pairs, each read on first use; ``KeyFileError`` at once when a file is
    missing, at first use when one is broken."""
    folder = state_dir / "keys"
    for name in (RSA_FILE, ED25519_FILE):
        if not (folder / name).is_file():
            raise _missing(folder / name)
    return LazyActorKeys(folder)


def ensure(state_dir: Path) -> None:
    """Create the key pairs when neither exists (a missing one alone is an error, later)."""
    folder = state_dir / "keys"
    if not (folder / RSA_FILE).exists() and not (folder / ED25519_FILE).exists():
        generate(state_dir)


def load_or_generate(state_dir: Path) -> ActorKeys:
    ensure(state_dir)
    return load(state_dir)
