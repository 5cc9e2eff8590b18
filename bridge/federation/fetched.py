"""A fetched document, and decoding its body without ever holding more than the limit.

``BodyDecoder`` undoes gzip/deflate (and raw deflate, which some servers send under that
name) while never producing more than the room left, so a compressed "zip bomb" is cut off
after ``max_bytes`` of output (tests in tests/security/test_fetch_hostility.py).
"""

from __future__ import annotations

import codecs
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx

from bridge.errors import FetchError

__all__ = ["BodyDecoder", "Fetched", "TooLarge"]


class TooLarge(Exception):
    """The decoded body would exceed the room left."""


class BodyDecoder:
    """Content-decoding that never produces more than the room left (zip-bomb safe)."""

    def __init__(self, encoding: str, url: str) -> None:
        tokens = [t.strip() for t in encoding.lower().split(",") if t.strip()]
        tokens = [t for t in tokens if t != "identity"]
        self._url = url
        self._deflate = False
        self._z: Any = None
        if not tokens:
            return
        if tokens in (["gzip"], ["x-gzip"]):
            self._z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif tokens == ["deflate"]:
            self._z = zlib.decompressobj(32 + zlib.MAX_WBITS)
            self._deflate = True
        else:
            raise FetchError(f"{url}: unsupported content-encoding {encoding!r}")

    def feed(self, data: bytes, room: int) -> bytes:
        if self._z is None:
            if len(data) > room:
                raise TooLarge
            return data
        try:
            out: bytes = self._z.decompress(data, room + 1)
        except zlib.error as exc:
            if not self._deflate:
                raise FetchError(f"{self._url}: broken compressed body: {exc}") from None
            # "deflate" is sometimes sent raw, without the zlib header.
            self._deflate = False
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.feed(data, room)
        self._deflate = False
        if len(out) > room:
            raise TooLarge
        return out

    def flush(self, room: int) -> bytes:
        if self._z is None:
            return b""
        out: bytes = self._z.flush()
        if len(out) > room:
            raise TooLarge
        return out


def _parse_charset(content_type: str) -> str | None:
    for param in content_type.split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip("\"'").strip() or None
    return None


@dataclass(frozen=True)
class Fetched:
    """A fetched document: final URL (after redirects), status, headers and body.

    ``body`` is content-decoded (gzip/deflate undone) even though ``headers`` still show
    the ``Content-Encoding`` the server sent.
    """

    url: str
    status: int
    headers: httpx.Headers
    body: bytes
    history: list[str] = field(default_factory=list)
    """The URLs that redirected, in order; empty when there was no redirect."""

    @property
    def content_type(self) -> str:
        """The media type, lowercased, without parameters (``""`` when absent)."""
        return str(self.headers.get("content-type", "")).split(";")[0].strip().lower()

    @property
    def charset(self) -> str | None:
        return _parse_charset(str(self.headers.get("content-type", "")))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body decoded with the declared charset, else UTF-8; never raises."""
        charset = self.charset
        if charset:
            try:
                codecs.lookup(charset)
                return self.body.decode(charset, errors="replace")
            except (LookupError, ValueError, TypeError):
                pass  # unknown or non-text codec: fall back to UTF-8
        return self.body.decode("utf-8-sig", errors="replace")
