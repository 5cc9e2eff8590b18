"""Pixel sizes of the site's own images, read from their file headers (PNG, GIF, JPEG, WebP).

Link previews announce ``og:image:width`` and ``og:image:height`` so that a reader's app
can lay out the card before the image arrives.  Only images that live below the site's
``static/`` folders are measured; remote images have no size (the tags are then left out).
"""

from __future__ import annotations

import struct
from pathlib import Path

from bridge.config import SiteConfig

HEADER_BYTES = 256 * 1024  # a JPEG's SOF marker sits after its EXIF block


def size_of_bytes(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the start of an image file, or None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


class ImageSizes:
    """``sizes(url)`` -> (width, height) of one of the site's static images, cached."""

    def __init__(self, config: SiteConfig) -> None:
        self.config = config
        self._cache: dict[str, tuple[int, int] | None] = {}

    def __call__(self, url: str) -> tuple[int, int] | None:
        if url not in self._cache:
            self._cache[url] = self._measure(url)
        return self._cache[url]

    def _measure(self, url: str) -> tuple[int, int] | None:
        local = self.config.local_path(url.split("?", 1)[0].split("#", 1)[0])
        if local is None or not local.startswith("/static/"):
            return None
        rel = Path(local.removeprefix("/static/"))
        if ".." in rel.parts:
            return None
        for folder in reversed(self.config.static_dirs):  # the site's own first
            path = folder / rel
            try:
                with path.open("rb") as fh:
                    return size_of_bytes(fh.read(HEADER_BYTES))
            except OSError:
                continue
        return None
