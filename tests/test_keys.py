"""The actor's keys: read lazily by the build, each file only when something needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.errors import KeyFileError
from bridge.site import build as site_mod


@pytest.fixture
def state(tmp_path: Path, key_files: Path) -> Path:
    folder = tmp_path / "state"
    shutil.copytree(key_files, folder / "keys")
    return folder


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Every private key file parsed: (file name, validated)."""
    seen: list[tuple[str, bool]] = []
    real = keys._read_private

    def recording(path: Path, *, validate: bool = True) -> object:
        seen.append((path.name, validate))
        return real(path, validate=validate)

    monkeypatch.setattr(keys, "_read_private", recording)
    return seen


def test_lazy_keys_equal_loaded_keys(state: Path) -> None:
    eager, lazy = keys.load(state), keys.open_lazy(state)
    assert lazy.public_pem == eager.public_pem
    assert lazy.public_pem.startswith("-----BEGIN PUBLIC KEY-----")  # SPKI, not PKCS#1
    assert lazy.ed25519_multibase == eager.ed25519_multibase
    message = b"signed by the lazy key"
    eager.rsa.public_key().verify(
        lazy.rsa.sign(message, *_pkcs1v15_sha256()), message, *_pkcs1v15_sha256()
    )


def _pkcs1v15_sha256() -> tuple[object, object]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PKCS1v15(), hashes.SHA256()


def test_lazy_keys_read_each_file_once_and_only_when_used(
    state: Path, reads: list[tuple[str, bool]]
) -> None:
    lazy = keys.open_lazy(state)
    assert reads == []
    assert lazy.public_pem == lazy.public_pem
    # The public half needs no validation of the private key (nothing is signed with it).
    assert reads == [(keys.RSA_FILE, False)]
    assert lazy.ed25519_multibase.startswith("z")
    assert lazy.ed25519 is lazy.ed25519
    assert reads == [(keys.RSA_FILE, False), (keys.ED25519_FILE, True)]
    assert lazy.rsa is lazy.rsa
    assert reads[-1] == (keys.RSA_FILE, True) and len(reads) == 3


def test_a_missing_file_is_named_at_once(state: Path) -> None:
    (state / "keys" / keys.ED25519_FILE).unlink()
    with pytest.raises(KeyFileError, match=keys.ED25519_FILE) as info:
        keys.open_lazy(state)
    assert "\n" not in str(info.value)


def test_a_broken_file_is_named_when_first_used(state: Path) -> None:
    (state / "keys" / keys.ED25519_FILE).write_text("not a key", encoding="utf-8")
    lazy = keys.open_lazy(state)
    assert lazy.public_pem  # the other file is fine
    with pytest.raises(KeyFileError, match=f"{keys.ED25519_FILE}: not a readable") as info:
        assert lazy.ed25519
    assert "\n" not in str(info.value)
    (state / "keys" / keys.RSA_FILE).write_text("not a key either", encoding="utf-8")
    with pytest.raises(KeyFileError, match=keys.RSA_FILE):
        assert keys.open_lazy(state).public_pem


def test_a_key_of_the_wrong_type_is_named(state: Path) -> None:
    folder = state / "keys"
    shutil.copy(folder / keys.ED25519_FILE, folder / keys.RSA_FILE)
    with pytest.raises(KeyFileError, match="expected an RSA private key"):
        assert keys.open_lazy(state).rsa


def test_ensure_creates_both_only_when_neither_exists(tmp_path: Path, state: Path) -> None:
    keys.ensure(tmp_path / "fresh")
    assert sorted(p.name for p in (tmp_path / "fresh" / "keys").iterdir()) == sorted(
        [keys.ED25519_FILE, keys.RSA_FILE]
    )
    before = (state / "keys" / keys.RSA_FILE).read_bytes()
    (state / "keys" / keys.ED25519_FILE).unlink()
    keys.ensure(state)  # one missing: left for the build to name, never replaced
    assert not (state / "keys" / keys.ED25519_FILE).exists()
    assert (state / "keys" / keys.RSA_FILE).read_bytes() == before


def test_a_rebuild_with_nothing_to_sign_parses_no_key(
    site: Path, reads: list[tuple[str, bool]]
) -> None:
    config = config_mod.load(site)
    site_mod.build(config)
    assert (keys.ED25519_FILE, True) in reads  # the first build signs documents
    assert (keys.RSA_FILE, True) not in reads  # but HTTP signatures are not its business
    reads.clear()
    site_mod.build(config)
    # Unchanged outputs are not rendered, and their keys hash the key files' bytes.
    assert reads == []


def test_a_key_file_is_parsed_once_per_process_until_it_changes(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization

    parsed: list[bool] = []
    real = serialization.load_pem_private_key

    def counting(data: bytes, password: None, **kwargs: bool) -> object:
        parsed.append(bool(kwargs.get("unsafe_skip_rsa_key_validation")))
        return real(data, password, **kwargs)

    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    monkeypatch.setattr(keys, "_parsed", {})
    first = keys.open_lazy(state).rsa
    assert keys.open_lazy(state).rsa is first  # a second context reuses it
    assert parsed == [False]
    other = keys.generate(state.parent / "other")
    (state / "keys" / keys.RSA_FILE).unlink()
    shutil.copy(state.parent / "other" / "keys" / keys.RSA_FILE, state / "keys" / keys.RSA_FILE)
    replaced = keys.open_lazy(state)
    assert replaced.public_pem == other.public_pem  # the new file, parsed again
    assert parsed == [False, True]


# RFC 8410, section 10.3: an Ed25519 private key in PKCS #8, as ``keys.generate`` writes one.
RFC8410_PRIVATE = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC
-----END PRIVATE KEY-----
"""


def _raw_public(key: object) -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_the_ed25519_key_is_read_without_the_serialization_module(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-post rebuild signs one object: its key is read from the PKCS #8 bytes
    (RFC 8410) and equals what ``cryptography`` parses from the same file."""
    from cryptography.hazmat.primitives import serialization

    folder = state / "keys"
    expected = [
        serialization.load_pem_private_key(data, password=None)
        for data in (RFC8410_PRIVATE, (folder / keys.ED25519_FILE).read_bytes())
    ]
    parsed: list[bytes] = []
    real = serialization.load_pem_private_key

    def counting(data: bytes, password: None, **kwargs: bool) -> object:
        parsed.append(data)
        return real(data, password, **kwargs)

    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    monkeypatch.setattr(keys, "_parsed", {})
    assert _raw_public(keys.open_lazy(state).ed25519) == _raw_public(expected[1])
    (folder / keys.ED25519_FILE).write_bytes(RFC8410_PRIVATE)
    assert _raw_public(keys.open_lazy(state).ed25519) == _raw_public(expected[0])
    assert parsed == []
    # Line breaks as Windows writes them are still PKCS #8.
    (folder / keys.ED25519_FILE).write_bytes(RFC8410_PRIVATE.replace(b"\n", b"\r\n"))
    monkeypatch.setattr(keys, "_parsed", {})
    assert _raw_public(keys.open_lazy(state).ed25519) == _raw_public(expected[0])
    assert parsed == []
    # Any other PEM goes through cryptography (here an RSA key, in the wrong file).
    other = (folder / keys.RSA_FILE).read_bytes()
    (folder / keys.ED25519_FILE).write_bytes(other)
    monkeypatch.setattr(keys, "_parsed", {})
    with pytest.raises(KeyFileError, match="expected an Ed25519 private key"):
        assert keys.open_lazy(state).ed25519
    assert parsed == [other]
