"""Outbox pages are spliced from their Creates' bytes, and are what encoding them gives.

``Documents._outbox_json`` writes a page around its Creates' own JSON (as the build wrote
each ``create.json``) instead of parsing and encoding them again. Compact JSON embeds a
document exactly as it writes it alone, so each page must equal ``json_bytes`` of itself
parsed, with every Create equal to its file; after an edit, the Creates read back from
the last build are spliced too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge import config as config_mod
from bridge.site import build as site_build
from bridge.site import collections
from bridge.site.plan_documents import json_bytes
from tests.site.test_incremental import ARTICLE, _cold, _edit, _tree


def _pages(site: Path) -> list[Path]:
    return sorted((site / "public" / "ap" / "outbox").glob("page-*.json"))


def _check_pages(site: Path) -> int:
    checked = 0
    for page in _pages(site):
        data = page.read_bytes()
        doc = json.loads(data)
        assert json_bytes(doc) == data, page.name
        for item in doc["orderedItems"]:
            rel = item["id"].removeprefix(config_mod.load(site).base_url + "/")
            create = site / "public" / rel
            if not create.suffix:
                create = create.with_suffix(".json")
            assert json.loads(create.read_bytes()) == item
            assert create.read_bytes()[:-1] in data
            checked += 1
    return checked


def test_outbox_pages_equal_their_encoding_after_a_cold_build_and_an_edit(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(collections, "OUTBOX_PAGE_SIZE", 2)  # several pages of the sample
    config = config_mod.load(site)
    site_build.build(config)
    assert len(_pages(site)) > 1
    assert _check_pages(site) > 2
    _edit(site, ARTICLE, "This is the **first**", "This is the **edited**")
    site_build.forget_resident_state()  # the other Creates are read back from their files
    result = site_build.build(config)
    assert any(path.startswith("ap/outbox/page-") for path in result.changed)
    assert _check_pages(site) > 2
    assert _tree(site / "public") == _cold(site, tmp_path / "cold")
