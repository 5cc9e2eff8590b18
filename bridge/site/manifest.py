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
from collections.abc import Mapping
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
    _kept.clear()


def write_manifest(path: Path, manifest: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(manifest, sort_keys=True))
    os.replace(tmp, path)
