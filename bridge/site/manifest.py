"""The manifest of an output folder: output path -> [key, sha256 of the bytes].

It lives in the site's private state folder, one per output folder, and is what lets a
build skip an output whose key is unchanged.  A resident process (``serve --watch``, the
daemon) keeps the manifest it last read or wrote, by the file's identity (inode, size,
mtime): a manifest is always written to a new file renamed into place, so another
writer's manifest has another inode.  A kept manifest is never mutated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bridge.config import SiteConfig

Manifest = dict[str, list[str]]  # output path -> [key, sha256 of the bytes]


def manifest_path(config: SiteConfig, out_dir: Path) -> Path:
    name = hashlib.sha256(str(out_dir).encode()).hexdigest()[:12]
    return config.state_dir / f"manifest-{name}.json"


def pending_path(config: SiteConfig, out_dir: Path) -> Path:
    """Where a switch writes the next manifest before the journal names it."""
    return manifest_path(config, out_dir).with_suffix(".next")


_kept: dict[str, tuple[tuple[int, int, int], Manifest]] = {}


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def read_manifest(path: Path) -> Manifest:
    identity = _identity(path)
    kept = _kept.get(str(path))
    if identity is not None and kept is not None and kept[0] == identity:
        return kept[1]
    try:
        manifest: Manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if identity is not None and isinstance(manifest, dict):
        _kept[str(path)] = (identity, manifest)
    return manifest


def keep_manifest(path: Path, manifest: Manifest) -> None:
    identity = _identity(path)
    if identity is not None:
        _kept[str(path)] = (identity, manifest)


def forget_manifests() -> None:
    """Drop the manifests this process keeps (as a fresh process would start)."""
    global _writes
    _kept.clear()
    _encoded.clear()
    _writes = 0


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    """Any JSON document (the switch's journal), written to a new file renamed in place."""
    _write_text(path, json.dumps(manifest, sort_keys=True))


def write_entries(path: Path, manifest: Manifest) -> None:
    """A manifest, in the order of its entries (the plan's), each entry's JSON taken from
    the last one this process wrote when the entry is the same list (``_encoded``)."""
    _write_text(path, encode(manifest))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(text)
    os.replace(tmp, path)


# output path -> (an entry list as written, its JSON text): a resident process writes a
# manifest of 30,000 entries after every save, and encoding them all was 25-30 ms of it.
# Entries are never mutated (a build makes a new list for a new entry), so the same list
# is the same text.  Made from a process's second write on (a command writes one
# manifest, for which ``json.dumps`` is cheaper), at the cost ``json.dumps`` had.
_encoded: dict[str, tuple[list[str], str]] = {}
_writes = 0
_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but quote and backslash: as is


def encode(manifest: Manifest) -> str:
    """``json.dumps(manifest)``, byte for byte (``tests/site/test_manifest.py``)."""
    global _writes
    _writes += 1
    if _writes == 1:
        return json.dumps(manifest)
    if len(_encoded) > 2 * len(manifest) + 1000:  # another site or many removed outputs
        _encoded.clear()
    parts: list[str] = []
    add, get, plain = parts.append, _encoded.get, _PLAIN.fullmatch
    for rel, entry in manifest.items():
        hit = get(rel)
        if hit is not None and hit[0] is entry:
            add(hit[1])
            continue
        if type(entry) is list and len(entry) == 2 and _plain(plain, rel, *entry):
            text = f'"{rel}": ["{entry[0]}", "{entry[1]}"]'
        else:  # anything else a hand-edited manifest may hold, as json.dumps writes it
            text = f"{json.dumps(rel)}: {json.dumps(entry)}"
        _encoded[rel] = (entry, text)
        add(text)
    return "{" + ", ".join(parts) + "}"


def _plain(match: Callable[[str], object], *texts: object) -> bool:
    return all(type(t) is str and match(t) for t in texts)
