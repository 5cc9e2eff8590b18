"""Writing imported posts, pages and comments as files, never overwriting anything.

What the site already holds is read first (``scan``): the slugs in use, every post's
``original_url``, and the entries imported before, by guid, from the import ledger
(``<state>/imported.json``: guid -> file), so a draft imported once and published later
under a new permalink is still recognised.  Files are created with an exclusive link
(``os.link``), so an existing file is never replaced, even one that appears meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bridge.errors import BridgeError, FeedError
from bridge.site.frontmatter import split_front_matter
from bridge.site.importing.model import FeedEntry
from bridge.site.posts import slugify

_DATE_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}-")
LEDGER = "imported.json"


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def yaml_line(key: str, value: Any) -> str:
    """``key: value`` in YAML, quoted only where YAML needs it; lists in flow style."""
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 20)
    return f"{key}: {dumped.removesuffix(chr(10)).removesuffix(chr(10) + '...')}"


def post_text(
    entry: FeedEntry,
    slug: str,
    date: dt.datetime,
    *,
    draft: str | None,
    summary: str | None,
    body: str,
) -> str:
    """The Markdown file for an entry: front matter, then the body.  ``draft`` says why
    the entry is a draft (kept as a comment beside ``draft: true``), None when public."""
    lines = ["---"]
    if entry.title:
        lines.append(yaml_line("title", entry.title))
    lines.append(f"date: {iso(date)}")
    if entry.updated and entry.updated > date:
        lines.append(f"updated: {iso(entry.updated)}")
    lines.append(f"slug: {slug}")
    if entry.tags:
        lines.append(yaml_line("tags", list(entry.tags)))
    if summary:
        lines.append(yaml_line("summary", summary))
    if entry.link:
        lines.append(yaml_line("original_url", entry.link))
    if draft:
        lines.append(f"draft: true  # imported as a draft: {draft}")
    lines.append("---")
    return "\n".join(lines) + "\n" + body + "\n"


def page_text(entry: FeedEntry, slug: str, date: dt.datetime, body: str) -> str:
    lines = ["---", yaml_line("title", entry.title or slug), f"slug: {slug}", f"date: {iso(date)}"]
    if entry.updated and entry.updated > date:
        lines.append(f"updated: {iso(entry.updated)}")
    lines.append("---")
    return "\n".join(lines) + "\n" + body + "\n"


@dataclass
class Existing:
    slugs: set[str] = field(default_factory=set)
    originals: dict[str, str] = field(default_factory=dict)  # original_url or guid -> file
    unlinked: dict[tuple[str, str], str] = field(default_factory=dict)


def identity(title: str | None, date: str, body: str) -> tuple[str, str]:
    """How an entry without a link is recognised: its title and date, or for an untitled
    note its text and date."""
    return (f"title:{title.strip()}" if title else f"text:{body.strip()}", date)


def _meta_date(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date):
        return f"{value.isoformat()}T00:00:00Z"
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return value
        return iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC))
    return ""


def scan(folder: Path, site_dir: Path) -> Existing:
    found = Existing()
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.md")):
        try:
            meta, body, _ = split_front_matter(path.read_text(encoding="utf-8"), path.name)
        except (BridgeError, OSError, UnicodeDecodeError):
            meta, body = {}, ""
        slug = meta.get("slug")
        found.slugs.add(str(slug) if slug else slugify(_DATE_PREFIX.sub("", path.stem)))
        rel = path.relative_to(site_dir).as_posix()
        original = meta.get("original_url")
        if isinstance(original, str) and original:
            found.originals.setdefault(original, rel)
        title = meta.get("title")
        key = identity(str(title) if title else None, _meta_date(meta.get("date")), body)
        found.unlinked.setdefault(key, rel)
    return found


def read_ledger(state_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((state_dir / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def write_ledger(state_dir: Path, ledger: dict[str, str]) -> None:
    tmp = state_dir / f".{LEDGER}.{secrets.token_hex(4)}.tmp"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(ledger, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, state_dir / LEDGER)
    except OSError as exc:
        raise FeedError(f"{state_dir / LEDGER}: cannot be written: {exc.strerror or exc}") from None


def create(path: Path, text: str) -> bool:
    """Write ``path`` only if it does not exist; never a half-written file.

    Raises:
        FeedError: the folder cannot be written (one line naming the file).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise FeedError(f"{path}: cannot be written: {exc.strerror or exc}") from None
    return True
