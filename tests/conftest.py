"""Shared fixtures for the site builder tests.

* ``site``: a fresh copy of ``tests/data/site`` (with actor keys) in ``tmp_path``.
* ``make_site(overrides)``: the same copy with ``site.toml`` keys replaced, added or (with
  ``None``) removed; a nested mapping such as ``{"author": {"url": ...}}`` is merged.
* ``built``: the test site built once per session, for tests that only read the output.
* ``prebuilt``: a fresh copy of that built site (output included), for tests that need an
  existing output to break or compare against without paying for a build.
* ``build_site`` / ``snapshot``: build a site folder; read a whole output tree as bytes.

Generating an RSA-2048 key takes a noticeable moment, so the actor's keys are generated
once per session and copied (with their 0600 mode) into every site folder.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from bridge import config as config_mod
from bridge import keys
from bridge.config import SiteConfig
from bridge.site import build as site_mod
from bridge.site.build import BuildResult

DATA = Path(__file__).resolve().parent / "data"
SITE_DATA = DATA / "site"
GOLDEN = DATA / "golden"
BASE_URL = "https://blog.example"
JSON_WELL_KNOWN = {".well-known/webfinger", ".well-known/nodeinfo"}


# ---- site.toml writing ---------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def dump_toml(data: Mapping[str, Any]) -> str:
    """Enough TOML for site.toml: scalars and lists first, then one [table] per mapping."""
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, Mapping)
    ]
    for key, table in data.items():
        if isinstance(table, Mapping):
            lines += ["", f"[{_toml_key(key)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied: None deletes a key, mappings merge recursively."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


# ---- keys and site folders ------------------------------------------------------------------


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding one generated pair of actor key files (RSA and Ed25519)."""
    state = tmp_path_factory.mktemp("keys") / config_mod.STATE_DIR
    keys.generate(state)
    return state / "keys"


def copy_site(dest: Path, key_files: Path) -> Path:
    shutil.copytree(SITE_DATA, dest)
    target = dest / config_mod.STATE_DIR / "keys"
    target.mkdir(parents=True, mode=0o700)
    for path in key_files.iterdir():
        shutil.copy2(path, target / path.name)  # copy2 keeps the 0600 mode
    return dest


@pytest.fixture
def site(tmp_path: Path, key_files: Path) -> Path:
    """A fresh, buildable copy of the test site."""
    return copy_site(tmp_path / "site", key_files)


@pytest.fixture
def make_site(tmp_path: Path, key_files: Path) -> Callable[..., Path]:
    """Factory: ``make_site({"posts_per_page": 5, "author": {"url": None}})`` -> site folder."""
    made = 0

    def make(overrides: Mapping[str, Any] | None = None) -> Path:
        nonlocal made
        made += 1
        folder = copy_site(tmp_path / f"site{made}", key_files)
        if overrides:
            toml = folder / config_mod.CONFIG_NAME
            data = tomllib.loads(toml.read_text(encoding="utf-8"))
            toml.write_text(dump_toml(merge(data, overrides)), encoding="utf-8")
        return folder

    return make


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ---- building and reading the output ----------------------------------------------------------


def build_folder(site_dir: Path, **kwargs: Any) -> BuildResult:
    return site_mod.build(config_mod.load(site_dir), **kwargs)


@pytest.fixture
def build_site() -> Callable[..., BuildResult]:
    """``build_site(site_dir, out_dir=..., drafts=...)`` -> BuildResult."""
    return build_folder


def read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def snapshot() -> Callable[[Path], dict[str, bytes]]:
    """``snapshot(folder)`` -> {relative path: bytes} of every file below it."""
    return read_tree


@dataclass(frozen=True)
class Built:
    """A built test site; tests must only read it."""

    config: SiteConfig
    out: Path
    result: BuildResult

    def path_for(self, url: str) -> Path | None:
        """The output file serving one of our URLs (``/x/`` -> ``x/index.html``), else None."""
        local = self.config.local_path(url.split("#", 1)[0])
        if local is None:
            return None
        path = urlsplit(local).path.lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        return self.out / path

    def text(self, rel: str) -> str:
        return (self.out / rel).read_text(encoding="utf-8")

    def json(self, rel: str) -> Any:
        return json.loads(self.text(rel))

    def json_files(self) -> Iterator[tuple[str, Any]]:
        """Every JSON document of the output, by relative path (extensionless ones too)."""
        for path in sorted(self.out.rglob("*")):
            rel = path.relative_to(self.out).as_posix()
            if path.is_file() and (
                rel.endswith(".json") or rel.startswith("nodeinfo/") or rel in JSON_WELL_KNOWN
            ):
                yield rel, json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, key_files: Path) -> Built:
    folder = copy_site(tmp_path_factory.mktemp("built") / "site", key_files)
    config = config_mod.load(folder)
    result = site_mod.build(config)
    return Built(config=config, out=result.out_dir, result=result)


@pytest.fixture
def prebuilt(built: Built, tmp_path: Path) -> Path:
    """A writable copy of the built site folder, ``public/`` and ``.indiebridge/`` included."""
    return Path(shutil.copytree(built.config.site_dir, tmp_path / "site"))
